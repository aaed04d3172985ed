#!/bin/bash
# door quick, first task, hnet, seed 0, torch's default threads (2 here), nothing else
# running: 80c90b3 (a worktree at /tmp/wt-old) and this branch, in the order given
cd /work/main
out=/tmp/door-e2e
run() {  # name, directory to run from
  rm -rf $out/$1
  s=$(date +%s.%N)
  (cd $2 && /work/main/.venv/bin/python -m hypercrl.cli run --sequence door --method hnet --seed 0 --profile quick --set num_tasks=1 --quiet --run-dir $out/$1)
  e=$(date +%s.%N); echo "$1 $(echo "$e - $s" | bc)"
}
for name in "$@"; do
  case $name in old*) run $name /tmp/wt-old ;; *) run $name /work/main ;; esac
done
