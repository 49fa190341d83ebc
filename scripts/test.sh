#!/usr/bin/env bash
# The test suite (the second command of README.md). Installs first if needed.
# Two pytest-xdist workers, one file each at a time (--dist loadfile keeps a file's
# module fixtures in one worker; the tiny trained models are shared by both, see
# tests/conftest.py) in collection order, which starts the slowest files (conftest's
# SLOW_FILES); one thread per process. `bash scripts/test.sh -n 0` runs serially.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] && .venv/bin/python -c "import xdist" 2>/dev/null \
    || bash scripts/install.sh
source .venv/bin/activate
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"
