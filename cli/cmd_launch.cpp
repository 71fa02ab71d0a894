// `eellm launch PLAN --slurm|--megatron [-o job.sbatch] [--dry-run] [allocation options]`: writes a
// Slurm job script that runs the plan (model/job_script.h) and the plan's scenario next to it
// (job.yaml beside job.sbatch), with absolute paths so that sbatch may be called from anywhere.
// --dry-run prints the script and writes nothing. docs/cluster.md walks through it.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "exec/io/safetensors.h"
#include "model/job_script.h"
#include "model/scenario_io.h"

namespace eellm::cli {
namespace {
namespace fs = std::filesystem;

struct LaunchCliOptions {
  std::string plan, output, checkpoint_dir, log_dir, launcher = "srun", eellm;
  bool slurm = false, megatron = false, dry_run = false;
  JobScriptOptions job;
};

Status write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::io_error("cannot write " + path.string());
  return Status::ok();
}

// The file names the job uses: the script, the scenario beside it, checkpoints and logs.
void resolve_paths(const Scenario& plan, LaunchCliOptions& o) {
  const fs::path script = fs::absolute(o.output.empty() ? plan.name + ".sbatch" : o.output).lexically_normal();
  const fs::path dir = script.parent_path();
  const std::string stem = script.stem().string();
  o.output = script.string();
  o.job.scenario_path = (dir / (stem + ".yaml")).string();
  o.job.checkpoint_dir =
      fs::absolute(o.checkpoint_dir.empty() ? dir / (stem + "-checkpoints") : fs::path(o.checkpoint_dir))
          .lexically_normal()
          .string();
  o.job.log_dir =
      fs::absolute(o.log_dir.empty() ? dir / (stem + "-logs") : fs::path(o.log_dir)).lexically_normal().string();
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  o.job.eellm = !o.eellm.empty() ? fs::absolute(o.eellm).string() : ec ? std::string("eellm") : self.string();
}

int run_launch(LaunchCliOptions& o) {
  auto fail = [](const Status& st) {
    std::cerr << "eellm launch: " << st.to_string() << "\n";
    return 1;
  };
  if (o.slurm == o.megatron) return fail(Status::invalid_argument("name one of --slurm and --megatron"));
  auto sc = load_scenario(o.plan);
  if (!sc.is_ok()) return fail(sc.status());
  resolve_paths(*sc, o);
  o.job.launcher = o.launcher == "mpirun" ? JobLauncher::kMpirun : JobLauncher::kSrun;
  std::vector<std::string> warnings;
  auto script = o.slurm ? slurm_job_script(*sc, o.job) : megatron_job_script(*sc, o.job, &warnings);
  if (!script.is_ok()) return fail(script.status());
  for (const std::string& w : warnings) std::cerr << "eellm launch: warning: " << w << "\n";
  if (o.dry_run) {
    std::cout << *script;
    return 0;
  }
  const fs::path out(o.output);
  std::error_code ec;
  for (const fs::path& d : {out.parent_path(), fs::path(o.job.log_dir)}) {  // sbatch opens its --output there
    fs::create_directories(d, ec);
    if (ec) return fail(Status::io_error("cannot create " + d.string() + ": " + ec.message()));
  }
  // Both files checked before either is written (a special file such as /dev/zero is refused).
  if (Status w = exec::check_writable_file(o.output, "--output"); !w.is_ok()) return fail(w);
  if (Status w = exec::check_writable_file(o.job.scenario_path, "--output (the scenario beside it)"); !w.is_ok())
    return fail(w);
  Status st = write_text(o.job.scenario_path, scenario_to_yaml(*sc));
  if (st.is_ok()) st = write_text(out, *script);
  if (!st.is_ok()) return fail(st);
  fs::permissions(out, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
  std::cout << "wrote " << o.output << " (scenario " << o.job.scenario_path << ")\n"
            << "  submit: sbatch " << o.output << "\n"
            << "  logs " << o.job.log_dir << ", checkpoints " << o.job.checkpoint_dir << "\n";
  return 0;
}

}  // namespace

void register_launch(CLI::App& app) {
  auto o = std::make_shared<LaunchCliOptions>();
  CLI::App* cmd = app.add_subcommand("launch", "Write a Slurm job script that runs a plan (eellm train, or EE-LLM)");
  cmd->add_option("plan", o->plan, "Plan (scenario file from `eellm plan --emit`) or shipped scenario name")
      ->required();
  cmd->add_flag("--slurm", o->slurm, "The plan's ranks running `eellm train` under srun or mpirun");
  cmd->add_flag("--megatron", o->megatron, "The plan as an EE-LLM/Megatron torchrun job under srun");
  cmd->add_option("-o,--output", o->output,
                  "Job script to write (default: <plan name>.sbatch); the scenario goes beside it");
  cmd->add_flag("--dry-run", o->dry_run, "Print the script; write nothing");
  cmd->add_option("--nodes", o->job.nodes, "Nodes (default: 1 on the CPU, else ranks / cluster.gpus_per_node)")
      ->check(int_in(1, 1 << 20));
  cmd->add_option("--gpus-per-node", o->job.gpus_per_node, "GPUs per node (default: one per rank on a GPU plan)")
      ->check(int_in(1, 1024));
  cmd->add_option("--cpus-per-task", o->job.cpus_per_task,
                  "CPUs per rank, its OMP_NUM_THREADS (default: execution.num_threads, else 1)")
      ->check(int_in(1, kMaxThreads));
  cmd->add_option("--time", o->job.time, "Time limit, [D-]HH:MM:SS")->capture_default_str();
  cmd->add_option("--partition", o->job.partition, "Slurm partition");
  cmd->add_option("--account", o->job.account, "Slurm account");
  cmd->add_option("--job-name", o->job.job_name, "Job name (default: eellm-<plan name>)");
  cmd->add_option("--launcher", o->launcher, "Start the ranks with srun (PMIx) or mpirun")
      ->check(CLI::IsMember({"srun", "mpirun"}))
      ->capture_default_str();
  cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                  "Checkpoints (default: <script>-checkpoints beside the script)");
  cmd->add_option("--log-dir", o->log_dir, "Job, per-rank logs and metrics.jsonl (default: <script>-logs)");
  cmd->add_option("--signal-seconds", o->job.signal_seconds, "Seconds before the time limit the job is signalled")
      ->check(int_in(1, 86400))
      ->capture_default_str();
  cmd->add_option("--steps", o->job.steps, "`eellm train --steps` (default: the plan's training.train_iters)")
      ->check(int_in(0, kMaxSteps));
  cmd->add_option("--eellm", o->eellm, "The eellm binary the ranks run (default: this one)");
  cmd->callback([o] { exit_code() = run_launch(*o); });
}

}  // namespace eellm::cli
