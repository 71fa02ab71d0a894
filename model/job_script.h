// Slurm job scripts for a plan (`eellm launch`, docs/cluster.md): the plan's ranks started by srun
// (PMIx) or mpirun running `eellm train`, or the same plan as an EE-LLM/Megatron torchrun job under
// srun (through scenario_to_megatron). Both ask Slurm for a signal before the time limit and are
// requeue-safe: the eellm job forwards the signal to the ranks, which checkpoint and exit with
// kPreemptedExitCode, then requeues itself; on every (re)start it resumes from the latest complete
// checkpoint. Pure functions of their arguments; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// `eellm train`'s exit code after it checkpointed on SIGUSR1/SIGTERM: "run me again to continue"
// (EX_TEMPFAIL from <sysexits.h>). The eellm job script requeues itself on it.
inline constexpr int kPreemptedExitCode = 75;

enum class JobLauncher { kSrun, kMpirun };

struct JobScriptOptions {
  // Paths as the job sees them (absolute in practice); each is shell-quoted in the script.
  std::string eellm = "eellm";  // the binary the ranks run
  std::string scenario_path;    // the plan's scenario file (required)
  std::string checkpoint_dir;   // required
  std::string log_dir;          // required: slurm-<job>.out, per-rank logs, metrics.jsonl
  std::string job_name;         // empty → "eellm-<scenario name>"
  // Allocation. 0 / −1 pick from the plan: nodes 1 on the CPU, else ⌈ranks / cluster.gpus_per_node⌉;
  // GPUs per node = ranks per node on a GPU device, none on the CPU; CPUs per task =
  // execution.num_threads, else 1.
  int nodes = 0;
  int gpus_per_node = -1;
  int cpus_per_task = 0;
  std::string time = "01:00:00";   // [D-]HH:MM:SS, or minutes
  std::string partition, account;  // omitted when empty
  JobLauncher launcher = JobLauncher::kSrun;
  int signal_seconds = 120;  // --signal=B:USR1@N: how long before the limit the job is warned
  int steps = -1;            // `eellm train --steps` (−1: the plan's training.train_iters)
};

// The eellm job: #SBATCH lines, environment, the signal forwarding, the launch and the requeue.
// Errors name the option and the reason (ranks not divisible by nodes, too few GPUs per node for
// the ranks, a malformed time, a partition with spaces, a log directory with whitespace, ...).
StatusOr<std::string> slurm_job_script(const Scenario& plan, const JobScriptOptions& options);

// The EE-LLM/Megatron job: one torchrun per node under srun, the flags of scenario_to_megatron,
// checkpoints saved to and loaded from checkpoint_dir, --exit-duration-in-mins before the time
// limit and --exit-signal-handler, requeued while the saved iteration is short of train_iters.
// `warnings` (may be null) receives the export's warnings.
StatusOr<std::string> megatron_job_script(const Scenario& plan, const JobScriptOptions& options,
                                          std::vector<std::string>* warnings);

// 'text' for a POSIX shell (single quotes; a quote inside becomes '\'').
std::string shell_quote(const std::string& text);

// Minutes of a Slurm time limit ([D-]HH:MM:SS, HH:MM:SS, MM:SS or minutes); error naming --time.
StatusOr<int> slurm_time_minutes(const std::string& time);

}  // namespace eellm
