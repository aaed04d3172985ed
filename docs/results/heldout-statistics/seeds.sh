#!/bin/bash
# hnet, seeds 1 and 2: old and new side by side
cd /work/main
for s in 1 2; do
  (cd /tmp/wt-old && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir /work/main/runs/fix-effect/old-hnet-s$s) &
  OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir runs/fix-effect/new-hnet-s$s &
  wait
done
