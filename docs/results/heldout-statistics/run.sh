#!/bin/bash
# push quick, 3 tasks, seed 0: the commit before today's faithfulness fixes (06155d6) and after
cd /work/main
for m in hnet multitask; do
  (cd /tmp/wt-old && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method $m --seed 0 --profile quick --quiet --run-dir /work/main/runs/fix-effect/old-$m) &
  OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method $m --seed 0 --profile quick --quiet --run-dir runs/fix-effect/new-$m &
  wait
done
