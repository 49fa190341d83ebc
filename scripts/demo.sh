#!/usr/bin/env bash
# The README's first command: install (into .venv) and run the main job on bundled
# data. Extra arguments go to scripts/demo.py (e.g. --quick, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source .venv/bin/activate
exec python scripts/demo.py "$@"
