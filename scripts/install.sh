#!/usr/bin/env bash
# Create .venv (if missing) and install metatrain-nc with its test extras into it.
# Python 3.10+ is the only requirement. torch is installed first, CPU build, so that
# no multi-GB CUDA wheel is pulled in by a dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
source .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
    # the CPU build when the machine has it (as here); any supported torch otherwise
    python -m pip install --quiet "torch==2.13.0" 2>/dev/null \
        || python -m pip install --quiet "torch>=2.7,<2.15"
fi
python -m pip install --quiet -e ".[test]"
