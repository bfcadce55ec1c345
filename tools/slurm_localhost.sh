#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (controller and compute node are
# localhost), authenticated by munge, for the SLURM tests and for trying a SLURM
# profile by hand. Root only. Debian packages: slurmctld slurmd slurm-client munge.
#
#   tools/slurm_localhost.sh start    configure (once) and start munged, slurmctld, slurmd
#   tools/slurm_localhost.sh status   exit 0 if SLURM answers and the node takes jobs
#   tools/slurm_localhost.sh stop     stop the daemons (slurmd, slurmctld, munged) by their pid files
#
# It writes /etc/slurm/slurm.conf only if there is none or the one there is its own
# (first line below), so a real site's configuration is never replaced.
set -euo pipefail

MARK="# written by regenmap tools/slurm_localhost.sh"
CONF=/etc/slurm/slurm.conf
PARTITION="${REGENMAP_SLURM_PARTITION:-normal}"
LOGS=/var/log/slurm

say() { echo "slurm_localhost: $*" >&2; }

node_ready() {
  # the node answers and is idle, mixed or allocated (not down, drained or unknown)
  local state
  state="$(sinfo -h -N -o '%t' 2>/dev/null | head -n1)" || return 1
  case "$state" in idle*|mix*|alloc*|comp*) return 0 ;; *) return 1 ;; esac
}

write_conf() {
  local host cpus mem
  host="$(hostname -s)"
  # nproc honours OMP_NUM_THREADS and OMP_THREAD_LIMIT: the node gets every CPU this
  # process may run on, whatever the caller set for OpenMP.
  cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
  # RealMemory: 90 % of the machine, in MB (slurmd refuses a node that claims more)
  mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
  mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd "$LOGS"
  chown -R slurm:slurm /var/lib/slurm "$LOGS" 2>/dev/null || true
  cat > "$CONF" <<EOF
$MARK
ClusterName=regenmap-local
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroups needed (containers, gVisor): processes tracked by parent pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
# finished jobs stay visible to scontrol for 10 minutes
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $CONF (node $host, $cpus CPUs, $mem MB, partition $PARTITION)"
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "munged did not start"
  return 1
}

start() {
  if [ "$(id -u)" != 0 ]; then say "must run as root"; return 1; fi
  for exe in slurmctld slurmd munged sinfo sbatch; do
    command -v "$exe" >/dev/null || { say "$exe is not installed (apt-get install slurmctld slurmd slurm-client munge)"; return 1; }
  done
  if node_ready; then say "already running"; return 0; fi
  if [ -f "$CONF" ] && [ "$(head -n1 "$CONF")" != "$MARK" ]; then
    say "$CONF exists and is not ours; start your site's SLURM instead"
    return 1
  fi
  write_conf
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 150); do
    if node_ready; then say "ready: $(sinfo -h -o '%P %a %D %t')"; return 0; fi
    # a node that was down when slurmctld last stopped stays down until resumed
    sinfo -h -N -o '%t' 2>/dev/null | grep -Eq 'down|drain' \
      && scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
    sleep 0.2
  done
  say "SLURM did not become ready; see $LOGS/slurmctld.log and $LOGS/slurmd.log"
  return 1
}

stop() {
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}

case "${1:-start}" in
  start) start ;;
  status) node_ready ;;
  stop) stop ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
