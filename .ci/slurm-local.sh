#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for the tests marked `slurm` (`make test-slurm`).
#   bash .ci/slurm-local.sh start   installs slurmctld, slurmd and munge (Debian) when missing,
#                                   writes /etc/slurm/slurm.conf, starts munged, slurmctld and
#                                   slurmd, and waits until the node is idle
#   bash .ci/slurm-local.sh stop    stops the daemons it started (by the PIDs it recorded)
# Seen working with Debian bookworm's SLURM 22.05 and trixie's 24.11.
set -euo pipefail
STATE=${SLURM_LOCAL_STATE:-/var/tmp/neurostrat-slurm}
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
MEMORY_MB=${SLURM_LOCAL_MEMORY_MB:-4000}

start() {
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge ||
      { apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge; }
  fi
  grep -qE '^127\.0\.0\.1\s.*\blocalhost\b' /etc/hosts || echo "127.0.0.1 localhost" >>/etc/hosts
  mkdir -p "$STATE"/{ctld,slurmd,log} /etc/slurm /run/munge
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=localhost
SlurmctldAddr=127.0.0.1
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  # slurmd 24.11 refuses to start here without CgroupPlugin=disabled; 22.05 does not know the
  # value (and starts without the file)
  major=$(slurmd -V | sed -E 's/^slurm(-wlm)? ([0-9]+)\..*/\2/')
  if [ "$major" -ge 23 ]; then
    echo "CgroupPlugin=disabled" >/etc/slurm/cgroup.conf
  else
    rm -f /etc/slurm/cgroup.conf
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  chown munge:munge /run/munge 2>/dev/null || true
  munged --foreground --force >"$STATE/log/munged.log" 2>&1 &
  echo $! >"$STATE/munged.started"
  slurmctld -D >"$STATE/log/slurmctld.out" 2>&1 &
  echo $! >"$STATE/slurmctld.started"
  slurmd -D -N localhost >"$STATE/log/slurmd.out" 2>&1 &
  echo $! >"$STATE/slurmd.started"
  for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      sinfo
      return 0
    fi
    sleep 2
  done
  echo "SLURM did not start; logs in $STATE/log" >&2
  tail -n 20 "$STATE"/log/* >&2 || true
  return 1
}

stop() {
  for daemon in slurmd slurmctld munged; do
    if [ -s "$STATE/$daemon.started" ]; then
      kill "$(cat "$STATE/$daemon.started")" 2>/dev/null || true
      rm -f "$STATE/$daemon.started"
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
