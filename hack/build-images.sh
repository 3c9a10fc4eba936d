#!/usr/bin/env bash
# Builds the operator, trainer and server images with podman (no Docker needed) from the same
# Dockerfiles a Docker user builds. The base image is made from Debian's archive (debootstrap
# minbase bookworm + Python 3.11) and named through the Dockerfiles' PYTHON_IMAGE build argument.
# pip's cache and buildah's cache mounts live outside the work tree, so rebuilds reuse downloads.
#   hack/build-images.sh [base|operator|trainer|server ...]   (default: all)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ACGS_CACHE:-$HOME/.cache/acgs}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_IMAGE="${ACGS_BASE_IMAGE:-localhost/acgs-base:$SUITE}"
REGISTRY="${IMAGE_REGISTRY:-ghcr.io/acgs}"
TAG="${IMAGE_TAG:-0.1.0}"
# Only PyPI is reachable here, and PyPI's torch for Linux x86_64 is the CUDA build; the Dockerfiles'
# own defaults (download.pytorch.org) stay for users who can reach it.
TORCH_INDEX="${TORCH_INDEX:-https://pypi.org/simple}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/hack/images/containers.conf}"
# buildah keeps RUN --mount=type=cache directories under $TMPDIR: keep them in the cache.
export TMPDIR="$CACHE/tmp"
mkdir -p "$TMPDIR"
log() { echo "[build-images] $*" >&2; }

# This machine's TLS trust (an egress proxy's CA) and pip settings, visible to RUN steps only;
# nothing of it lands in an image layer.
build_mounts=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && build_mounts+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[[ -f /etc/pip.conf ]] && build_mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)

build_base() {
  if podman image exists "$BASE_IMAGE" && [[ -z "${REBUILD_BASE:-}" ]]; then return; fi
  local t0=$SECONDS rootfs="$CACHE/tmp/rootfs-$SUITE"
  log "debootstrap --variant=minbase $SUITE from $MIRROR"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/tmp/debootstrap.log" >&2; exit 1; }
  # Smaller and reproducible enough: no apt lists, caches or docs.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "base $BASE_IMAGE in $((SECONDS - t0))s"
}

build_one() {
  local name=$1 dockerfile=$2 t0=$SECONDS
  local args=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE")
  [[ $name != operator ]] && args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")
  log "building $REGISTRY/$name:$TAG from $dockerfile"
  podman build --layers --network=host "${build_mounts[@]}" "${args[@]}" \
    -f "$ROOT/$dockerfile" -t "$REGISTRY/$name:$TAG" "$ROOT" >&2
  log "$name built in $((SECONDS - t0))s"
  # The build stage's layers (a second copy of the ML images' venv) and the replaced image would
  # fill a shared disk: drop them. Rebuilds then reinstall from the wheelhouse (no download).
  podman image prune -f >/dev/null
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(base operator trainer server)
for t in "${targets[@]}"; do
  case "$t" in
    base) build_base ;;
    operator) build_base; build_one operator operator/Dockerfile ;;
    trainer) build_base; build_one trainer trainer_image/Dockerfile ;;
    server) build_base; build_one server server_image/Dockerfile ;;
    *) echo "unknown image: $t (expected base, operator, trainer or server)" >&2; exit 2 ;;
  esac
done
podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "acgs" >&2 || true
