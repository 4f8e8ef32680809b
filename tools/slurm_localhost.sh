#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, on loopback only, for the tests of
# `--dask slurm:JOBS` (and for trying the SLURM recipe of docs/clusters.md without a cluster).
#
#   tools/slurm_localhost.sh start DIR   install slurm-wlm and munge if missing (apt-get, as
#                                        root), write DIR/slurm.conf (one node, "localhost",
#                                        127.0.0.1, all its cores, partition "debug"), start
#                                        munged, slurmctld and slurmd with their state, logs and
#                                        sockets under DIR, and wait until the node is idle
#   tools/slurm_localhost.sh stop DIR    cancel every job, stop the three daemons started in DIR
#
# Then point SLURM's commands (sbatch, squeue, scancel, sinfo: and so dask-jobqueue) at it:
#
#   export SLURM_CONF=DIR/slurm.conf
#
# Runs as root (SlurmUser=root: CI's containers have no slurm user).  The daemons' ports are
# free ones picked at start, so it does not collide with a SLURM already on the machine.
set -euo pipefail

# Seconds to wait for the node to be idle after starting the daemons (they take a few).
START_TIMEOUT_S=60

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
export SLURM_CONF="$dir/slurm.conf"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_missing() {
    local missing=()
    for command in slurmctld:slurmctld slurmd:slurmd munged:munge sinfo:slurm-client; do
        command -v "${command%%:*}" >/dev/null 2>&1 || missing+=("${command##*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
    fi
}

stop_pid_file() {
    local file=$1
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

start() {
    [ "$(id -u)" -eq 0 ] || { echo "$0: SlurmUser=root: run as root" >&2; exit 1; }
    install_missing
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
    chmod 700 "$dir/munge"
    local cpus memory_mb
    cpus=$(nproc --all)  # the machine's, not this process's affinity (slurmd counts them all)
    memory_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
    # munge: its own key, socket and state here (not the machine's /etc/munge, /run/munge).
    [ -f "$dir/munge/munge.key" ] || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    cat > "$SLURM_CONF" <<EOF
# One node on loopback, written by tools/slurm_localhost.sh
ClusterName=localhost
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# A cancelled job's processes get this long after SIGTERM before SIGKILL.
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    slurmctld -c -f "$SLURM_CONF"
    slurmd -N localhost -f "$SLURM_CONF"
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until [ "$(sinfo -h -N -o %t 2>/dev/null)" = "idle" ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "$0: the node is not idle after ${START_TIMEOUT_S} s (sinfo: $(sinfo -h -N -o %t 2>&1 || true)); logs in $dir/log" >&2
            stop
            exit 1
        fi
        sleep 0.5
    done
    echo "SLURM up: export SLURM_CONF=$SLURM_CONF"
}

# Seconds to wait for the cancelled jobs to leave the queue before the daemons stop.
STOP_TIMEOUT_S=10

stop() {
    if [ -f "$SLURM_CONF" ] && [ -f "$dir/slurmctld.pid" ]; then
        scancel --full --quiet --partition=debug 2>/dev/null || true
        # A job's steps end before slurmd does, or they outlive it as orphaned slurmstepd.
        local deadline=$((SECONDS + STOP_TIMEOUT_S))
        while [ -n "$(squeue -h 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    fi
    stop_pid_file "$dir/slurmd.pid"
    stop_pid_file "$dir/slurmctld.pid"
    stop_pid_file "$dir/munge/munged.pid"
    stop_leftover_steps
}

stop_leftover_steps() {
    # Job steps this cluster started (slurmd passed them its SLURM_CONF) and that still run.
    local pid
    for pid in $(pgrep -x slurmstepd || true); do
        if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
}

case $action in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
