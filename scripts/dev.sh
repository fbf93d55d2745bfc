#!/usr/bin/env bash
# One command to a working local cluster: installs what is needed, then runs `cairn dev`
# (6 storage nodes in 3 zones, RS(4,2), data in ./cairn-data, S3 on http://127.0.0.1:9000).
# Extra arguments go to `cairn dev` (e.g. --tls, --port 9001, --data-dir /srv/cairn).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh fast
exec .venv/bin/cairn dev "$@"
