# syntax=docker/dockerfile:1
# cocalc-k8s images, two targets of one build (docs/kubernetes.md; scripts/build-images.sh
# builds both with podman or docker):
#
#   docker build --target hub     -t REGISTRY/cocalc-k8s-hub:0.1.0 .
#   docker build --target project -t REGISTRY/cocalc-k8s-project:0.1.0 .
#
# hub:     the hub (`cocalc-k8s`) and nfs-ganesha, which serves the projects' root over
#          NFSv4 from a second container of the same pod (docker/nfs-start.sh).
# project: what every project pod runs: the project agent in a virtualenv of its own, and
#          the user's environment (Python, git, JupyterLab, common tools) as uid 2001.
#
# BASE_IMAGE is any Debian bookworm with python3 and its venv module: the official Python
# image by default, or a base bootstrapped with mmdebstrap where no registry of images is
# reachable (scripts/build-images.sh). Python programs are called as `python3` and
# installed into virtualenvs, which both kinds of base honour (Debian's own Python refuses
# `pip install` outside one).
#
# Behind a TLS-inspecting proxy, pass its CA bundle as the build secret `ca-bundle`
# (`--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`): the pip steps use it
# while they run, and it is in no layer. Files move between stages with COPY --from, which
# BuildKit and buildah both follow (buildah skips a stage used only by RUN --mount from=).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LANG=C.UTF-8

# The package as a wheel, built once for both targets.
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY cocalc_k8s ./cocalc_k8s
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM base AS hub
# DL3008 (pin apt versions) does not apply: Debian replaces a package version on the
# mirror with each security update, so a pinned version stops building within weeks;
# the base image's release (bookworm) pins the versions that matter.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nfs-ganesha nfs-ganesha-vfs tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 2001 cocalc \
    && useradd --uid 2001 --gid 2001 --home-dir /data --no-create-home --shell /usr/sbin/nologin cocalc
# The hub's dependencies (setup.cfg's install_requires) in a layer before the package, so
# a change of the package alone rebuilds only the small layers after it.
COPY setup.cfg /opt/wheels/setup.cfg
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -c "import configparser as c; p = c.ConfigParser(); p.read('/opt/wheels/setup.cfg'); print(p['options']['install_requires'])" > /opt/wheels/requirements.txt \
    && python3 -m venv /opt/cocalc \
    && /opt/cocalc/bin/pip install --no-cache-dir -r /opt/wheels/requirements.txt
COPY --from=wheel /wheels /opt/wheels
RUN /opt/cocalc/bin/pip install --no-cache-dir --no-deps /opt/wheels/cocalc_k8s-*.whl
COPY docker/ganesha.conf /etc/ganesha/ganesha.conf
COPY --chmod=0755 docker/hub-start.sh /usr/local/bin/cocalc-hub-start
COPY --chmod=0755 docker/nfs-start.sh /usr/local/bin/cocalc-nfs-start
# The hub runs as the projects' uid, so files it writes into homes belong to them; the NFS
# container of the pod runs as root with a few capabilities (deployment.yaml).
USER 2001
WORKDIR /data
ENV PATH=/opt/cocalc/bin:$PATH \
    COCALC_DATA_DIR=/data COCALC_HOST=0.0.0.0 COCALC_PORT=8443
EXPOSE 8443 8444 8080 2049
ENTRYPOINT ["tini", "--", "cocalc-hub-start"]
CMD ["serve", "--backend", "kubernetes"]

FROM base AS project
ARG JUPYTERLAB_VERSION=4.6.6
# DL3008: as above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        tini git ca-certificates curl wget openssh-client rsync unzip zip less nano vim \
        procps htop tmux bash-completion make build-essential \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 2001 user \
    && useradd --uid 2001 --gid 2001 --home-dir /home/user --create-home --shell /bin/bash user
# The user's environment: a virtualenv first on PATH (so `pip install` just works, with
# either base), system packages visible, owned by root: users add theirs with --user.
# It is the project environment of project-env/ (JupyterLab, Notebook 7, ipykernel,
# jupyter-collaboration, the hub's identity module for Jupyter), as serve.sh installs it.
COPY project-env /tmp/project-env
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -m venv --system-site-packages /opt/python \
    && /opt/python/bin/pip install --no-cache-dir /tmp/project-env "jupyterlab==${JUPYTERLAB_VERSION}" \
    && rm -rf /tmp/project-env
# The agent in /opt/cocalc: only its own dependencies, out of reach of the user's pip.
# Its dependencies come before the package, so a change of the package alone is one
# small layer.
RUN --mount=type=secret,id=ca-bundle,target=/run/secrets/ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -m venv /opt/cocalc \
    && /opt/cocalc/bin/pip install --no-cache-dir \
        "aiohttp>=3.14" "psutil>=5.9" "ptyprocess>=0.7" "watchfiles>=1.0"
COPY --from=wheel /wheels /opt/wheels
RUN /opt/cocalc/bin/pip install --no-cache-dir --no-deps /opt/wheels/cocalc_k8s-*.whl
USER 2001
WORKDIR /home/user
ENV HOME=/home/user SHELL=/bin/bash PATH=/home/user/.local/bin:/opt/python/bin:$PATH
EXPOSE 6000
ENTRYPOINT ["tini", "--"]
# What the pod runs (cocalc_k8s.k8s.manifests.agent_command): the token comes from the
# Secret mounted at /var/run/cocalc, on descriptor 3.
CMD ["sh", "-c", "exec /opt/cocalc/bin/python -m cocalc_k8s.agent --home /home/user --host 0.0.0.0 --port 6000 --token-fd 3 3</var/run/cocalc/token"]
