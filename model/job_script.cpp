// slurm_job_script and megatron_job_script (job_script.h): text only, no file or process access.
#include "model/job_script.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>
#include <string>

#include "model/layout.h"
#include "model/megatron.h"

namespace eellm {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

// The allocation of a plan: ranks, nodes, ranks (tasks) per node, GPUs per node, CPUs per task.
struct Allocation {
  int ranks = 1, nodes = 1, per_node = 1, gpus = 0, cpus = 1;
};

Status check_word(const std::string& value, const std::string& option) {
  static const std::regex ok("[A-Za-z0-9_.,+-]+");
  if (!value.empty() && !std::regex_match(value, ok))
    return Status::invalid_argument(option + " '" + value +
                                    "': only letters, digits and _ . , + - are allowed in a #SBATCH value");
  return Status::ok();
}

Status check_paths(const JobScriptOptions& o) {
  if (o.scenario_path.empty()) return Status::invalid_argument("job script: the scenario path is empty");
  if (o.checkpoint_dir.empty()) return Status::invalid_argument("--checkpoint-dir: empty");
  if (o.log_dir.empty()) return Status::invalid_argument("job script: the log directory is empty");
  if (std::any_of(o.log_dir.begin(), o.log_dir.end(),
                  [](char c) { return std::isspace(static_cast<unsigned char>(c)); }))
    return Status::invalid_argument("log directory '" + o.log_dir +
                                    "' contains whitespace, which a #SBATCH --output line cannot hold");
  EELLM_RETURN_IF_ERROR(check_word(o.job_name, "--job-name"));
  EELLM_RETURN_IF_ERROR(check_word(o.partition, "--partition"));
  EELLM_RETURN_IF_ERROR(check_word(o.account, "--account"));
  if (o.signal_seconds < 1)
    return Status::invalid_argument("signal_seconds " + str(o.signal_seconds) + ": must be ≥ 1");
  return slurm_time_minutes(o.time).status();
}

StatusOr<Allocation> allocation(const Scenario& plan, const JobScriptOptions& o, int ranks) {
  Allocation a;
  a.ranks = ranks;
  const bool gpu = plan.execution.device != DeviceKind::kCPU;
  const int per_node_gpus = std::max(1, plan.cluster.gpus_per_node);
  a.nodes = o.nodes > 0 ? o.nodes : gpu ? (ranks + per_node_gpus - 1) / per_node_gpus : 1;
  if (o.nodes < 0) return Status::invalid_argument("--nodes " + str(o.nodes) + ": must be ≥ 1");
  if (ranks % a.nodes != 0)
    return Status::invalid_argument("--nodes " + str(a.nodes) + " does not divide the plan's " + str(ranks) +
                                    " ranks (tp × pp × dp); pick a divisor of " + str(ranks));
  a.per_node = ranks / a.nodes;
  a.gpus = o.gpus_per_node >= 0 ? o.gpus_per_node : gpu ? a.per_node : 0;
  if (gpu && a.gpus < a.per_node)
    return Status::invalid_argument("--gpus-per-node " + str(a.gpus) + " is fewer than the " + str(a.per_node) +
                                    " ranks per node (" + str(ranks) + " ranks on " + str(a.nodes) +
                                    " nodes); each rank of a " + to_string(plan.execution.device) +
                                    " plan needs its own GPU");
  a.cpus = o.cpus_per_task > 0 ? o.cpus_per_task : std::max(1, plan.execution.num_threads);
  if (o.cpus_per_task < 0) return Status::invalid_argument("--cpus-per-task " + str(o.cpus_per_task) + ": must be ≥ 1");
  return a;
}

// #SBATCH lines common to both jobs; `tasks_per_node` differs (ranks vs one torchrun per node).
std::string sbatch_header(const JobScriptOptions& o, const std::string& name, const Allocation& a, int tasks_per_node,
                          int cpus_per_task, const std::string& signal) {
  std::ostringstream s;
  s << "#SBATCH --job-name=" << name << "\n"
    << "#SBATCH --nodes=" << a.nodes << "\n"
    << "#SBATCH --ntasks-per-node=" << tasks_per_node << "\n"
    << "#SBATCH --cpus-per-task=" << cpus_per_task << "\n";
  if (a.gpus > 0) s << "#SBATCH --gpus-per-node=" << a.gpus << "\n";
  s << "#SBATCH --time=" << o.time << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.account.empty()) s << "#SBATCH --account=" << o.account << "\n";
  s << "#SBATCH --output=" << o.log_dir << "/slurm-%j.out\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --signal=" << signal << "@" << o.signal_seconds << "\n"
    << "#SBATCH --requeue\n";
  return s.str();
}

