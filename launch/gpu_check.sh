#!/usr/bin/env bash
# The CUDA checks in one go, for a lent GPU machine whose python3 already has a CUDA torch:
#   the CUDA tests (tests/test_cuda.py and the optimisers' CUDA tests), `hypercrl bench plan
#   --device cuda` per family, `hypercrl bench train --device cuda`, and `hypercrl bench loop`
#   on the quick push profile with device=cuda, with the CPU, and with device=cuda and
#   compile=true (the planner through CUDA graphs); on request (STEPS) `hypercrl bench eval`
#   of a push run trained on the GPU, and the suite.
#
#   bash launch/gpu_check.sh [OUT_DIR]        (default: $OUT, else ./gpu-check)
#
# The machine's image (Python 3.12, torch, tensorboard, imageio, matplotlib, tqdm) lacks
# gymnasium, mujoco and stable-baselines3, and it reaches no package index. Made here, in
# the repository's root, before the call (.gitignore keeps both folders out of git):
#   for p in gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.1 mujoco-core==4.0.1 \
#       glfw==2.11.0 pyopengl==3.1.10 stable-baselines3==2.9.2; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$p"; done
#   mkdir -p .gpu_extra/pybullet_data && cp -r .venv/lib/python3.11/site-packages/pybullet_data/{__init__.py,franka_panda} .gpu_extra/pybullet_data/
# and the call carries both: device `run` with carry [".whl", ".gpu_extra"] (23 MB). The
# wheels are installed into /tmp/site first (GPU_CHECK_NO_WHEELS=1: not). Each step
# has its own time limit, so a hang costs that step only; every step's output lands in
# OUT_DIR, and steps.log says how each ended and how long it took. Set STEPS to run a subset,
# e.g. STEPS="tests plan_push"; STEPS="suite" runs the whole suite but PyBullet's tests.
set -u
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
log="$out/steps.log"
: > "$log"
# no rendering here: the machine's image has no EGL library unless one is carried
export MUJOCO_GL=${MUJOCO_GL:-disable} PYTHONUNBUFFERED=1
if [ -z "${GPU_CHECK_NO_WHEELS:-}" ] && ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >> "$log" 2>&1 || echo "wheel install failed" >> "$log"
  export PYTHONPATH=/tmp/site:$PWD
  # pybullet has no wheel for the machine's Python; MuJoCo's push and door scenes need only
  # its Panda description: a pybullet_data/ holding franka_panda/ may travel in .gpu_extra/
  [ -d .gpu_extra ] && export PYTHONPATH=$PYTHONPATH:$PWD/.gpu_extra
else
  export PYTHONPATH=$PWD
fi
steps=${STEPS:-"env tests plan_push plan_door plan_halfcheetah train loop"}

step() {  # step NAME LIMIT_S FILE COMMAND...
  local name=$1 limit=$2 file=$3
  shift 3
  case " $steps " in *" $name "*) ;; *) return ;; esac
  local start=$SECONDS
  : > "$out/$file"  # a step's file holds its latest run only
  timeout "$limit" bash -c '"$@"' _ "$@" >> "$out/$file" 2>> "$out/stderr-$name.txt"
  local rc=$?
  echo "$name rc=$rc $((SECONDS - start))s" | tee -a "$log"
  # keep what a step printed to stderr only when it failed (the files that come back are few)
  if [ "$rc" = 0 ]; then rm -f "$out/stderr-$name.txt"; else tail -c 20000 \
    "$out/stderr-$name.txt" >> "$log"; rm -f "$out/stderr-$name.txt"; fi
}

env_info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv
  python3 - <<'EOF'
import os, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0), "cpus", os.cpu_count())
print("tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
EOF
}

hc() { python3 -m hypercrl.cli "$@"; }
loop_both() {  # one task of the quick push profile, hnet: three JSON documents in a row
  hc bench loop --families push --methods hnet --tasks 1 --set device=cuda
  hc bench loop --families push --methods hnet --tasks 1 --set device=cpu
  hc bench loop --families push --methods hnet --tasks 1 --set device=cuda --set compile=true
}
eval_both() {  # a push run on the GPU, then every seen task evaluated together vs task by task
  local run=/tmp/gpu-check-eval-run
  rm -rf "$run"
  hc run --sequence push --method hnet ${EVAL_ARGS:---profile quick --set device=cuda} \
    --run-dir "$run" --quiet > /dev/null && hc bench eval "$run" --repeats 2
}
export -f env_info hc loop_both eval_both  # the steps run them under `timeout`, in a child bash

step env 60 env.txt env_info
step tests 240 tests.log python3 -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py \
  tests/test_plan_optimizers.py
for fam in push door halfcheetah; do
  step "plan_$fam" 150 "plan_$fam.json" hc bench plan --device cuda --repeats 10 --families "$fam"
done
step train 150 train.json hc bench train --device cuda --repeats 10
step loop 300 loop.json loop_both
# not by default (minutes): joint evaluation of every seen task on the GPU (`hypercrl bench
# eval` on a quick push run trained there; EVAL_ARGS replaces its run options), and the rest
# of the suite under the CUDA torch, PyBullet's tests left out (no wheel of pybullet for the
# machine's Python)
step eval 480 eval.json eval_both
step suite 420 suite.log python3 -m pytest -q -p no:cacheprovider -k "not pybullet" \
  --ignore=tests/test_pybullet_envs.py tests
echo "done in ${SECONDS}s" | tee -a "$log"
