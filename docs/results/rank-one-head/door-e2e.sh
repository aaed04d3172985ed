#!/bin/bash
# door quick, first task, hnet, seed 0, one torch thread: this branch, 80c90b3, c96507c
# (before the rank-one head step), back to back, each beside one other job (a door sweep,
# one thread, nice 10)
cd /work/main
out=runs/door-e2e-rank1
rm -rf $out/new $out/old $out/prev
run() {  # name, directory to run from
  s=$(date +%s.%N)
  (cd $2 && OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m hypercrl.cli run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=1 --quiet --run-dir /work/main/$out/$1)
  e=$(date +%s.%N); echo "$1 $(echo "$e - $s" | bc)"
}
run new /work/main
run old /tmp/wt-80c
run prev /tmp/wt-c96