// The executor's environment: threads per rank, Open MPI as root, NCCL on GPUs.
std::string eellm_environment(const Scenario& plan, const Allocation& a) {
  std::ostringstream s;
  s << "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-" << a.cpus << "}\n"
    << "# Open MPI refuses to run as root unless told (containers and test clusters run jobs as root).\n"
    << "if [ \"$(id -u)\" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi\n";
  if (plan.execution.device == DeviceKind::kCPU) {
    s << "export EELLM_DIST_COMM=mpi  # the CPU executor talks over MPI\n";
  } else {
    s << "# GPU ranks talk over NCCL (bootstrapped over MPI); each rank takes GPU SLURM_LOCALID.\n"
      << "export EELLM_DIST_COMM=nccl\n"
      << "export NCCL_DEBUG=${NCCL_DEBUG:-WARN}\n"
      << "# export NCCL_SOCKET_IFNAME=ib0  # the fabric's interface, where NCCL picks the wrong one\n";
  }
  return s.str();
}

// The ranks' command line (srun or mpirun), started in the background.
std::string eellm_launch(const JobScriptOptions& o, const Allocation& a) {
  std::ostringstream s;
  if (o.launcher == JobLauncher::kSrun) {
    s << "srun --mpi=pmix --ntasks=" << a.ranks << " --ntasks-per-node=" << a.per_node
      << " --output=\"$LOGS/rank-%t.log\" --open-mode=append \\\n";
  } else {
    s << "mpirun -np " << a.ranks << " --map-by ppr:" << a.per_node << ":node --bind-to none \\\n"
      << "  -x OMP_NUM_THREADS -x EELLM_DIST_COMM --output-filename \"$LOGS/ranks-restart${SLURM_RESTART_COUNT:-0}\" "
         "\\\n";
  }
  s << "  \"$EELLM\" train \"$SCENARIO\" --threads \"$OMP_NUM_THREADS\" --save \"$CKPT\" --resume-latest \"$CKPT\" \\\n"
    << "  --metrics \"$LOGS/metrics.jsonl\"" << (o.steps >= 0 ? " --steps " + str(o.steps) : "") << " &\n";
  return s.str();
}

// Waits for the background launcher while the traps forward signals, then requeues on 75.
std::string eellm_wait_and_requeue() {
  std::ostringstream s;
  s << "launcher=$!\n"
    << "while :; do\n"
    << "  wait \"$launcher\"; rc=$?\n"
    << "  [ \"$rc\" -le 128 ] && break\n"
    << "  kill -0 \"$launcher\" 2>/dev/null && continue  # a trapped signal interrupted wait; the ranks go on\n"
    << "  wait \"$launcher\" 2>/dev/null; r=$?; [ \"$r\" -ne 127 ] && rc=$r\n"
    << "  break\n"
    << "done\n"
    << "if [ \"$rc\" -eq " << kPreemptedExitCode << " ]; then\n"
    << "  echo \"eellm job: the ranks checkpointed in $CKPT; requeueing job $SLURM_JOB_ID\"\n"
    << "  scontrol requeue \"$SLURM_JOB_ID\"\n"
    << "fi\n"
    << "echo \"eellm job: exit $rc\"\n"
    << "exit \"$rc\"\n";
  return s.str();
}

