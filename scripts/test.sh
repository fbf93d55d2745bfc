#!/usr/bin/env bash
# One command for the whole test suite: installs the project, its test dependencies and the real
# S3 client tools, then runs every tier (unit, cluster, clients). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "fast,test"
bash scripts/install-tools.sh
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -p no:cacheprovider -q -ra "$@"
