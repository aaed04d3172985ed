#!/bin/bash
# door quick, hnet, seed 0, its first two handles (task 1 regularised), one thread each:
# c17e320 (a worktree at /tmp/wt-head) and this branch side by side. Run from the repository
# root; each run's timing.json holds its seconds per phase and task.
cd /work/main
out=runs/factored-door
(cd /tmp/wt-head && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=2 --quiet --run-dir /work/main/$out/prev) &
OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=2 --quiet --run-dir $out/new &
wait
echo "done $(date +%T)"
