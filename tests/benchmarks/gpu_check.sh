#!/usr/bin/env bash
# GPU check for the model runtime: the transformers backend, batched vs sequential, with constrained
# decoding, on a random-weight model of Foundation-Sec-8B-Instruct's shape (the Llama-3.1-8B config, bf16).
# Prints tokens/s, peak GPU memory and the batched/sequential throughput ratio. Never run by CI.
#
#   tests/benchmarks/gpu_check.sh                 # full check on a CUDA GPU (under 8 minutes; ~17 GiB)
#   tests/benchmarks/gpu_check.sh --tiny          # the same code path on CPU with a tiny model (seconds);
#                                                 # tests/model/test_gpu_check.py runs this so it cannot rot
#   options: --requests N (default 8), --json PATH (figures as JSON too),
#            --device cpu --layers 1: a dry run of the full path without a GPU (slow: ~6 min, checks code only)
#
# On the lent device machine (an H200: Python 3.12, torch and transformers preinstalled, no network) the
# packages socflow's model runtime needs beyond those travel as wheels in .whl/ (git-ignored), fetched here:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2 pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 SQLAlchemy==2.1.9 typing-extensions==4.16.0
#
# then one device call:  carry [".whl"], timeout_s 600, command
#   PYTHONUNBUFFERED=1 tests/benchmarks/gpu_check.sh --json $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log
# This script installs .whl/*.whl into /tmp/site when .whl/ holds wheels. Figures go to docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/../.."

tiny=0
for arg in "$@"; do
    if [[ "$arg" == "--tiny" ]]; then tiny=1; fi
done

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi

limit=480  # the full check must finish in under 8 minutes
if [[ $tiny == 1 ]]; then limit=240; fi

exec timeout --signal=TERM --kill-after=10 "$limit" "$python" tests/benchmarks/gpu_check.py "$@"
