#!/usr/bin/env bash
# Install cocalc-k8s into .venv and start the hub on the embedded default (embedded
# PostgreSQL in ~/.local/share/cocalc-k8s; as root /var/lib/cocalc-k8s). Prints the URL
# to open. Extra arguments go to
# `cocalc-k8s serve` (try --help).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
# The hub, and the project environment its links need (project-env/: JupyterLab, the
# Notebook 7 interface, ipykernel, real-time collaboration and the hub's identity module
# for Jupyter). Projects run them from this virtualenv, which their sandbox can execute.
"$VENV/bin/python" -m pip install -q "$ROOT" "$ROOT/project-env"
# Every project runs in a bubblewrap sandbox (internet through slirp4netns when its quota
# allows). Install them when missing and we can; without bubblewrap the hub still starts,
# but keeps sign-up closed after the first account unless told --trusted-users.
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
        echo "installing Debian packages for the project sandbox: ${missing[*]}"
        as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq "${missing[@]}" >/dev/null || echo "warning: could not install ${missing[*]}" >&2
    else
        echo "warning: ${missing[*]} not installed (needs root): projects will not be sandboxed" >&2
    fi
fi
exec "$VENV/bin/cocalc-k8s" serve "$@"
