#!/usr/bin/env bash
# A single-node Slurm cluster on this machine for the executor tests: munged, slurmctld and
# slurmd on localhost, state and logs under DIR, no cgroups, no accounting.
#   cluster.sh start DIR   installs Debian's slurm-wlm and munge if missing, starts the daemons,
#                          waits until the node is idle; writes DIR/slurm.conf (export
#                          SLURM_CONF=DIR/slurm.conf to use it). Exit 2: this machine cannot run
#                          slurmd (the reason on stderr).
#   cluster.sh stop DIR    stops the daemons.
set -uo pipefail
cmd=${1:?start or stop}
D=$(realpath -m "${2:?state directory}")

skip() { echo "cannot run a Slurm cluster here: $*" >&2; exit 2; }

stop() {
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null
    done
    sleep 1
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2>/dev/null
        rm -f "$pid"
    done
    return 0
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
[ "$cmd" = start ] || { echo "usage: cluster.sh start|stop DIR" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "slurmd must run as root (this is uid $(id -u))"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    echo "installing slurm-wlm and munge (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >"$D.apt.log" 2>&1 \
        || skip "apt-get install slurm-wlm munge failed (log: $D.apt.log)"
fi

mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/log"
chmod 755 "$D" "$D/munge"
if [ ! -f "$D/munge/munge.key" ]; then
    dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
fi
chmod 600 "$D/munge/munge.key"
munged --force --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" \
    || skip "munged did not start (log: $D/log/munged.log)"

host=$(hostname)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
# Ports from the state directory's name, so two clusters on one machine do not collide.
base=$(( 20000 + $(printf '%s' "$D" | cksum | cut -d' ' -f1) % 20000 ))
cat >"$D/slurm.conf" <<CONF
ClusterName=ascrepro-test
SlurmctldHost=$host
SlurmctldPort=$base
SlurmdPort=$((base + 1))
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
slurmctld -i || { stop; skip "slurmctld did not start (log: $D/log/slurmctld.log)"; }
slurmd || { stop; skip "slurmd did not start (log: $D/log/slurmd.log)"; }
for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null)
    case "$state" in idle*|mixed*|allocated*) echo "$D/slurm.conf"; exit 0 ;; esac
    sleep 0.5
done
tail -5 "$D/log/slurmd.log" "$D/log/slurmctld.log" >&2
stop
skip "the node did not come up (state: ${state:-none})"
