#!/bin/bash
# push quick hnet seeds 5-9: c96507c and this branch side by side, one thread each
cd /work/main
out=runs/rank1-quality
for s in 5 6 7 8 9; do
  (cd /tmp/wt-c96 && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir /work/main/$out/prev-push-s$s) &
  OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir $out/new-push-s$s &
  wait
  echo "seed $s done $(date +%T)"
done
