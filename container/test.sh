#!/usr/bin/env bash
# Runs the NeuroStrat image as users run it and compares it with the virtual environment
# (`make container-test`; CI runs it after `make container`). Every claim about the container
# in README.md and docs/installation.md is checked here:
#   - `--version` equals the version file; the OCI and BIDS-App labels are set;
#   - HD-BET v1's and brainchop's weights are baked in and intact; no build tool, test tool,
#     package manager or proxy certificate is left in the image; its size;
#   - the 12-subject 2 mm synthetic cohort, participant (--sloppy) then group, offline
#     (--network none), with a read-only root (--read-only --tmpfs /tmp), as uid 12345 with no
#     HOME and no -w (the default work folder must be writable for any uid): its outputs equal
#     a venv run on the same input (the file list, and the volumes TSVs within 1e-6);
#   - as Singularity runs it: a host HOME with user site-packages and a read-only HOME;
#   - `--device cuda` without a GPU stops with a one-line error;
#   - the docker CLI against podman's socket, where both are installed.
# Environment: ENGINE (podman or docker), IMAGE, KEEP=1 keeps the scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
IMAGE=${IMAGE:-neurostrat/neurostrat:$(cat version)}
VENV_PYTHON=${VENV_PYTHON:-.venv/bin/python}
MAX_IMAGE_BYTES=$((2500 * 1000 * 1000))
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/neurostrat-container-test.XXXXXX")
SERVICE_PID=
cleanup() {
  [ -z "$SERVICE_PID" ] || kill "$SERVICE_PID" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$SCRATCH"
}
trap cleanup EXIT
fail() { echo "container-test FAILED: $*" >&2; exit 1; }
step() { echo "== $* ($(date +%H:%M:%S))"; }
# The runtime constraints of every run below: offline, read-only root, an arbitrary uid.
USER_RUN=("$ENGINE" run --rm --network none --read-only --tmpfs /tmp --user 12345:12345)

step "version and labels"
version=$(cat version)
[ "$("$ENGINE" run --rm --network none "$IMAGE" --version)" = "$version" ] \
  || fail "--version differs from the version file ($version)"
labels=$("$ENGINE" image inspect "$IMAGE" --format '{{json .Config.Labels}}')
for label in org.opencontainers.image.version org.opencontainers.image.source \
  org.bids-apps.analysis-levels; do
  grep -q "\"$label\"" <<<"$labels" || fail "label $label is missing"
done
grep -q "\"org.opencontainers.image.version\":\"$version\"" <<<"$labels" \
  || fail "label org.opencontainers.image.version is not $version"

step "weights baked in; nothing of the build left"
# MeshNet's weights are required when the build context had them (container/models/).
require=()
[ ! -f container/models/mindgrab/model.bin ] || require=(--require)
"${USER_RUN[@]}" --entrypoint python "$IMAGE" -m bids_app.cli.models "${require[@]}" \
  || fail "pretrained weights missing or damaged in the image"
"${USER_RUN[@]}" --entrypoint sh "$IMAGE" -c '
  for tool in gcc g++ cc npm pytest ruff; do
    if command -v "$tool" >/dev/null; then echo "$tool is in the image"; exit 1; fi
  done
  if python -c "import pytest" 2>/dev/null; then echo "pytest is importable"; exit 1; fi
  if [ -n "${PIP_CERT:-}${SSL_CERT_FILE:-}${NODE_EXTRA_CA_CERTS:-}" ] || [ -e /run/secrets/ca ]; then
    echo "the build certificate is left in the image"; exit 1
  fi
  bids-validator --version >/dev/null' || fail "build leftovers in the image"
size=$("$ENGINE" image inspect "$IMAGE" --format '{{.Size}}')
echo "image size: $((size / 1000000)) MB"
[ "$size" -le "$MAX_IMAGE_BYTES" ] || fail "the image is $((size / 1000000)) MB (target 2500)"

step "Singularity's environment: a host HOME with user site-packages, read-only"
poison="$SCRATCH/home/.local/lib/python3.11/site-packages/numpy"
mkdir -p "$poison"
echo 'raise ImportError("the host HOME site-packages were imported")' >"$poison/__init__.py"
"${USER_RUN[@]}" -e HOME=/home/user -v "$SCRATCH/home:/home/user:ro" --entrypoint python \
  "$IMAGE" -c "import numpy, matplotlib.pyplot" 2>"$SCRATCH/home.err" \
  || fail "host site-packages override the image's: $(cat "$SCRATCH/home.err")"
if [ -s "$SCRATCH/home.err" ]; then
  fail "warnings with a read-only HOME: $(cat "$SCRATCH/home.err")"
fi

