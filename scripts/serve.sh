#!/usr/bin/env bash
# Install cocalc-k8s into .venv and start the hub on the embedded default (embedded
# PostgreSQL in ~/.local/share/cocalc-k8s; as root /var/lib/cocalc-k8s). Prints the URL
# to open. Extra arguments go to
# `cocalc-k8s serve` (try --help).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
"$VENV/bin/python" -m pip install -q "$ROOT"
exec "$VENV/bin/cocalc-k8s" serve "$@"
