#!/usr/bin/env bash
# A one-node Slurm on 127.0.0.1 for tests (docs/cluster.md; facts in the notes of this project's CI):
# munge, slurmctld and slurmd started as root with every path in a temporary directory, the
# controller and node on their own free ports, stopped afterwards by the PIDs in their pid files.
# Source it, then: slurm_start DIR (returns 77, printing the reason, when Slurm cannot start here),
# slurm_stop (also run on exit). Exports SLURM_CONF for sbatch/squeue/scontrol/scancel.

slurm_skip() {
  echo "SKIP: a test Slurm cannot start on this machine: $*" >&2
  return 77
}

slurm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

slurm_write_conf() {
  local d=$1 host=$2 ctl_port=$3 node_port=$4
  cat > "$d/slurm.conf" <<CONF
ClusterName=eellmtest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctl_port}
SlurmdPort=${node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${d}/munge/munge.socket,cred_expire=10
StateSaveLocation=${d}/state
SlurmdSpoolDir=${d}/spool
SlurmctldPidFile=${d}/slurmctld.pid
SlurmdPidFile=${d}/slurmd.pid
SlurmctldLogFile=${d}/slurmctld.log
SlurmdLogFile=${d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
KillWait=60
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
  # Slurm 22.05 has no CgroupPlugin=disabled; autodetect without systemd works on cgroup v1.
  printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > "$d/cgroup.conf"
}

slurm_start() {
  SLURM_DIR=$1
  local tool
  for tool in munged slurmctld slurmd sbatch squeue scontrol scancel python3; do
    command -v "$tool" >/dev/null || { slurm_skip "$tool is not installed (scripts/install-deps.sh installs slurm-wlm and munge)"; return 77; }
  done
  [ "$(id -u)" -eq 0 ] || { slurm_skip "the test daemons run as root (SlurmUser=root) and this is uid $(id -u)"; return 77; }
  trap slurm_stop EXIT
  mkdir -p "$SLURM_DIR"/{munge,munge-key,state,spool}
  chmod 0755 "$SLURM_DIR" "$SLURM_DIR/munge"  # the socket's directories: execute for all
  chmod 0700 "$SLURM_DIR/munge-key"
  head -c 1024 /dev/urandom > "$SLURM_DIR/munge-key/munge.key"
  chmod 0400 "$SLURM_DIR/munge-key/munge.key"
  local m="$SLURM_DIR/munge"
  munged --key-file="$SLURM_DIR/munge-key/munge.key" --socket="$m/munge.socket" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/munged.seed" \
    || { slurm_skip "munged did not start: $(tail -n 3 "$m/munged.log" 2>/dev/null)"; return 77; }
  local host
  host=$(hostname -s)
  slurm_write_conf "$SLURM_DIR" "$host" "$(slurm_free_port)" "$(slurm_free_port)"
  export SLURM_CONF="$SLURM_DIR/slurm.conf"
  slurmctld -c || { slurm_skip "slurmctld did not start: $(tail -n 3 "$SLURM_DIR/slurmctld.log" 2>/dev/null)"; return 77; }
  slurmd || { slurm_skip "slurmd did not start: $(tail -n 3 "$SLURM_DIR/slurmd.log" 2>/dev/null)"; return 77; }
  local i
  for i in $(seq 1 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
      echo "slurm: node $host up (controller log $SLURM_DIR/slurmctld.log)"
      return 0
    fi
    sleep 1
  done
  slurm_skip "the node did not come up in 60 s: $(sinfo -N 2>&1 | tail -n 2); $(tail -n 3 "$SLURM_DIR/slurmd.log" 2>/dev/null)"
  return 77
}

slurm_stop() {
  [ -n "${SLURM_DIR:-}" ] || return 0
  local f pid
  for f in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid" "$SLURM_DIR/munge/munged.pid"; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  SLURM_DIR=
}

# Waits until job $1 has left the queue (or $2 seconds pass: returns 1); prints its final state.
slurm_wait_job() {
  local job=$1 limit=$2 t=0
  while squeue -h -j "$job" 2>/dev/null | grep -q .; do
    sleep 1
    t=$((t + 1))
    if [ "$t" -ge "$limit" ]; then
      echo "job $job still queued after ${limit}s: $(scontrol show job "$job" | tr '\n' ' ')" >&2
      return 1
    fi
  done
}

# One field of `scontrol show job` (e.g. JobState, ExitCode, Restarts).
slurm_job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Slurm makes a requeued batch job eligible cred_expire + 1 s after the requeue (Reason=BeginTime):
# the credentials of its first run stay revoked that long, and a start inside that window fails
# ("Killing non-startable batch JobId=…: Job credential revoked", JobState=FAILED). The default is
# 120 s; the test Slurm sets cred_expire=10 (slurm_write_conf), so the job restarts 11 s after its
# requeue by Slurm's own rule (its backfill pass starts it within about 30 s more). Forcing
# StartTime=now instead raced the revocation: a fresh-clone CI run on 2026-12-07 restarted the job
# 0.23 s after the requeue and lost it. Waits up to $2 s for the restart.
slurm_wait_requeued_start() {
  local job=$1 limit=$2 t=0
  while [ "$t" -lt $((limit * 5)) ]; do
    if [ "$(slurm_job_field "$job" Restarts)" != 0 ] && [ "$(slurm_job_field "$job" JobState)" != PENDING ]; then
      echo "requeued job $job restarted"
      return
    fi
    sleep 0.2
    t=$((t + 1))
  done
}
