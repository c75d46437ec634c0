#!/usr/bin/env bash
# Prepare this machine for the sandbox tests: install bubblewrap, slirp4netns and Docker, start
# dockerd, and build the Docker sandbox image offline (no registry: the base image comes from
# debootstrap). Idempotent: each step is skipped when already done. Run as root, after the
# workspace packages are installed (it uses the runtime's own `sandbox build-image`).
#
#   PYTHON=python3 bash .ci/setup-sandboxes.sh
set -euo pipefail

PYTHON=${PYTHON:-python3}
BASE_IMAGE=${DATIVO_SANDBOX_BASE:-dativo-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-} # empty: debootstrap uses its own default mirror
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dativo-dockerd.log}

log() { echo "setup-sandboxes: $*" >&2; }

missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# Egress of the process backend (network: true): a user-mode network stack in the sandbox's
# own network namespace; the egress tests build a test namespace with `ip`.
command -v slirp4netns >/dev/null || missing+=(slirp4netns)
command -v ip >/dev/null || missing+=(iproute2)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $DOCKERD_LOG)"
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not come up; last lines of its log:"
    tail -n 30 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "building the base image $BASE_IMAGE with debootstrap (about a minute)"
  rootfs=$(mktemp -d /var/tmp/dativo-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

sandbox() {
  "$PYTHON" -c 'import sys; from dativo_runtime._cli._sandbox import sandbox_app; sandbox_app(prog_name="dativo-run sandbox")' "$@"
}

# The image is current when the docker backend reports itself available (the image exists
# and holds this runtime's worker); otherwise (re)build it from the shipped Dockerfile.
if "$PYTHON" -c 'import sys; from dativo_runtime._sandbox import DockerSandbox; ok, why = DockerSandbox.availability(); print(why, file=sys.stderr); sys.exit(0 if ok else 1)'; then
  log "the sandbox image is up to date"
else
  log "building the sandbox image from $BASE_IMAGE"
  sandbox build-image --base "$BASE_IMAGE" --quiet
fi

sandbox doctor
