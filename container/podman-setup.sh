#!/usr/bin/env bash
# Prepares podman to build and run the NeuroStrat image on a Debian machine without a Docker
# engine (CI, this project's development machines). Idempotent; needs root.
#   1. installs podman, buildah, runc and debootstrap when podman is missing;
#   2. sets runc as the runtime and raises the open-file limit of containers;
#   3. when the registry cannot be reached, builds a local stand-in for the base image
#      python:3.11-slim-bookworm from Debian packages (debootstrap; Debian's Python 3.11).
set -euo pipefail
cd "$(dirname "$0")"
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}

if ! command -v podman >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman buildah runc debootstrap uidmap fuse-overlayfs ca-certificates >/dev/null
fi
if ! grep -qs 'runtime = "runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
fi
podman --version

if podman image exists "$BASE_IMAGE"; then
  exit 0
fi
if timeout 60 podman pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  exit 0
fi
echo "no registry: building a stand-in for $BASE_IMAGE from Debian bookworm (debootstrap)"
if ! podman image exists localhost/debian-base:bookworm; then
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # as slim as the official images: no package cache, documentation or translations
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import -q - localhost/debian-base:bookworm
  rm -rf "$rootfs"
fi
podman build -q --network host -f python-standin.Dockerfile -t "$BASE_IMAGE" .