std::string default_name(const Scenario& plan, const JobScriptOptions& o) {
  if (!o.job_name.empty()) return o.job_name;
  std::string n = "eellm-" + plan.name;
  for (char& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return n;
}

}  // namespace

std::string shell_quote(const std::string& text) {
  std::string r = "'";
  for (char c : text) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

StatusOr<int> slurm_time_minutes(const std::string& time) {
  static const std::regex re(R"((?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?)");
  std::smatch m;
  if (!std::regex_match(time, m, re))
    return Status::invalid_argument("--time '" + time + "': expected [D-]HH:MM:SS, HH:MM:SS, MM:SS or minutes");
  auto num = [&m](int i) { return m[i].matched ? std::stoi(m[i].str()) : 0; };
  const int parts = 1 + m[3].matched + m[4].matched;
  int minutes = 0;
  if (m[1].matched)  // days-hours[:minutes[:seconds]]
    minutes = num(1) * 1440 + num(2) * 60 + num(3);
  else if (parts == 3)
    minutes = num(2) * 60 + num(3);
  else  // minutes[:seconds]
    minutes = num(2);
  if (minutes < 1) return Status::invalid_argument("--time '" + time + "': the limit must be at least one minute");
  return minutes;
}

StatusOr<std::string> slurm_job_script(const Scenario& plan, const JobScriptOptions& o) {
  EELLM_RETURN_IF_ERROR(check_paths(o));
  EELLM_ASSIGN_OR_RETURN(Layout lay, derive_layout(plan));
  EELLM_ASSIGN_OR_RETURN(Allocation a, allocation(plan, o, lay.tp * lay.pp * lay.dp));
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# " << plan.name << ": tp " << lay.tp << " x pp " << lay.pp << " x dp " << lay.dp << " = " << a.ranks
    << " ranks of `eellm train` on " << a.nodes << (a.nodes == 1 ? " node" : " nodes") << " ("
    << to_string(plan.execution.device) << "). Written by `eellm launch --slurm`; submit with sbatch.\n"
    << "# Before the time limit Slurm signals this shell (USR1); the ranks finish their step, checkpoint\n"
    << "# and exit " << kPreemptedExitCode << ", and the job requeues itself and resumes from the checkpoint.\n"
    << sbatch_header(o, default_name(plan, o), a, a.per_node, a.cpus, "B:USR1") << "\n"
    << "set -u\n"
    << "EELLM=" << shell_quote(o.eellm) << "\n"
    << "SCENARIO=" << shell_quote(o.scenario_path) << "\n"
    << "CKPT=" << shell_quote(o.checkpoint_dir) << "\n"
    << "LOGS=" << shell_quote(o.log_dir) << "\n"
    << "mkdir -p \"$CKPT\" \"$LOGS\"\n"
    << eellm_environment(plan, a)
    << "echo \"eellm job ${SLURM_JOB_ID:-}: restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-}, " << a.ranks
    << " ranks\"\n\n"
    << "# Slurm's pre-timeout signal and SIGTERM reach this shell: pass them on to the ranks.\n"
    << "forward() { echo \"eellm job: $1: asking the ranks to checkpoint and stop\"; kill -USR1 \"$launcher\" "
       "2>/dev/null; }\n"
    << "trap 'forward USR1' USR1\n"
    << "trap 'forward TERM' TERM\n"
    << eellm_launch(o, a) << eellm_wait_and_requeue();
  return s.str();
}

StatusOr<std::string> megatron_job_script(const Scenario& plan, const JobScriptOptions& o,
                                          std::vector<std::string>* warnings) {
  EELLM_RETURN_IF_ERROR(check_paths(o));
  EELLM_ASSIGN_OR_RETURN(const int minutes, slurm_time_minutes(o.time));
  MegatronExport ex = scenario_to_megatron(plan);
  if (warnings) *warnings = ex.warnings;
  // The export's own torchrun geometry: --nnodes N --nproc_per_node P.
  static const std::regex geometry(R"(torchrun --nnodes (\d+) --nproc_per_node (\d+) )");
  std::smatch m;
  if (!std::regex_search(ex.command, m, geometry))
    return Status::internal("scenario_to_megatron's command has no `torchrun --nnodes N --nproc_per_node P`");
  Allocation a;
  a.nodes = std::stoi(m[1].str());
  a.per_node = std::stoi(m[2].str());
  a.ranks = a.nodes * a.per_node;
  if (o.nodes > 0 && o.nodes != a.nodes)
    return Status::invalid_argument("--nodes " + str(o.nodes) + ": the EE-LLM command runs on " + str(a.nodes) +
                                    " nodes of " + str(a.per_node) + " GPUs (the plan's cluster section)");
  a.gpus = o.gpus_per_node >= 0 ? o.gpus_per_node : a.per_node;
  if (a.gpus < a.per_node)
    return Status::invalid_argument("--gpus-per-node " + str(a.gpus) + " is fewer than torchrun's " + str(a.per_node) +
                                    " processes per node");
  a.cpus = o.cpus_per_task > 0 ? o.cpus_per_task : 8 * a.per_node;
  std::string command = ex.command.substr(static_cast<size_t>(m.position(0)));
  command.replace(0, std::string("torchrun ").size(),
                  "torchrun --rdzv_id \"$SLURM_JOB_ID\" --rdzv_backend c10d --rdzv_endpoint "
                  "\"$MASTER_ADDR:$MASTER_PORT\" \\\n    ");
  while (!command.empty() && command.back() == '\n') command.pop_back();
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# " << plan.name << " as an EE-LLM (Megatron-LM) job: one torchrun per node under srun, " << a.ranks
    << " GPUs.\n# Written by `eellm launch --megatron`; submit with sbatch from anywhere.\n"
    << sbatch_header(o, default_name(plan, o), a, 1, a.cpus, "TERM") << "\n"
    << "set -u\n"
    << "EE_LLM_DIR=${EE_LLM_DIR:?set EE_LLM_DIR to the EE-LLM checkout (pretrain_early_exit_gpt.py)}\n"
    << "export CKPT=" << shell_quote(o.checkpoint_dir) << "\n"
    << "mkdir -p \"$CKPT\" " << shell_quote(o.log_dir) << "\n"
    << "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n"
    << "export MASTER_PORT=${MASTER_PORT:-29500}\n"
    << "export CUDA_DEVICE_MAX_CONNECTIONS=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} NCCL_DEBUG=${NCCL_DEBUG:-WARN}\n"
    << "# Tokenizer and data flags of your corpus (e.g. --vocab-file ... --merge-file ... --data-path ...).\n"
    << "export MEGATRON_EXTRA_ARGS=${MEGATRON_EXTRA_ARGS:-}\n"
    << "launch() {\n"
    << "  cd \"$EE_LLM_DIR\" && " << command << " \\\n"
    << "    --save \"$CKPT\" --load \"$CKPT\" --exit-signal-handler --exit-duration-in-mins "
    << std::max(1, minutes - std::max(1, (o.signal_seconds + 59) / 60) - 2) << " $MEGATRON_EXTRA_ARGS\n"
    << "}\n"
    << "export -f launch\n"
    << "srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c launch\n"
    << "rc=$?\n"
    << "# Megatron saves and exits before the limit; requeue while the run is short of --train-iters.\n"
    << "done_iters=$(cat \"$CKPT/latest_checkpointed_iteration.txt\" 2>/dev/null || echo 0)\n"
    << "if [ \"$rc\" -eq 0 ] && [ \"$done_iters\" != release ] && [ \"$done_iters\" -lt " << plan.training.train_iters
    << " ]; then\n"
    << "  scontrol requeue \"$SLURM_JOB_ID\"\n"
    << "fi\n"
    << "exit \"$rc\"\n";
  return s.str();
}

}  // namespace eellm
