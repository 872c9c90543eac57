#!/usr/bin/env bash
# A single-node SLURM (munged, slurmctld, slurmd) on this machine, for the SLURM executor tests.
#
#   .ci/slurm.sh install   apt-get install slurm-wlm and munge if missing, then start
#   .ci/slurm.sh start     start whatever is not running (idempotent; the tests call this)
#   .ci/slurm.sh stop      stop the daemons this script started
#
# It writes /etc/slurm/slurm.conf only when that file is missing or was written by this
# script; a machine with its own SLURM configuration keeps it. Accounting is off (no
# slurmdbd), so `sacct` has no records here: the executor reads job states from
# `scontrol show job` (and `squeue`), which keep a finished job for MinJobAge seconds.
# Exit status: 0 when SLURM answers (or when it cannot start here: the message says why,
# and the tests skip); non-zero only for bad usage.
set -uo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# written by ptychojobs .ci/slurm.sh"
STATE=${PTYCHOJOBS_SLURM_STATE:-/var/tmp/ptychojobs-slurm}

say() { echo "slurm.sh: $*" >&2; }

cannot() {
  say "SLURM cannot start here: $*"
  exit 0
}

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null \
      || cannot "apt-get install slurm-wlm munge failed"
  fi
}

answers() {
  scontrol ping 2>/dev/null | grep -q "is UP" \
    && sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"
}

write_conf() {
  if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    say "keeping the existing $CONF"
    return
  fi
  local host cpus mem_mb
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat >"$CONF" <<EOF
$MARKER
ClusterName=ptychojobs
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if pgrep -x munged >/dev/null; then return; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  if id munge >/dev/null 2>&1 && command -v runuser >/dev/null; then
    runuser -u munge -- munged || munged --force || cannot "munged did not start"
  else
    munged --force || cannot "munged did not start"
  fi
}

start() {
  command -v slurmctld >/dev/null || cannot "slurm-wlm is not installed (.ci/slurm.sh install)"
  command -v munged >/dev/null || cannot "munge is not installed (.ci/slurm.sh install)"
  if answers; then
    say "already running"
    return
  fi
  write_conf
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld || cannot "slurmctld did not start ($STATE/log)"
  pgrep -x slurmd >/dev/null || slurmd || cannot "slurmd did not start ($STATE/log)"
  for _ in $(seq 60); do
    if answers; then
      say "running: $(sinfo -h -o '%P %D %t %c CPUs %m MB')"
      return
    fi
    # A node left down by an earlier stop comes back once slurmd registers.
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  cannot "no idle node after 60 s; see $STATE/log"
}

stop() {
  for daemon in slurmd slurmctld; do
    if [[ -s $STATE/$daemon.pid ]]; then
      kill "$(cat "$STATE/$daemon.pid")" 2>/dev/null || true
    fi
  done
}

case "${1:-start}" in
  install) install && start ;;
  start) start ;;
  stop) stop ;;
  *)
    say "usage: $0 [install|start|stop]"
    exit 2
    ;;
esac
