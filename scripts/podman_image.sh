#!/usr/bin/env bash
# Build and run the serving image with podman, for machines without a Docker engine
# (as root; the CI test tests/serving/test_container.py goes through this script).
#
#   scripts/podman_image.sh base                  # Debian base image with python3 (cached)
#   scripts/podman_image.sh build [TAG] [CONTEXT] # base + Dockerfile -> TAG (default mnist-mlops)
#   scripts/podman_image.sh run [TAG [ARGS...]]   # serve it on 127.0.0.1:$BENTOML_PORT (3000);
#                                                 # ARGS go to `podman run` (-d --name x)
#   scripts/podman_image.sh podman ARGS...        # any podman command with the flags below
#
# CONTEXT (default: the repo) needs what the Dockerfile copies from models/ (`dvc repro`):
# models/champion/, what the registry's champion serves (served.json, the artifact it names
# with its card, smoke.npz).
# Environment:
#   MNIST_BASE_IMAGE     base image tag (default localhost/mnist-mlops-base:bookworm); made
#                        from Debian packages with mmdebstrap when missing, so no registry
#                        pull is needed; set it to python:3.11-slim to pull that instead
#   MNIST_IMAGE_CACHE    where the base's rootfs tarball is kept (~/.cache/mnist-mlops)
#   MNIST_PODMAN_FLAGS   global podman flags (default: runc and cgroupfs, which work on hosts
#                        whose hybrid cgroups crun refuses); set it empty to use podman's own
#   MNIST_PODMAN_LIMITS  build/run flags (default: host network, ulimits pinned to 1024 where
#                        raising limits is not permitted)
#   BENTOML_PORT         the port `run` serves on (host network)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${MNIST_BASE_IMAGE:-localhost/mnist-mlops-base:bookworm}
CACHE=${MNIST_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-mlops}
read -r -a FLAGS <<<"${MNIST_PODMAN_FLAGS---runtime runc --cgroup-manager cgroupfs}"
read -r -a LIMITS <<<"${MNIST_PODMAN_LIMITS---network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "podman_image.sh: $1 not found; install it with: apt-get install podman runc mmdebstrap (or scripts/install_system_packages.sh)" >&2
        exit 1
    }
}
pm() { podman "${FLAGS[@]}" "$@"; }

base() {  # a minimal Debian bookworm with python3 + venv, imported as $BASE
    need podman
    pm image exists "$BASE" && return 0
    case $BASE in localhost/*) ;; *) pm pull "$BASE"; return 0 ;; esac
    need mmdebstrap
    local tar="$CACHE/bookworm-python3.tar"
    if [ ! -s "$tar" ]; then
        mkdir -p "$CACHE"
        mmdebstrap --quiet --format=tar --variant=apt --include=python3,python3-venv,ca-certificates,passwd \
            bookworm "$tar.part"
        mv "$tar.part" "$tar"
    fi
    pm import --change 'CMD ["/bin/bash"]' "$tar" "$BASE" >/dev/null
}

build() {  # the Dockerfile on $BASE; the host's CA certificates let pip reach the index
    local tag=${1:-mnist-mlops} context=${2:-.}
    for f in models/champion/served.json models/champion/smoke.npz; do
        [ -f "$context/$f" ] || { echo "podman_image.sh: $context/$f missing; run 'dvc repro' first (the champion stage writes models/champion from the registry)" >&2; exit 1; }
    done
    base
    pm build "${LIMITS[@]}" --format docker --build-arg "BASE_IMAGE=$BASE" \
        -v /etc/ssl/certs:/etc/ssl/certs:ro -f "$PWD/Dockerfile" -t "$tag" "$context"
}

run() {  # foreground and removed on exit unless ARGS say otherwise; `podman stop` ends it
    need podman
    local tag=${1:-mnist-mlops}
    [ $# -gt 1 ] && shift || set -- --rm
    pm run "${LIMITS[@]}" -e "BENTOML_PORT=${BENTOML_PORT:-3000}" "$@" "$tag"
}

case ${1:-} in
    base) base ;;
    build) shift; build "$@" ;;
    run) shift; run "$@" ;;
    podman) shift; need podman; pm "$@" ;;
    *) echo "usage: scripts/podman_image.sh base | build [TAG] [CONTEXT] | run [TAG] | podman ARGS..." >&2; exit 2 ;;
esac
