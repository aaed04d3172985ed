#!/bin/bash
# push quick, hnet, one thread per run: seed 0 on c17e320 (before the factored regularised
# step) beside this branch, to check that c17e320 reproduces b943e1f's recorded seed 0
# (docs/results/rank-one-head/push/new-s0-metrics.json); then this branch's seeds 1-19, two
# at a time. Run from the repository root with a worktree of c17e320 at /tmp/wt-head.
cd /work/main
out=runs/factored-quality
(cd /tmp/wt-head && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method hnet --seed 0 --profile quick --quiet --run-dir /work/main/$out/prev-push-s0) &
OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method hnet --seed 0 --profile quick --quiet --run-dir $out/new-push-s0 &
wait
echo "seed 0 done $(date +%T)"
for pair in "1 2" "3 4" "5 6" "7 8" "9" "10 11" "12 13" "14 15" "16 17" "18 19"; do
  for s in $pair; do
    OMP_NUM_THREADS=1 .venv/bin/hypercrl run --sequence push --method hnet --seed $s --profile quick --quiet --run-dir $out/new-push-s$s &
  done
  wait
  echo "seeds $pair done $(date +%T)"
done
# then docs/results/factored-head/door-e2e.sh
