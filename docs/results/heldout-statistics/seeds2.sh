#!/bin/bash
cd /work/main
OMP_NUM_THREADS=1 .venv/bin/python runs/fix-effect/nokept.py run --sequence push --method hnet --seed 0 --profile quick --quiet --run-dir runs/fix-effect/nokept-hnet &
for s in 3 4; do
  (cd /tmp/wt-old && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir /work/main/runs/fix-effect/old-hnet-s$s) &
  OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir runs/fix-effect/new-hnet-s$s &
  wait
done
