// `eellm generate CHECKPOINT`: early-exit text generation from a trained checkpoint on the CPU or
// CUDA backend (--device; default: the checkpoint scenario's execution.device) — full model, KV recomputation or
// self-speculative decoding; greedy or sampled; prints the text, and with --stats the throughput, the exit histogram
// and the layers per token; --stats-out writes the measured exit rates that `eellm simulate --mode inference
// --exit-rates` reads.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "exec/generate/generate.h"
#include "exec/generate/pipeline_generate.h"
#include "exec/generate/serve.h"
#include "exec/io/data.h"
#include "exec/io/safetensors.h"
#include "model/yaml_reader.h"

namespace eellm::cli {
namespace {

// The one failure path (cli/commands.h): main prints "eellm generate: <status>" and exits 1.
int fail(const Status& st) {
  finish("generate", st);
  return 1;
}

struct GenerateCliOptions {
  std::string checkpoint, device, method = "recompute", threshold = "", confidence = "max_prob", batch_file, stats_out;
  std::vector<std::string> prompts, stop;
  std::vector<int> exits;
  int max_new_tokens = 64, top_k = 0, threads = 0, max_pending = 8, draft_exit = -1, draft_tokens = 4;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 0;
  bool stats = false, allow_nonfinite = false;
  double timeout = 300.0, draft_threshold = 0.0;
};

// The prompts of --prompt, then those of --batch-file.
StatusOr<std::vector<std::string>> prompt_texts(const GenerateCliOptions& o) {
  std::vector<std::string> texts = o.prompts;
  if (!o.batch_file.empty()) {
    EELLM_ASSIGN_OR_RETURN(const std::vector<std::string> b, exec::read_prompt_file(o.batch_file));
    texts.insert(texts.end(), b.begin(), b.end());
  }
  if (texts.empty()) return Status::invalid_argument("give a prompt with --prompt or --batch-file");
  if (texts.size() > exec::kMaxBatchPrompts)
    return Status::invalid_argument(std::to_string(texts.size()) + " prompts; one batch takes at most " +
                                    std::to_string(exec::kMaxBatchPrompts));
  return texts;
}

// The pipeline mode makes its backends per rank (CPU); the others open the checkpoint on the
// device, the backend (into `be`) created before the weights are allocated.
StatusOr<exec::GenerationModel> load_model(const GenerateCliOptions& o, std::unique_ptr<exec::Backend>& be) {
  if (o.method == "pipeline") {
    if (!o.device.empty() && o.device != "cpu")
      return Status::invalid_argument("--device " + o.device + ": method pipeline runs on the CPU backend");
    return exec::load_generation_model(o.checkpoint, {o.allow_nonfinite});
  }
  EELLM_ASSIGN_OR_RETURN(exec::GenerationSession session,
                         exec::open_generation(o.checkpoint, o.device, o.threads, {o.allow_nonfinite}));
  be = std::move(session.backend);
  return std::move(session.model);
}

// The decoding options: method, confidence rule, threshold (default: the scenario's), exits and
// the draft exit as layer numbers, sampling.
StatusOr<exec::GenerateOptions> generate_options(const GenerateCliOptions& o, const exec::GenerationModel& model) {
  exec::GenerateOptions g;
  EELLM_ASSIGN_OR_RETURN(g.method, parse_enum_value<InferenceMethod>("--method", o.method));
  EELLM_ASSIGN_OR_RETURN(g.confidence, parse_enum_value<Confidence>("--confidence", o.confidence));
  if (o.threshold.empty()) {
    g.threshold = model.scenario.inference.early_exit_thres;
  } else {
    EELLM_ASSIGN_OR_RETURN(g.threshold, exec::parse_threshold(o.threshold));
  }
  for (int layer : o.exits) {
    EELLM_ASSIGN_OR_RETURN(const int e, exec::exit_index_at_layer(model.config, layer));
    g.exits.push_back(e);
  }
  if (o.draft_exit >= 0) {
    EELLM_ASSIGN_OR_RETURN(g.draft_exit, exec::exit_index_at_layer(model.config, o.draft_exit));
  }
  g.draft_tokens = o.draft_tokens;
  g.draft_threshold = o.draft_threshold;
  g.max_pending = o.max_pending;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling = {o.temperature, o.top_k, o.top_p};
  g.seed = o.seed;
  g.stop = o.stop;
  return g;
}

// Prints each prompt with its continuation, the --stats summary, and writes --stats-out.
Status report(const GenerateCliOptions& o, const std::vector<std::string>& texts, const exec::GptConfig& cfg,
              const exec::GenerateOptions& g, const exec::GenerateResult& r) {
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts.size() > 1) std::printf("=== prompt %zu ===\n", i + 1);
    std::printf("%s%s\n", texts[i].c_str(), r.sequences[i].text.c_str());
  }
  if (o.stats) {
    std::printf("--- %s, %s, threshold %s, batch %zu\n", to_string(g.method), to_string(g.confidence),
                g.threshold >= 1.0 ? "off" : std::to_string(g.threshold).c_str(), texts.size());
    std::printf("%s", exec::stats_to_text(cfg, r.stats).c_str());
  }
  if (!o.stats_out.empty()) {
    std::ofstream out(o.stats_out);
    out << exec::exit_rates_json(cfg, g, r.stats);
    if (!out) return Status::io_error("cannot write " + o.stats_out);
  }
  return Status::ok();
}

