#!/usr/bin/env bash
# Build the hub and project images (the Dockerfile's two targets) on this machine.
#
#   ./scripts/build-images.sh            build what is missing, print the image names
#   ./scripts/build-images.sh --print    print the names the current sources would get
#
# Engine: docker when its daemon answers, else podman (Debian's `podman`, installed here
# when missing and root), run with runc and cgroupfs where runc is installed (crun fails on
# some hosts' rlimits and hybrid cgroups). COCALC_CONTAINER_ENGINE=docker|podman chooses.
#
# Base: the official Python image when it can be pulled; else a Debian bookworm base
# bootstrapped with mmdebstrap (python3, python3-venv, python3-pip, ca-certificates; about
# 20 s), imported as localhost/cocalc-k8s-base:bookworm and kept for later builds.
#
# Cache: the images are tagged with a digest of what goes into them (the Dockerfile,
# docker/, project-env/, the package and its metadata, the base image's id), so a second
# run with the same sources builds nothing; a changed package rebuilds only the layers
# after it.
#
# CA bundle: when the host has one (COCALC_CA_BUNDLE, default
# /etc/ssl/certs/ca-certificates.crt) it is handed to the pip steps as the build secret
# `ca-bundle`, read-only and in no layer, for machines behind a TLS-inspecting proxy.
#
# The last two lines of the output are `hub=<image>` and `project=<image>`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PRINT_ONLY=0
[ "${1:-}" = "--print" ] && PRINT_ONLY=1

OFFICIAL_BASE="docker.io/library/python:3.11-slim-bookworm"
DEBIAN_BASE="localhost/cocalc-k8s-base:bookworm"
HUB_REPO="localhost/cocalc-k8s-hub"
PROJECT_REPO="localhost/cocalc-k8s-project"
CA_BUNDLE="${COCALC_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { echo "build-images: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "'$*' needs root"; return 1; fi
}
apt_install() {
    log "installing Debian packages: $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

engine="${COCALC_CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; else engine=podman; fi
fi
if [ "$engine" = podman ]; then
    command -v podman >/dev/null || apt_install podman buildah runc
    ENGINE=(podman)
    command -v runc >/dev/null && ENGINE+=(--runtime runc --cgroup-manager cgroupfs)
else
    ENGINE=(docker)
fi

have_image() { "${ENGINE[@]}" image inspect "$1" >/dev/null 2>&1; }
image_id() { "${ENGINE[@]}" image inspect --format '{{.Id}}' "$1"; }

debian_base() {
    if have_image "$DEBIAN_BASE"; then return; fi
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    local dir started
    dir="$(mktemp -d)"
    started=$SECONDS
    log "bootstrapping $DEBIAN_BASE with mmdebstrap"
    as_root nice mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
        bookworm "$dir/rootfs.tar" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    "${ENGINE[@]}" import --change 'CMD ["/bin/bash"]' "$dir/rootfs.tar" "$DEBIAN_BASE" >/dev/null
    rm -rf "$dir"
    log "base image made in $((SECONDS - started)) s"
}

if have_image "$OFFICIAL_BASE" || { [ "$PRINT_ONLY" = 0 ] && "${ENGINE[@]}" pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; }; then
    base="$OFFICIAL_BASE"
else
    [ "$PRINT_ONLY" = 1 ] || log "$OFFICIAL_BASE cannot be pulled: using a Debian base"
    base="$DEBIAN_BASE"
    [ "$PRINT_ONLY" = 1 ] || debian_base
fi
base_id="$(image_id "$base" 2>/dev/null || echo none)"

# What goes into the images, as the build context sees it (.dockerignore).
sources_digest() {
    {
        find Dockerfile .dockerignore pyproject.toml setup.cfg README.md docker cocalc_k8s project-env \
            -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path 'project-env/build/*' -print0 | sort -z | xargs -0 sha256sum
        echo "$base_id"
    } | sha256sum | cut -c1-16
}
tag="$(sources_digest)"
hub="$HUB_REPO:$tag"
project="$PROJECT_REPO:$tag"

if [ "$PRINT_ONLY" = 0 ]; then
    build=("${ENGINE[@]}" build --build-arg "BASE_IMAGE=$base")
    [ "$engine" = docker ] && build=(env DOCKER_BUILDKIT=1 "${build[@]}")
    [ "$engine" = podman ] && build+=(--layers)
    [ -s "$CA_BUNDLE" ] && build+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
    for target in hub project; do
        image="$hub"
        [ "$target" = project ] && image="$project"
        if have_image "$image"; then
            log "$image is up to date"
            continue
        fi
        started=$SECONDS
        log "building $image (target $target, base $base)"
        nice "${build[@]}" --target "$target" -t "$image" -t "${image%:*}:latest" . >&2
        log "built $image in $((SECONDS - started)) s"
    done
    # Each change of the sources makes new images: keep the three newest of each (other
    # checkouts of this machine may use them), remove older ones of these two names only.
    newest_first=()  # docker lists newest first anyway; podman is told to
    [ "$engine" = podman ] && newest_first=(--sort created)
    for repo in "$HUB_REPO" "$PROJECT_REPO"; do
        "${ENGINE[@]}" images --filter "reference=$repo" "${newest_first[@]}" --format '{{.Tag}}' \
            | grep -vx latest | tail -n +4 | sed "s|^|$repo:|" \
            | xargs -r "${ENGINE[@]}" rmi >/dev/null 2>&1 || true
    done
fi
echo "hub=$hub"
echo "project=$project"
