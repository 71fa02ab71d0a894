// Slurm job scripts (model/job_script.h): the allocation derived from a plan, the #SBATCH lines,
// the launch line of each launcher, the signal forwarding and requeue, the EE-LLM torchrun job,
// quoting, and an error naming the option for each kind of bad input.
#include <gtest/gtest.h>

#include "model/job_script.h"
#include "model/megatron.h"
#include "model/scenario_io.h"

namespace eellm {
namespace {

JobScriptOptions options() {
  JobScriptOptions o;
  o.eellm = "/opt/eellm/bin/eellm";
  o.scenario_path = "/jobs/plan.yaml";
  o.checkpoint_dir = "/scratch/ckpt";
  o.log_dir = "/jobs/logs";
  return o;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(JobScript, CpuPlanUnderSrun) {
  const Scenario s = load_scenario("tiny-ee-pp2").value();
  JobScriptOptions o = options();
  o.steps = 40;
  o.partition = "debug";
  auto script = slurm_job_script(s, o);
  ASSERT_TRUE(script.is_ok()) << script.status().to_string();
  const std::string& t = *script;
  EXPECT_EQ(t.rfind("#!/bin/bash\n", 0), 0u);
  for (const char* line :
       {"#SBATCH --job-name=eellm-tiny-ee-pp2\n", "#SBATCH --nodes=1\n", "#SBATCH --ntasks-per-node=2\n",
        "#SBATCH --cpus-per-task=1\n", "#SBATCH --time=01:00:00\n", "#SBATCH --partition=debug\n",
        "#SBATCH --output=/jobs/logs/slurm-%j.out\n", "#SBATCH --signal=B:USR1@120\n", "#SBATCH --requeue\n"})
    EXPECT_TRUE(has(t, line)) << line << "\n" << t;
  EXPECT_FALSE(has(t, "--gpus-per-node")) << "a CPU plan asks for no GPUs";
  EXPECT_FALSE(has(t, "--account"));
  EXPECT_TRUE(has(t, "srun --mpi=pmix --ntasks=2 --ntasks-per-node=2 --output=\"$LOGS/rank-%t.log\""));
  EXPECT_TRUE(has(t,
                  "\"$EELLM\" train \"$SCENARIO\" --threads \"$OMP_NUM_THREADS\" --save \"$CKPT\" "
                  "--resume-latest \"$CKPT\""));
  EXPECT_TRUE(has(t, "--steps 40 &\n"));
  EXPECT_TRUE(has(t, "EELLM='/opt/eellm/bin/eellm'\n"));
  EXPECT_TRUE(has(t, "CKPT='/scratch/ckpt'\n"));
  EXPECT_TRUE(has(t, "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}\n"));
  EXPECT_TRUE(has(t, "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"));
  EXPECT_TRUE(has(t, "trap 'forward USR1' USR1\n"));
  EXPECT_TRUE(has(t, "trap 'forward TERM' TERM\n"));
  EXPECT_TRUE(has(t, "if [ \"$rc\" -eq 75 ]; then"));
  EXPECT_TRUE(has(t, "scontrol requeue \"$SLURM_JOB_ID\""));
  EXPECT_EQ(kPreemptedExitCode, 75);
}

TEST(JobScript, MpirunAndAllocationOptions) {
  Scenario s = load_scenario("tiny-ee-pp4").value();
  JobScriptOptions o = options();
  o.launcher = JobLauncher::kMpirun;
  o.nodes = 2;
  o.cpus_per_task = 8;
  o.time = "2-00:00:00";
  o.account = "proj-42";
  o.signal_seconds = 300;
  auto t = slurm_job_script(s, o);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_TRUE(has(*t, "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=2\n#SBATCH --cpus-per-task=8\n")) << *t;
  EXPECT_TRUE(has(*t, "#SBATCH --account=proj-42\n"));
  EXPECT_TRUE(has(*t, "#SBATCH --signal=B:USR1@300\n"));
  EXPECT_TRUE(has(*t, "mpirun -np 4 --map-by ppr:2:node --bind-to none"));
  EXPECT_FALSE(has(*t, "srun "));
  EXPECT_FALSE(has(*t, "--steps")) << "the plan's train_iters when no --steps";
}

TEST(JobScript, GpuPlanTakesOneGpuPerRankAndNccl) {
  Scenario s = load_scenario("tiny-ee-pp2").value();
  s.execution.device = DeviceKind::kCUDA;
  s.cluster.gpus_per_node = 1;  // 2 ranks on 1-GPU nodes → 2 nodes
  auto t = slurm_job_script(s, options());
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_TRUE(has(*t, "#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n")) << *t;
  EXPECT_TRUE(has(*t, "#SBATCH --gpus-per-node=1\n"));
  EXPECT_TRUE(has(*t, "export EELLM_DIST_COMM=nccl\n"));
  JobScriptOptions o = options();
  o.nodes = 1;
  o.gpus_per_node = 1;  // 2 ranks on one node with one GPU
  auto bad = slurm_job_script(s, o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--gpus-per-node 1 is fewer than the 2 ranks per node"), std::string::npos)
      << bad.status().message();
}

TEST(JobScript, BadInputNamesTheOption) {
  const Scenario s = load_scenario("tiny-ee-pp2").value();
  auto fails_with = [&s](JobScriptOptions o, const std::string& part) {
    auto r = slurm_job_script(s, o);
    ASSERT_FALSE(r.is_ok()) << part;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  };
  JobScriptOptions o = options();
  o.nodes = 3;
  fails_with(o, "--nodes 3 does not divide the plan's 2 ranks");
  o = options(), o.time = "1h";
  fails_with(o, "--time '1h'");
  o = options(), o.partition = "gpu queue";
  fails_with(o, "--partition 'gpu queue'");
  o = options(), o.log_dir = "/my logs";
  fails_with(o, "contains whitespace");
  o = options(), o.checkpoint_dir = "";
  fails_with(o, "--checkpoint-dir");
  o = options(), o.cpus_per_task = -2;
  fails_with(o, "--cpus-per-task -2");
}

TEST(JobScript, TimeLimitsAndQuoting) {
  EXPECT_EQ(slurm_time_minutes("01:00:00").value(), 60);
  EXPECT_EQ(slurm_time_minutes("90").value(), 90);
  EXPECT_EQ(slurm_time_minutes("30:00").value(), 30);
  EXPECT_EQ(slurm_time_minutes("1-12").value(), 2160);
  EXPECT_EQ(slurm_time_minutes("2-00:30:00").value(), 2910);
  EXPECT_FALSE(slurm_time_minutes("00:00:30").is_ok());  // under a minute
  EXPECT_FALSE(slurm_time_minutes("").is_ok());
  EXPECT_EQ(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
  JobScriptOptions o = options();
  o.checkpoint_dir = "/scratch/$USER's ckpt";  // no expansion, quote kept
  auto t = slurm_job_script(load_scenario("tiny-ee-pp2").value(), o);
  ASSERT_TRUE(t.is_ok());
  EXPECT_TRUE(has(*t, "CKPT='/scratch/$USER'\\''s ckpt'\n")) << *t;
}

TEST(JobScript, MegatronJobRunsTheExportUnderSrun) {
  const Scenario s = load_scenario("ee-llm-7b").value();
  JobScriptOptions o = options();
  o.time = "04:00:00";
  std::vector<std::string> warnings;
  auto t = megatron_job_script(s, o, &warnings);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const MegatronExport ex = scenario_to_megatron(s);
  EXPECT_EQ(warnings, ex.warnings);
  // The export's geometry becomes the allocation: one torchrun per node.
  const int world = s.parallel.world_size > 0 ? s.parallel.world_size : s.cluster.total_gpus();
  const int per_node = std::min(world, s.cluster.gpus_per_node);
  EXPECT_TRUE(has(*t, "#SBATCH --nodes=" + std::to_string(world / per_node) + "\n#SBATCH --ntasks-per-node=1\n")) << *t;
  EXPECT_TRUE(has(*t, "#SBATCH --gpus-per-node=" + std::to_string(per_node) + "\n"));
  EXPECT_TRUE(has(*t, "torchrun --rdzv_id \"$SLURM_JOB_ID\" --rdzv_backend c10d"));
  EXPECT_TRUE(has(*t, "pretrain_early_exit_gpt.py"));
  EXPECT_TRUE(has(*t, "--exit-layer-nums 9 17"));
  EXPECT_TRUE(has(*t, "--save \"$CKPT\" --load \"$CKPT\" --exit-signal-handler --exit-duration-in-mins 236"));
  EXPECT_TRUE(has(*t, "srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c launch\n"));
  EXPECT_TRUE(has(*t, "-lt " + std::to_string(s.training.train_iters) + " ]; then"));
  o.nodes = 1000;
  EXPECT_FALSE(megatron_job_script(s, o, nullptr).is_ok());
}

}  // namespace
}  // namespace eellm
