#!/usr/bin/env bash
# Install the test dependencies (Python packages into .venv; checkov into .venv-checkov;
# Debian's bubblewrap and slirp4netns for the project sandbox, chromium for the browser
# tests, openssh-client and rsync for the SSH tests and, as root, nfs-ganesha and libnfs-utils
# for the NFS export test, podman, runc and mmdebstrap for the container tests), build the
# images (scripts/build-images.sh) where podman works, and run the whole suite: ruff, the
# import-layer contract, mypy, then pytest.
# Extra arguments go to pytest. Exits non-zero on any failure, including "no tests ran".
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
"$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
# The project environment, as serve.sh installs it (not editable: a project's sandbox sees
# the virtualenv, not this working tree).
"$VENV/bin/python" -m pip install -q "$ROOT/project-env"
# checkov pins older packaging/python-dateutil than the package's, so it gets a virtualenv
# of its own (tests/test_k8s_checkov.py finds it there).
if [ ! -x "$ROOT/.venv-checkov/bin/checkov" ]; then
    "$PYTHON" -m venv "$ROOT/.venv-checkov"
    "$ROOT/.venv-checkov/bin/python" -m pip install -q "checkov>=3.2"
fi
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
# The local backend's sandbox (bubblewrap) and its network (slirp4netns); curl for the
# content-origin test of non-browser clients.
command -v bwrap >/dev/null || packages+=(bubblewrap)
command -v slirp4netns >/dev/null || packages+=(slirp4netns)
command -v curl >/dev/null || packages+=(curl)
# The SSH tests drive the real OpenSSH client (ssh, scp, sftp) and rsync, which the
# projects run too.
command -v ssh >/dev/null || packages+=(openssh-client)
command -v rsync >/dev/null || packages+=(rsync)
if [ "$(id -u)" = 0 ]; then  # the NFS export test runs nfs-ganesha, which needs root
    command -v ganesha.nfsd >/dev/null || packages+=(nfs-ganesha nfs-ganesha-vfs)
    command -v nfs-ls >/dev/null || packages+=(libnfs-utils)
    # The container tests (tests/container): podman with runc, and mmdebstrap for a base
    # image where the official Python image cannot be pulled (scripts/build-images.sh).
    command -v podman >/dev/null || packages+=(podman buildah)
    command -v runc >/dev/null || packages+=(runc)
    command -v mmdebstrap >/dev/null || packages+=(mmdebstrap)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    echo "installing Debian packages for the tests: ${packages[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
cd "$ROOT"
export PATH="$VENV/bin:$PATH"
echo "== ruff"
ruff check .
ruff format --check .
echo "== import layers"
lint-imports
echo "== mypy"
mypy
echo "== images"
# Built here, before pytest, so that no test's time limit includes a cold build; the
# container tests' session fixture then finds them (and rebuilds only what changed).
podman_flags=()
command -v runc >/dev/null && podman_flags=(--runtime runc --cgroup-manager cgroupfs)
if [ "${COCALC_BUILD_IMAGES:-1}" = 0 ]; then
    echo "images not built (COCALC_BUILD_IMAGES=0): the container tests build them if they run"
elif ! command -v podman >/dev/null; then
    echo "container tests will be skipped: podman is not installed (it is, when run as root)"
elif ! podman_error="$(podman "${podman_flags[@]}" info 2>&1 >/dev/null)"; then
    echo "container tests will be skipped: podman does not work here: ${podman_error: -300}"
else
    nice ./scripts/build-images.sh
fi
echo "== pytest"
# Two workers by default (COCALC_TEST_WORKERS; 0 runs in this process): most tests wait
# on servers, browsers and PostgreSQL rather than compute, so two halve the wall time on
# two cores. --dist loadfile keeps each file in one worker, as its module fixtures expect.
workers="${COCALC_TEST_WORKERS:-2}"
xdist=()
[ "$workers" != 0 ] && xdist=(-n "$workers" --dist loadfile)
status=0
python -m pytest "${xdist[@]}" "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
