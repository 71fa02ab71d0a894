// `eellm train`, `eellm eval` and `eellm data prepare`: single-process training of an early-exit
// GPT on the CPU backend, validation loss/perplexity per exit, and turning text into a token file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "exec/io/checkpoint.h"
#include "exec/io/data.h"
#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"
#include "exec/train/preempt.h"
#include "exec/train/runtime.h"
#include "exec/train/trainer.h"
#include "model/scenario_io.h"

namespace eellm::cli {

// The log cadence of a run of `steps` iterations (-1: train_iters): the scenario's log_interval, but
// at least kMinLogLines lines in all, so that a short run is never silent for long (a 1,000-step run
// with log_interval 100 on a slow CPU went minutes between lines).
int capped_log_interval(const TrainingSpec& t, int steps) {
  constexpr int kMinLogLines = 20;
  const int total = steps > 0 ? steps : t.train_iters;
  return std::clamp(total / kMinLogLines, 1, std::max(1, t.log_interval));
}

namespace {
// --save, --metrics and --trace, checked before the first step (training is not lost to a bad path).
Status check_destinations(const std::string& save, const std::string& metrics, const std::string& trace) {
  if (!save.empty()) EELLM_RETURN_IF_ERROR(exec::check_writable_dir(save, "--save"));
  if (!metrics.empty()) EELLM_RETURN_IF_ERROR(exec::check_writable_file(metrics, "--metrics"));
  if (!trace.empty()) EELLM_RETURN_IF_ERROR(exec::check_writable_file(trace, "--trace"));
  return Status::ok();
}

// The token file of `data prepare` must be writable and none of its inputs (it would be truncated first).
Status check_not_an_input(const std::string& output, const std::vector<std::string>& inputs) {
  std::error_code ec;
  for (const std::string& in : inputs)
    if (in == output || std::filesystem::equivalent(in, output, ec))
      return Status::invalid_argument("output " + output + " is also an input; writing it would destroy " + in);
  return exec::check_writable_file(output, "output");
}
}  // namespace

void register_train(CLI::App& app) {
  struct Options {
    std::string scenario, data, save, resume, resume_latest, metrics, trace, gemm_math;
    int steps = -1, threads = 0, save_interval = -1;
    bool allow_nonfinite = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("train", "Train an early-exit GPT on the CPU (single process)");
  cmd->add_option("scenario", o->scenario, "Scenario file or shipped scenario name (e.g. tiny-ee)")->required();
  default_elsewhere(cmd->add_option("--steps", o->steps,
                                    "Train until this many iterations are done (default: from the scenario, "
                                    "training.train_iters)")
                        ->check(int_in(0, kMaxSteps)));
  cmd->add_option("--data", o->data,
                  "Token file from `eellm data prepare` (default: training.data_path, else the fortunes corpus)");
  cmd->add_option("--save", o->save,
                  "Checkpoint directory (saved every training.save_interval and at the end; under mpirun per-rank "
                  "shards + manifest)");
  default_elsewhere(cmd->add_option("--save-interval", o->save_interval,
                                    "Checkpoint every this many iterations (default: from the scenario, "
                                    "training.save_interval)")
                        ->check(int_in(0, kMaxSteps)));
  cmd->add_option("--resume", o->resume,
                  "Resume from this checkpoint directory (under mpirun: from any parallel layout, or a single-process "
                  "checkpoint)");
  cmd->add_option("--resume-latest", o->resume_latest,
                  "Resume from the latest complete checkpoint in this directory if there is one, else start fresh "
                  "(for requeued jobs; SIGUSR1/SIGTERM save a checkpoint and exit 75, docs/cluster.md)");
  cmd->add_option("--metrics", o->metrics, "Append one JSON line per iteration and evaluation to this file");
  default_elsewhere(cmd->add_option("--threads", o->threads,
                                    "CPU threads (default: from the scenario, execution.num_threads; 0 there: all "
                                    "cores)")
                        ->check(int_in(1, kMaxThreads)));
  cmd->add_option("--trace", o->trace, "Under mpirun: write the measured trace of the last iteration (rank 0)");
  cmd->add_option("--gemm-math", o->gemm_math,
                  "GEMM math: fp32, bf16 (bfloat16 operands, fp32 accumulation and storage) or tf32 (CUDA); default "
                  "from the scenario, execution.gemm_math")
      ->check(CLI::IsMember({"auto", "fp32", "tf32", "bf16"}));
  cmd->add_flag("--allow-nonfinite-weights", o->allow_nonfinite, "Resume from a checkpoint holding NaN or Inf values");
  cmd->callback([o] {
    exec::install_preempt_handlers();  // SIGUSR1/SIGTERM: checkpoint after this step, exit 75
    auto sc = load_scenario(o->scenario);
    if (!sc.is_ok()) return finish("train", sc.status());
    Scenario s = *sc;
    if (!o->resume_latest.empty()) {
      auto latest = exec::checkpoint_to_resume(o->resume_latest);
      if (!latest.is_ok()) return finish("train", latest.status());
      if (!latest->empty()) o->resume = *latest;
    }
    if (o->save_interval >= 0) s.training.save_interval = o->save_interval;
    if (!o->gemm_math.empty()) s.execution.gemm_math = o->gemm_math;
    s.training.log_interval = capped_log_interval(s.training, o->steps);
    if (Status st = check_destinations(o->save, o->metrics, o->trace); !st.is_ok()) return finish("train", st);
    if (exec::launched_with_mpi()) {  // mpirun -np N eellm train: the distributed runtime (exec/train/runtime.h)
      exec::DistributedTrainOptions d;
      d.save_dir = o->save, d.resume_dir = o->resume, d.save_interval = s.training.save_interval;
      d.steps = o->steps, d.data_path = o->data, d.trace_path = o->trace, d.metrics_path = o->metrics;
      d.runtime.num_threads = o->threads;
      d.resume_read.allow_nonfinite = o->allow_nonfinite;
      exit_code() = exec::train_distributed_main(s, d, std::cerr);
      return;
    }
    exec::TrainOptions opt;
    opt.steps = o->steps;
    opt.data_path = o->data;
    opt.save_dir = o->save;
    opt.resume_dir = o->resume;
    opt.resume_read.allow_nonfinite = o->allow_nonfinite;
    opt.metrics_path = o->metrics;
    opt.num_threads = o->threads;
    opt.log = &std::cerr;
    auto tr = exec::Trainer::create(s, opt);
    if (!tr.is_ok()) return finish("train", tr.status());
    Status st = (*tr)->train();
    if (st.is_cancelled()) {  // preempted: checkpoint written, exit so that Slurm requeues the job
      std::cerr << "eellm train: " << st.message() << "\n";
      exit_code() = kPreemptedExitCode;
      return;
    }
    if (!st.is_ok()) return finish("train", st);
  });
}

void register_eval(CLI::App& app) {
  struct Options {
    std::string target, data;
    int iters = 0, threads = 0;
    bool allow_nonfinite = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("eval", "Validation loss and perplexity per exit of a checkpoint");
  cmd->add_option("checkpoint", o->target, "Checkpoint directory (from eellm train --save)")->required();
  cmd->add_option("--data", o->data, "Token file (default: the scenario's data, else the fortunes corpus)");
  default_elsewhere(
      cmd->add_option("--iters", o->iters, "Validation batches (default: from the scenario, training.eval_iters)")
          ->check(int_in(1, 1000000)));
  default_elsewhere(cmd->add_option("--threads", o->threads,
                                    "CPU threads (default: from the scenario, execution.num_threads; 0 there: all "
                                    "cores)")
                        ->check(int_in(1, kMaxThreads)));
  cmd->add_flag("--allow-nonfinite-weights", o->allow_nonfinite, "Load a checkpoint holding NaN or Inf values");
  cmd->callback([o] {
    auto sc = exec::checkpoint_scenario(o->target);
    if (!sc.is_ok()) return finish("eval", sc.status());
    exec::TrainOptions opt;
    opt.data_path = o->data;
    opt.resume_dir = o->target;
    opt.resume_read.allow_nonfinite = o->allow_nonfinite;
    opt.num_threads = o->threads;
    auto tr = exec::Trainer::create(*sc, opt);
    if (!tr.is_ok()) return finish("eval", tr.status());
    const int iters = o->iters > 0 ? o->iters : std::max(1, sc->training.eval_iters);
    exec::EvalResult r = (*tr)->evaluate(iters);
    std::printf("%s at iteration %d: validation over %d batches of %d×%d tokens\n", sc->name.c_str(),
                (*tr)->iteration(), iters, sc->training.micro_batch_size, sc->model.seq_length);
    std::printf("  %-10s %10s %12s\n", "head", "loss", "perplexity");
    for (size_t i = 0; i < r.loss.size(); ++i)
      std::printf("  %-10s %10.4f %12.3f\n", r.names[i].c_str(), r.loss[i], std::exp(r.loss[i]));
  });
}

void register_data(CLI::App& app) {
  struct Options {
    std::string output;
    std::vector<std::string> inputs;
  };
  auto o = std::make_shared<Options>();
  CLI::App* data = app.add_subcommand("data", "Training data tools");
  data->require_subcommand(1);
  CLI::App* prep = data->add_subcommand("prepare", "Turn text files into a byte-level token file");
  prep->add_option("output", o->output, "Token file to write")->required();
  prep->add_option("inputs", o->inputs, "Text files (default: the Debian fortunes corpus, % separators removed)");
  prep->callback([o] {
    const std::vector<std::string> files = o->inputs.empty() ? exec::default_corpus_files() : o->inputs;
    if (Status st = check_not_an_input(o->output, files); !st.is_ok()) return finish("data prepare", st);
    auto text = exec::read_corpus(files);
    if (!text.is_ok()) return finish("data prepare", text.status());
    const std::vector<int32_t> tokens = exec::encode_bytes(*text);
    Status st = exec::write_token_file(o->output, tokens, exec::kByteVocab);
    if (!st.is_ok()) return finish("data prepare", st);
    std::printf("wrote %s: %zu tokens (byte-level, vocab %d) from %zu files; unigram entropy %.4f nats/token\n",
                o->output.c_str(), tokens.size(), exec::kByteVocab, files.size(),
                exec::unigram_entropy(tokens, exec::kByteVocab));
  });
}

}  // namespace eellm::cli
