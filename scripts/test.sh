#!/usr/bin/env bash
# The test suite (the second command of README.md). Installs first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] || bash scripts/install.sh
source .venv/bin/activate
exec python -m pytest -q "$@"
