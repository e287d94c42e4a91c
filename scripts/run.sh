#!/usr/bin/env bash
# Set up (idempotent) and start the app. Extra arguments go to app.py (see `--help`).
# With `--engine vllm` (and no --llm-server) vLLM is set up in .venv-vllm too, and the app starts
# a vLLM server on a loopback port and stops it when it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=" $* "
if [[ "$args" == *" --engine vllm "* || "$args" == *" --engine=vllm "* ]] && [[ "$args" != *" --llm-server"* ]]; then
  bash scripts/setup-vllm.sh
fi
exec .venv/bin/python app.py "$@"