step "the synthetic cohort (12 subjects, 2 mm)"
"$VENV_PYTHON" -m bids_app.synthetic "$SCRATCH/bids" --n-subjects 12 --n-sites 3 --seed 0 \
  --voxel-size 2.0 --n-jobs 2 >/dev/null
# The cohort with the template brain extraction and the cheap families; HD-BET and the
# thickness (DiReCT), which take most of the time on 2 cores, run on one session. A cohort this
# small needs SMOTE and ComBat off.
PARTICIPANT=(participant --sloppy --seed 0 --nprocs 2 --omp-nthreads 1 --skull-strip template
  --features volumes radiomics histogram)
GROUP=(group --seed 0 --nprocs 2 --target diagnosis --positive-label ALS --smote-k 0
  --harmonization none)
HDBET=(participant --sloppy --seed 0 --omp-nthreads 1 --participant-label 001
  --features volumes thickness)

step "--device cuda without a GPU"
status=0
"${USER_RUN[@]}" -v "$SCRATCH/bids:/bids:ro" "$IMAGE" /bids /tmp/out participant \
  --participant-label 001 --device cuda 2>"$SCRATCH/cuda.err" || status=$?
[ "$status" -eq 64 ] && [ "$(wc -l <"$SCRATCH/cuda.err")" -eq 1 ] \
  && grep -q -- "--gpus all" "$SCRATCH/cuda.err" \
  || fail "--device cuda: not exit 64 with one line naming the fix: $(cat "$SCRATCH/cuda.err")"

step "in the container: participant (no -w), again (resumes), group (-w on a mount)"
mkdir -p "$SCRATCH/out-container" "$SCRATCH/work-container"
chown 12345:12345 "$SCRATCH/out-container" "$SCRATCH/work-container"
MOUNTS=(-v "$SCRATCH/bids:/bids:ro" -v "$SCRATCH/out-container:/out")
"${USER_RUN[@]}" "${MOUNTS[@]}" "$IMAGE" /bids /out "${PARTICIPANT[@]}"
"${USER_RUN[@]}" "${MOUNTS[@]}" "$IMAGE" /bids /out "${PARTICIPANT[@]}" 2>&1 \
  | tee "$SCRATCH/again.log" | tail -3
grep -q "participant level: 0 done, 15 skipped, 0 failed" "$SCRATCH/again.log" \
  || fail "a second participant run did not resume (every session should be skipped)"
"${USER_RUN[@]}" "${MOUNTS[@]}" -v "$SCRATCH/work-container:/work" "$IMAGE" /bids /out \
  "${GROUP[@]}" -w /work
mkdir -p "$SCRATCH/hdbet-container"
chown 12345:12345 "$SCRATCH/hdbet-container"
"${USER_RUN[@]}" -v "$SCRATCH/bids:/bids:ro" -v "$SCRATCH/hdbet-container:/out" "$IMAGE" \
  /bids /out "${HDBET[@]}" 2>&1 | tee "$SCRATCH/hdbet.log" | tail -2
grep -q "brain extraction hdbet (HD-BET v1" "$SCRATCH/hdbet.log" || fail "HD-BET v1 did not run"

step "in the virtual environment: the same"
for level in PARTICIPANT GROUP; do
  declare -n arguments=$level
  "$VENV_PYTHON" -m bids_app "$SCRATCH/bids" "$SCRATCH/out-venv" "${arguments[@]}" \
    -w "$SCRATCH/work-venv" >"$SCRATCH/venv-$level.log" 2>&1 \
    || fail "the venv run failed: $(tail -5 "$SCRATCH/venv-$level.log")"
done
"$VENV_PYTHON" -m bids_app "$SCRATCH/bids" "$SCRATCH/hdbet-venv" "${HDBET[@]}" \
  -w "$SCRATCH/work-venv-hdbet" >"$SCRATCH/venv-hdbet.log" 2>&1 \
  || fail "the venv run failed: $(tail -5 "$SCRATCH/venv-hdbet.log")"
for name in out hdbet; do
  "$VENV_PYTHON" container/compare_outputs.py "$SCRATCH/$name-container" "$SCRATCH/$name-venv" \
    || fail "the container's outputs differ from the venv's ($name)"
done

if [ "$(basename "$ENGINE")" = podman ] && command -v docker >/dev/null; then
  step "the docker CLI against podman's socket"
  podman system service --time=0 "unix://$SCRATCH/podman.sock" &
  SERVICE_PID=$!
  for _ in $(seq 50); do [ -S "$SCRATCH/podman.sock" ] && break; sleep 0.2; done
  # Through podman's service `docker run` exits 0 whatever happened: check the output.
  [ "$(DOCKER_HOST="unix://$SCRATCH/podman.sock" docker run --rm --network none "$IMAGE" \
    --version)" = "$version" ] || fail "docker run through podman's socket"
fi
step "container-test passed"
