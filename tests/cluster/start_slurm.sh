#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the cluster tests (tests/cluster/).
#
#   tests/cluster/start_slurm.sh          install (if needed), configure, start; wait until idle
#   tests/cluster/start_slurm.sh stop     stop the daemons this script started
#
# Needs root (CI containers, a throwaway VM). Idempotent: a cluster that already answers is
# left alone, and slurm.conf is written only when absent or written by this script before.
# The node is this host with its CPUs and memory (slurmd -C); one partition, "debug".
set -euo pipefail

STATE=/run/mlip-autopipec-slurm          # pid files of the daemons this script started
CONF=/etc/slurm/slurm.conf
MARK="# written by mlip-autopipec tests/cluster/start_slurm.sh"
PARTITION=debug

stop() {
    for name in slurmd slurmctld munged; do
        pidfile="$STATE/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$pidfile"
    done
    echo "SLURM daemons started by $0 stopped"
}

if [ "${1:-start}" = "stop" ]; then
    stop
    exit 0
fi

if sinfo --noheader --states=idle,mixed,allocated --format=%N 2>/dev/null | grep -q .; then
    echo "SLURM already answers:"; sinfo
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "start_slurm.sh: needs root to install and start SLURM" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# munge: the key that authenticates slurmctld and slurmd to each other.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- munged
    pgrep -u munge -n munged > "$STATE/munged.pid"
fi

if [ ! -f "$CONF" ] || grep -qF "$MARK" "$CONF"; then
    host=$(hostname -s)
    # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
    node=$(slurmd -C | head -n 1)
    cat > "$CONF" <<CONFIG
$MARK
ClusterName=mlipci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Quick turnover for tests: a killed job gets 5 s between SIGTERM and SIGKILL.
KillWait=5
InactiveLimit=0
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONFIG
fi

# The daemons write their own pid files (SlurmctldPidFile, SlurmdPidFile above).
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 60); do
    if sinfo --noheader --states=idle --format=%N 2>/dev/null | grep -q .; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "start_slurm.sh: the node did not become idle within 60 s; logs in /var/log/slurm" >&2
sinfo >&2 || true
exit 1
