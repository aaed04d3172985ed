#!/bin/bash
# push quick, hnet, seeds 0-4 on b943e1f, one thread, one run at a time (a door sweep held the
# other core); first c96507c's seed 0, to check that it reproduces 06155d6's
# (docs/results/heldout-statistics/old-hnet-s0-metrics.json)
cd /work/main
out=runs/rank1-quality
run() {  # dir-to-run-from, run-dir, args...
  d=$1; r=$2; shift 2
  (cd $d && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run "$@" --quiet --run-dir /work/main/$out/$r)
}
run /tmp/wt-c96 prev-push-s0 --sequence push --method hnet --seed 0 --profile quick
for s in 0 1 2 3 4; do
  run /work/main new-push-s$s --sequence push --method hnet --seed $s --profile quick
done
