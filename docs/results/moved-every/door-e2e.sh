#!/bin/bash
# door quick, hnet, seed 0, its first two handles (task 1 regularised), one thread each:
# 99b8026 (a worktree at /tmp/wt-head) and then this branch, back to back, while a one-thread
# door sweep held the other core. Run from the repository root; each run's timing.json holds
# its seconds per phase and task.
cd /work/main
out=runs/moved-every
(cd /tmp/wt-head && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=2 --quiet --run-dir /work/main/$out/door-old)
echo "old done $(date +%T)"
OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=2 --quiet --run-dir $out/door-new
echo "new done $(date +%T)"