int run_generate(const GenerateCliOptions& o) {
  auto texts = prompt_texts(o);
  if (!texts.is_ok()) return fail(texts.status());
  if (!o.stats_out.empty())
    if (Status st = exec::check_writable_file(o.stats_out, "--stats-out"); !st.is_ok()) return fail(st);
  std::unique_ptr<exec::Backend> be;
  auto model = load_model(o, be);
  if (!model.is_ok()) return fail(model.status());
  auto g = generate_options(o, *model);
  if (!g.is_ok()) return fail(g.status());
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : *texts) prompts.push_back(exec::encode_bytes(t));
  int rank = 0;
  StatusOr<exec::GenerateResult> r = Status::internal("not run");
  if (g->method == InferenceMethod::kPipeline) {
    // mpirun -np P: one pipeline stage per rank; rank 0 prints.
    r = exec::generate_pipeline_mpi(*model, prompts, *g, o.threads, o.timeout, &rank);
  } else {
    r = exec::generate(model->config, model->params, *be, prompts, *g);
  }
  if (!r.is_ok()) return fail(r.status());
  if (rank != 0) return 0;
  const Status st = report(o, *texts, model->config, *g, *r);
  return st.is_ok() ? 0 : fail(st);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Early-exit text generation from a trained checkpoint");
  cmd->add_option("checkpoint", o->checkpoint, "Checkpoint directory (from eellm train --save)")->required();
  cmd->add_option("--prompt", o->prompts, "Prompt text (repeat for a batch)")->allow_extra_args(false);
  cmd->add_option("--batch-file", o->batch_file,
                  "Prompts, one per line (\\n for a newline); decoded as one batch (at most 256 prompts, 4 MiB)");
  cmd->add_option("--method", o->method,
                  "full | recompute (EE-LLM KV recomputation) | speculative | pipeline (under mpirun -np P: P stages)")
      ->capture_default_str();
  cmd->add_option("--threshold", o->threshold,
                  "Exit confidence threshold in [0, 1], or off (default: the scenario's early_exit_thres)");
  cmd->add_option("--confidence", o->confidence, "max_prob | margin | entropy")->capture_default_str();
  cmd->add_option("--exits", o->exits, "Enabled exits as layer numbers (default: all)");
  cmd->add_option("--max-pending", o->max_pending, "recompute: pending tokens that force a full pass")
      ->check(int_in(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--draft-exit", o->draft_exit, "speculative: drafting exit as a layer number (default: the first)");
  cmd->add_option("--draft-tokens", o->draft_tokens, "speculative: tokens drafted per round")
      ->check(int_in(1, 1024))
      ->capture_default_str();
  cmd->add_option("--draft-threshold", o->draft_threshold,
                  "speculative: stop drafting in a round at a draft whose confidence is below this (0 = never)")
      ->check(number_in(0, 1))
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate per prompt")
      ->check(int_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 = greedy")->check(number_in(0, 100))->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "Sample from the k most likely tokens (0 = all)")->check(int_in(0, 1 << 24));
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass")->check(number_in(0, 1))->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed (sequence b uses seed + b)");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable); not included in the output")->allow_extra_args(false);
  default_elsewhere(
      cmd->add_option("--threads", o->threads, "CPU threads (default: all cores)")->check(int_in(1, kMaxThreads)));
  cmd->add_option("--device", o->device, "cpu | cuda (default: the checkpoint scenario's execution.device)");
  cmd->add_option("--timeout", o->timeout, "pipeline: seconds a stage waits for a message before failing")
      ->check(number_in(0.001, 86400))
      ->capture_default_str();
  cmd->add_flag("--stats", o->stats, "Print tokens/s, the exit histogram and layers per token");
  cmd->add_flag("--allow-nonfinite-weights", o->allow_nonfinite, "Load a checkpoint whose weights hold NaN or Inf");
  cmd->add_option("--stats-out", o->stats_out, "Write {\"exit_rates\": [...]} for eellm simulate --exit-rates");
  cmd->callback([o] { exit_code() = run_generate(*o); });
}

}  // namespace eellm::cli
