#!/usr/bin/env bash
# The GPU checks of issue 19 in one call of the device tool: the CUDA tests (no host sync per batch, the data path),
# the other CUDA-marked tests, the GPU benchmark and a profile of fit against the hand-written loop.
#
# How to call it, from a session whose task is lent a GPU (`status` says so: can_start_another is true):
#
#  1. Here, once, with network, in the repository's root (optional: nothing these checks import needs them, but the
#     package declares them; the device machine has torch, pytest, numpy, pandas, psutil, matplotlib, scikit-learn,
#     setuptools and wheel, and Python 3.12; `.gpu_wheels/` is git-ignored):
#
#       python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#           --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#           -d .gpu_wheels fastcore ipywidgets comm traitlets widgetsnbextension jupyterlab_widgets
#
#  2. The device tool, one call (the script keeps inside about 8 minutes; each step has its own time limit):
#
#       run(command="bash tools/gpu_check.sh", carry=[".gpu_wheels"], timeout_s=600)
#
#     (leave `carry` out if step 1 was skipped). The summary is at the end of output_tail; the whole logs come back
#     as files: env.txt, pytest_cuda.log, pytest_marked.log, gpu_loop.txt, profile.txt.
#  3. give_back() unless you rerun at once. Report the card's name with every number (gpu_loop.txt's first lines).
#
# Locally, on any machine with a GPU: `OUT=/tmp/gpu_check bash tools/gpu_check.sh`.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
unset FASTBOOK_PROGRESS
PY=${PYTHON:-python3}
start=$SECONDS
step() { echo; echo "=== $* ($((SECONDS - start)) s)"; }

step "environment"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY -c "import sys, torch; print('Python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda,
'| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'NONE')"
} 2>&1 | tee "$OUT/env.txt"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "torch sees no GPU here: stopping"; exit 2; }

step "install"
if compgen -G ".gpu_wheels/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu_wheels/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} && echo "wheels: $(ls .gpu_wheels | tr '\n' ' ')"
else echo "no .gpu_wheels/: none needed by these checks"; fi
# offline: no build isolation (it would download setuptools); the checks also work from the source tree alone
$PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/pip_install.log" 2>&1 \
  && echo "pip install -e . --no-deps: done" || echo "pip install -e . failed (see pip_install.log): using the source tree"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import fastbook_core, torch; print('fastbook_core from', fastbook_core.__file__)"

step "pytest tests/test_cuda.py tests/test_faults.py"
timeout 240 $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda.py tests/test_faults.py 2>&1 | tee "$OUT/pytest_cuda.log" | tail -40
rc_cuda=${PIPESTATUS[0]}

step "the other CUDA-marked tests (-k cuda)"
others=$(grep -l "cuda.is_available()" tests/test_*.py | grep -v -e test_cuda.py -e test_faults.py | tr '\n' ' ')
echo "files: ${others:-none}"
if [ -n "$others" ]; then
  timeout 90 $PY -m pytest -q -rs -p no:cacheprovider -k cuda $others 2>&1 | tee "$OUT/pytest_marked.log" | tail -15
  rc_marked=${PIPESTATUS[0]}
else echo "no other file tests CUDA" > "$OUT/pytest_marked.log"; rc_marked=0; fi

step "benchmark: python benchmarks/gpu_loop.py --rounds 5"
timeout 200 $PY benchmarks/gpu_loop.py --rounds 5 > "$OUT/gpu_loop.txt" 2>&1
rc_bench=$?

step "profile: python benchmarks/gpu_loop.py --profile (into profile.txt)"
timeout 100 $PY benchmarks/gpu_loop.py --profile > "$OUT/profile.txt" 2>&1
rc_prof=$?
grep -e '^--- ' "$OUT/profile.txt"

step "summary"
echo "pytest cuda+faults rc=$rc_cuda: $(tail -1 "$OUT/pytest_cuda.log")"
echo "pytest -k cuda rc=$rc_marked: $(tail -1 "$OUT/pytest_marked.log")"
echo "benchmark rc=$rc_bench, profile rc=$rc_prof (124: ran out of time)"
cat "$OUT/gpu_loop.txt"
echo "total $((SECONDS - start)) s"
exit $(( rc_cuda || rc_bench ))
