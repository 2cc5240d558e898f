#!/usr/bin/env bash
# Creates .venv and installs ward into it. Idempotent: re-runs only when the project's install
# files changed. Torch is installed first so CPU machines get a CPU build and GPU nodes a CUDA one:
#   - WARD_TORCH_INDEX=<pip index url> forces a build (e.g. a CUDA or CPU wheel index);
#   - a machine with an NVIDIA GPU (nvidia-smi -L works) takes PyPI's default (CUDA) build;
#   - otherwise a CPU build: a local wheel if pip's find-links has one, else PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${WARD_TORCH_VERSION:-2.13.0}"
PY="${WARD_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "ward needs Python 3.11 (set WARD_PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
stamp=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f .venv/.ward_stamp ] && [ "$(cat .venv/.ward_stamp)" = "$stamp" ]; then
  exit 0
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if [ -n "${WARD_TORCH_INDEX:-}" ]; then
    "${PIP[@]}" install "torch==${TORCH_VERSION}" --index-url "$WARD_TORCH_INDEX"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${PIP[@]}" install "torch==${TORCH_VERSION}"
  elif "${PIP[@]}" install -q --no-index --no-deps "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
    echo "setup: installed the local CPU build of torch ${TORCH_VERSION}"
  else
    "${PIP[@]}" install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
"${PIP[@]}" install -q -e ".[test]"
echo "$stamp" > .venv/.ward_stamp
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'))"
