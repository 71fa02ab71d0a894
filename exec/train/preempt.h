// Preemption of `eellm train` (docs/cluster.md): Slurm asks a job to stop before its time limit with
// SIGUSR1 (`#SBATCH --signal=B:USR1@120`, forwarded by the job script) and stops or requeues it with
// SIGTERM. The handlers only set a flag (async-signal-safe); the training loops poll it after each
// step, write a checkpoint atomically (exec/io/checkpoint.h, dist_checkpoint.h) and stop with
// preempted_status(), which `eellm train` turns into kPreemptedExitCode (model/job_script.h: the job
// scripts requeue on it).
// On start, checkpoint_to_resume() picks the latest complete checkpoint of a directory, if any.
#pragma once

#include <string>

#include "exec/comm/comm.h"
#include "model/job_script.h"
#include "model/status.h"

namespace eellm::exec {

// Installs the SIGUSR1 and SIGTERM handlers (idempotent; SA_RESTART, so blocking calls resume).
void install_preempt_handlers();
// True once either signal arrived; preempt_signal() says which (0: none).
bool preempt_requested();
int preempt_signal();
// Forgets a request (tests; a process normally stops after one).
void clear_preempt_request();

// Collective over `world`: true on every rank when any rank saw the signal, so all ranks stop after
// the same iteration.
StatusOr<bool> agree_on_preempt(Communicator& world, double timeout_s);

// kCancelled: "stopped by SIGUSR1 after iteration N; checkpoint DIR/iter_N (...)"; `save_dir` empty
// says that nothing was saved.
Status preempted_status(int iteration, const std::string& save_dir);

// The checkpoint directory to resume from for `--resume-latest DIR`: DIR when its `latest` names a
// complete checkpoint, "" when DIR or DIR/latest does not exist yet (a fresh start). A `latest`
// that names a missing or incomplete checkpoint is an error (never silently restarted from zero).
StatusOr<std::string> checkpoint_to_resume(const std::string& dir);

}  // namespace eellm::exec
