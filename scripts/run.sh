#!/usr/bin/env bash
# Set up (idempotent) and start the app. Extra arguments go to app.py (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
