#!/usr/bin/env bash
# `eellm launch tiny-ee-pp2 --slurm -o job.sbatch` on a one-node test Slurm (slurm_fixture.sh):
# sbatch runs the script to completion and its 2 ranks' losses equal the single-process run of
# the same model. Usage: slurm_job_test.sh EELLM WORKDIR LAUNCHER STEPS. Exit 77: Slurm cannot start.
set -uo pipefail
E=$1 WORK=$2 LAUNCHER=$3 STEPS=$4
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/slurm_fixture.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
slurm_start "$WORK/slurm" || exit $?

"$E" launch tiny-ee-pp2 --slurm -o job.sbatch --launcher "$LAUNCHER" --steps "$STEPS" --time 00:30:00 || exit 1
grep -q '^#SBATCH --ntasks-per-node=2$' job.sbatch || { echo "FAIL: job.sbatch asks for no 2 tasks"; exit 1; }
job=$(sbatch --parsable job.sbatch) || { echo "FAIL: sbatch refused job.sbatch"; exit 1; }
echo "submitted job $job ($LAUNCHER, $STEPS steps)"
# The single-process reference meanwhile: the same model and data, pipeline 1.
sed -e 's/pipeline_model_parallel_size: 2/pipeline_model_parallel_size: 1/' -e 's/world_size: 2/world_size: 1/' \
  job.yaml > single.yaml
"$E" train single.yaml --steps "$STEPS" --threads 1 --metrics single.jsonl > single.log 2>&1 || { cat single.log; exit 1; }
slurm_wait_job "$job" 900 || exit 1
state="JobState=$(slurm_job_field "$job" JobState) ExitCode=$(slurm_job_field "$job" ExitCode)"
echo "job $job: $state"
cat job-logs/slurm-"$job".out
if ! [ "$state" = "JobState=COMPLETED ExitCode=0:0" ]; then
  echo "FAIL: the job did not complete"; tail -n 20 job-logs/rank-*.log job-logs/ranks-*/*/*/std* 2>/dev/null; exit 1
fi
python3 "$HERE/compare_losses.py" job-logs/metrics.jsonl single.jsonl 1e-4 "$STEPS" || exit 1
echo "PASS"
