# worktree of 80c90b3 at /tmp/wt-old (git worktree add -f /tmp/wt-old 80c90b3); default torch threads (2 here)
set -e
cd /tmp/wt-old
s=$(date +%s.%N); /work/main/.venv/bin/python -m hypercrl.cli run --sequence push --method hnet --seed 0 --profile quick --quiet --run-dir /tmp/e2e/old > /tmp/e2e/old.log 2>&1; e=$(date +%s.%N)
echo "old $(echo "$e - $s" | bc)"
cd /work/main
s=$(date +%s.%N); .venv/bin/hypercrl run --sequence push --method hnet --seed 0 --profile quick --quiet --run-dir /tmp/e2e/new > /tmp/e2e/new.log 2>&1; e=$(date +%s.%N)
echo "new $(echo "$e - $s" | bc)"
