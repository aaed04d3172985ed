#!/bin/bash
# multitask, push quick, seeds 0-2: 06155d6 (batches with replacement) against HEAD (epochs)
cd /work/main
for s in 0 1 2; do
  (cd /tmp/wt-old && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method multitask --seed $s --profile quick --quiet --run-dir /work/main/runs/fix-effect/mt/old-s$s) &
  OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method multitask --seed $s --profile quick --quiet --run-dir runs/fix-effect/mt/new-s$s &
  wait
done
