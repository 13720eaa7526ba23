#!/usr/bin/env bash
# Builds the ANTs baseline of benchmarks/bench_vs_ants.py: a Debian sid chroot with the `ants`
# package (2.6.5 at the time of writing). The ANTs command-line tools are not in Debian bookworm,
# and trixie's 2.5.4 antsRegistration segfaults when it writes transforms. Idempotent; needs root
# and a Debian mirror. The tools and scripts lie in $ROOT/usr/lib/ants: run them with
#   chroot "$ROOT" env PATH=/usr/lib/ants:/usr/bin:/bin ANTSPATH=/usr/lib/ants/ TOOL ...
#   ANTS_CHROOT  where the chroot goes (default /work/ants-chroot, outside the repository)
#   DEBIAN_MIRROR  the mirror (default http://deb.debian.org/debian)
set -euo pipefail
ROOT=${ANTS_CHROOT:-/work/ants-chroot}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -x "$ROOT/usr/lib/ants/antsRegistrationSyNQuick.sh" ]; then
  echo "ANTs chroot ready: $ROOT"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase sid "$ROOT" "$MIRROR"
fi
# The host's resolver, for apt inside the chroot.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
APT=(apt-get -o Acquire::Check-Valid-Until=false)
chroot "$ROOT" "${APT[@]}" update -qq
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq \
  --no-install-recommends ants >/dev/null
chroot "$ROOT" dpkg-query -W ants
echo "ANTs chroot ready: $ROOT"
