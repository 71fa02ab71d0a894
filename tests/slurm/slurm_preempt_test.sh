#!/usr/bin/env bash
# Preemption on a one-node test Slurm (slurm_fixture.sh): the job of a small tiny-ee-pp2 (2 ranks)
# gets the pre-timeout signal mid-run (`scancel --signal=USR1 --batch`, as --signal=B:USR1@N sends
# it); the ranks checkpoint and exit 75, the job requeues itself, resumes from the checkpoint and
# ends with the losses of the uninterrupted run, each iteration once. The uninterrupted reference is
# the same 2-rank run under mpirun without Slurm (bitwise equal), and the single-process run (fp32
# tolerance). Usage: slurm_preempt_test.sh EELLM WORKDIR LAUNCHER STEPS. Exit 77: Slurm cannot start.
set -uo pipefail
E=$1 WORK=$2 LAUNCHER=$3 STEPS=$4
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/slurm_fixture.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # the test Slurm runs as root
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
slurm_start "$WORK/slurm" || exit $?

# tiny-ee-pp2 with small sizes so that a step takes milliseconds (the inference lengths shrink with the
# positions: validation refuses a prompt + generation longer than the learned positions).
sed -e 's/hidden_size: 256/hidden_size: 64/' -e 's/seq_length: 256/seq_length: 64/' \
  -e 's/max_position_embeddings: 256/max_position_embeddings: 64/' -e 's/global_batch_size: 32/global_batch_size: 8/' \
  -e 's/micro_batch_size: 8/micro_batch_size: 2/' -e 's/prompt_length: 64/prompt_length: 32/' \
  -e 's/max_new_tokens: 64/max_new_tokens: 32/' -e 's/^name: tiny-ee-pp2/name: tiny-ee-pp2-small/' \
  "$EELLM_SCENARIOS/tiny-ee-pp2.yaml" > small.yaml
"$E" launch small.yaml --slurm -o job.sbatch --launcher "$LAUNCHER" --steps "$STEPS" --time 00:30:00 || exit 1
job=$(sbatch --parsable job.sbatch) || { echo "FAIL: sbatch refused job.sbatch"; exit 1; }
echo "submitted job $job ($LAUNCHER, $STEPS steps)"
# Iterations done so far, from rank 0's log (srun: rank-0.log; mpirun: ranks-restart0/1/rank.0/stderr).
iterations() { cat job-logs/rank-0.log job-logs/ranks-restart0/*/rank.0/stderr 2>/dev/null | grep -c '^iter '; }
for _ in $(seq 1 3000); do
  [ "$(iterations)" -ge 3 ] && break
  squeue -h -j "$job" 2>/dev/null | grep -q . || break
  sleep 0.2
done
done_before=$(iterations)
[ "$done_before" -ge 3 ] || { echo "FAIL: the job wrote no 3 iterations"; cat job-logs/slurm-*.out; exit 1; }
[ "$done_before" -lt "$STEPS" ] || { echo "FAIL: the job ended before the signal"; exit 1; }
scancel --signal=USR1 --batch "$job" || { echo "FAIL: scancel --signal=USR1 --batch $job"; exit 1; }
echo "signalled job $job after $done_before iterations"
# The references meanwhile.
mpirun --oversubscribe -np 2 "$E" train job.yaml --steps "$STEPS" --threads 1 --metrics dist.jsonl > dist.log 2>&1 \
  || { cat dist.log; exit 1; }
sed -e 's/pipeline_model_parallel_size: 2/pipeline_model_parallel_size: 1/' -e 's/world_size: 2/world_size: 1/' \
  job.yaml > single.yaml
"$E" train single.yaml --steps "$STEPS" --threads 1 --metrics single.jsonl > single.log 2>&1 || { cat single.log; exit 1; }
slurm_wait_requeued_start "$job" 300
slurm_wait_job "$job" 900 || exit 1
state="JobState=$(slurm_job_field "$job" JobState) ExitCode=$(slurm_job_field "$job" ExitCode)"
restarts="Restarts=$(slurm_job_field "$job" Restarts)"
echo "job $job: $state $restarts"
cat job-logs/slurm-"$job".out
[ "$state" = "JobState=COMPLETED ExitCode=0:0" ] || { echo "FAIL: the job did not complete"; exit 1; }
[ "$restarts" != "Restarts=0" ] || { echo "FAIL: the job was never requeued"; exit 1; }
grep -q 'requeueing job' job-logs/slurm-"$job".out || { echo "FAIL: the job did not requeue itself"; exit 1; }
grep -q "stopped by SIGUSR1 after iteration" job-logs/slurm-"$job".out job-logs/rank-0.log \
  job-logs/ranks-restart0/*/rank.0/stderr 2>/dev/null || { echo "FAIL: no rank reported the signal"; exit 1; }
grep -hq "resumed from" job-logs/rank-0.log job-logs/ranks-restart1/*/rank.0/stderr 2>/dev/null \
  || { echo "FAIL: the requeued job did not resume from the checkpoint"; exit 1; }
python3 "$HERE/compare_losses.py" job-logs/metrics.jsonl dist.jsonl 0 "$STEPS" || exit 1
python3 "$HERE/compare_losses.py" job-logs/metrics.jsonl single.jsonl 1e-4 "$STEPS" || exit 1
echo "PASS"
