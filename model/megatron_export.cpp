// scenario_to_megatron: a Scenario as a torchrun launch of EE-LLM's pretrain_early_exit_gpt.py
// (Megatron's pretrain_gpt.py without exits), one flag per line; the flags are those that
// scenario_from_megatron (megatron.cpp) reads, so the two round-trip.
#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "model/megatron.h"

namespace eellm {
namespace {

// Shortest text that reads back to the same double.
std::string fmt(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  return std::string(buf, ptr);
}

// The flag lines of a launch, "--flag value" or "--flag".
struct Flags {
  std::vector<std::string> lines;
  void operator()(const std::string& f, const std::string& v = "") { lines.push_back(v.empty() ? f : f + " " + v); }
};

// Space-separated values (doubles in their shortest round-trip form).
template <typename T>
std::string list(const std::vector<T>& v) {
  std::string r;
  for (const auto& x : v) {
    if (!r.empty()) r += " ";
    if constexpr (std::is_same_v<T, double>)
      r += fmt(x);
    else
      r += std::to_string(x);
  }
  return r;
}

std::string num(int v) {
  return std::to_string(v);
}

void model_flags(const ModelSpec& m, Flags& flag) {
  flag("--num-layers", num(m.num_layers));
  flag("--hidden-size", num(m.hidden_size));
  flag("--num-attention-heads", num(m.num_attention_heads));
  if (m.ffn_hidden_size > 0) flag("--ffn-hidden-size", num(m.ffn_hidden_size));
  if (m.kv_channels > 0) flag("--kv-channels", num(m.kv_channels));
  if (m.num_query_groups > 0) {
    flag("--group-query-attention");
    flag("--num-query-groups", num(m.num_query_groups));
  }
  flag("--seq-length", num(m.seq_length));
  flag("--max-position-embeddings", num(m.max_position_embeddings > 0 ? m.max_position_embeddings : m.seq_length));
  flag("--padded-vocab-size", num(m.vocab_size));
  flag("--make-vocab-size-divisible-by", num(m.make_vocab_size_divisible_by));
  flag("--normalization", to_string(m.normalization));
  flag("--norm-epsilon", fmt(m.layernorm_epsilon));
  flag("--position-embedding-type", to_string(m.position_embedding_type));
  if (m.rotary_base != 10000.0) flag("--rotary-base", fmt(m.rotary_base));
  if (m.activation == Activation::kSwiGLU) flag("--swiglu");
  if (!m.add_bias_linear) flag("--disable-bias-linear");
  if (m.untie_embeddings_and_output_weights) flag("--untie-embeddings-and-output-weights");
  flag("--init-method-std", fmt(m.init_method_std));
  if (m.use_flash_attn) flag("--use-flash-attn");
}

void parallel_flags(const Scenario& s, Flags& flag, std::vector<std::string>& warnings) {
  const ModelSpec& m = s.model;
  const ParallelSpec& par = s.parallel;
  flag("--tensor-model-parallel-size", num(par.tensor_model_parallel_size));
  flag("--pipeline-model-parallel-size", num(par.pipeline_model_parallel_size));
  if (par.virtual_pipeline_model_parallel_size > 1) {
    const int per = m.num_layers / (par.pipeline_model_parallel_size * par.virtual_pipeline_model_parallel_size);
    flag("--num-layers-per-virtual-pipeline-stage", num(per));
  }
  if (!par.layer_partition.empty())
    warnings.push_back(
        "parallel.layer_partition (an uneven split) has no Megatron flag; Megatron splits layers "
        "evenly");
  if (par.sequence_parallel) flag("--sequence-parallel");
  if (par.use_distributed_optimizer) flag("--use-distributed-optimizer");
  if (par.overlap_grad_reduce) flag("--overlap-grad-reduce");
  if (par.ddp_bucket_size > 0) flag("--ddp-bucket-size", num(par.ddp_bucket_size));
  if (par.recompute_granularity != RecomputeGranularity::kNone)
    flag("--recompute-granularity", to_string(par.recompute_granularity));
  switch (par.schedule) {
    case ScheduleKind::kEETuning:
      flag("--tune-exit");
      if (par.tune_exit_pipeline_parallel_size > 0)
        flag("--tune-exit-pipeline-parallel-size", num(par.tune_exit_pipeline_parallel_size));
      break;
    case ScheduleKind::kGPipe:
    case ScheduleKind::kZBH1:
      warnings.push_back(std::string("schedule ") + to_string(par.schedule) +
                         " has no Megatron/EE-LLM pretraining flag; the command runs 1F1B");
      break;
    case ScheduleKind::kEEFill:
      if (!par.fill_explicit_bubbles) flag("--fill-explicit-bubbles");
      break;
    default:
      break;
  }
}

void exit_flags(const Scenario& s, Flags& flag, std::vector<std::string>& warnings) {
  const ExitSpec& e = s.exits;
  const ParallelSpec& par = s.parallel;
  if (!e.exit_layer_nums.empty()) {
    flag("--exit-layer-nums", list(e.exit_layer_nums));
    if (!e.exit_layer_weight.empty()) flag("--exit-layer-weight", list(e.exit_layer_weight));
    if (!e.exit_layer_weight_init.empty()) flag("--exit-layer-weight-init", list(e.exit_layer_weight_init));
    flag("--exit-layer-weight-warmup-iters", num(e.exit_layer_weight_warmup_iters));
    flag("--exit-layer-weight-warmup-style", to_string(e.exit_layer_weight_warmup_style));
    if (!e.exit_layer_temperature.empty()) flag("--exit-layer-temperature", list(e.exit_layer_temperature));
  }
  if (e.use_dynamic_exit_layer_weight) flag("--use-dynamic-exit-layer-weight");
  if (e.pre_exit) flag("--pre-exit");
  if (e.use_exit_norm) flag("--use-exit-norm");
  if (e.use_exit_mlp) flag("--use-exit-mlp");
  if (e.use_exit_block) flag("--use-exit-block");
  if (e.untie_exit_output_weights) flag("--untie-exit-output-weights");
  if (e.final_exit_weight != 1.0)
    warnings.push_back("exits.final_exit_weight (" + fmt(e.final_exit_weight) + ") has no EE-LLM flag; EE-LLM uses 1");
  if (par.fill_explicit_bubbles) flag("--fill-explicit-bubbles");
  if (par.num_fill_warmup_microbatches >= 0)
    flag("--num-fill-warmup-microbatches", num(par.num_fill_warmup_microbatches));
  if (par.num_fill_cooldown_microbatches >= 0)
    flag("--num-fill-cooldown-microbatches", num(par.num_fill_cooldown_microbatches));
  if (par.backward_forward_ratio > 0) flag("--backward-forward-ratio", fmt(par.backward_forward_ratio));
  if (par.fill_semantics != FillSemantics::kEELLM &&
      (par.fill_explicit_bubbles || par.schedule == ScheduleKind::kEEFill))
    warnings.push_back("parallel.fill_semantics exit-truncated has no EE-LLM flag; EE-LLM runs its own fill order");
}

void training_flags(const TrainingSpec& t, Flags& flag) {
  flag("--micro-batch-size", num(t.micro_batch_size));
  flag("--global-batch-size", num(t.global_batch_size));
  flag("--train-iters", num(t.train_iters));
  flag("--lr", fmt(t.lr));
  flag("--min-lr", fmt(t.min_lr));
  flag("--lr-warmup-iters", num(t.lr_warmup_iters));
  flag("--lr-decay-style", to_string(t.lr_decay_style));
  if (t.lr_decay_iters > 0) flag("--lr-decay-iters", num(t.lr_decay_iters));
  flag("--weight-decay", fmt(t.weight_decay));
  flag("--adam-beta1", fmt(t.adam_beta1));
  flag("--adam-beta2", fmt(t.adam_beta2));
  flag("--adam-eps", fmt(t.adam_eps));
  flag("--clip-grad", fmt(t.clip_grad));
  flag("--seed", std::to_string(t.seed));
  if (t.params_dtype == DType::kBF16) flag("--bf16");
  if (t.params_dtype == DType::kFP16) flag("--fp16");
  if (t.accumulate_allreduce_grads_in_fp32) flag("--accumulate-allreduce-grads-in-fp32");
  if (!t.data_path.empty()) flag("--data-path", t.data_path);
  flag("--split", fmt(1.0 - t.valid_fraction) + "," + fmt(t.valid_fraction) + ",0");
  flag("--eval-interval", num(t.eval_interval));
  flag("--eval-iters", num(t.eval_iters));
  flag("--save-interval", num(t.save_interval));
  flag("--log-interval", num(t.log_interval));
}

// The torchrun command: a title comment, the launcher with the world's nodes and GPUs per node,
// the script and one flag per line.
std::string launch_command(const Scenario& s, const Flags& flags) {
  const ParallelSpec& par = s.parallel;
  const int world = par.world_size > 0 ? par.world_size : s.cluster.total_gpus();
  const int procs = std::max(1, std::min(world, s.cluster.gpus_per_node));
  const int nodes = std::max(1, world / procs);
  std::string title = s.name + (s.description.empty() ? "" : ": " + s.description);
  for (char& c : title)
    if (c == '\n') c = ' ';
  std::string cmd = "# " + title + "\n";
  if (par.sequence_parallel) cmd += "CUDA_DEVICE_MAX_CONNECTIONS=1 ";
  cmd += "torchrun --nnodes " + num(nodes) + " --nproc_per_node " + num(procs) + " " +
         (s.exits.exit_layer_nums.empty() ? "pretrain_gpt.py" : "pretrain_early_exit_gpt.py");
  for (const std::string& l : flags.lines) cmd += " \\\n    " + l;
  return cmd + "\n";
}

// Every flag eellm models, rendered from the scenario (warnings: fields no flag expresses).
Flags modelled_flags(const Scenario& s, std::vector<std::string>* warnings) {
  std::vector<std::string> ignored;
  Flags flags;
  model_flags(s.model, flags);
  parallel_flags(s, flags, warnings ? *warnings : ignored);
  exit_flags(s, flags, warnings ? *warnings : ignored);
  training_flags(s.training, flags);
  return flags;
}

std::string flag_name(const std::string& line) {
  return line.substr(0, line.find(' '));
}

// Flags Megatron reads as another spelling of a rendered one.
std::string canonical_flag(const std::string& flag) {
  static const std::map<std::string, std::string> aliases = {
      {"--recompute-activations", "--recompute-granularity"},
      {"--use-rotary-position-embeddings", "--position-embedding-type"},
      {"--layernorm-epsilon", "--norm-epsilon"},
      {"--train-samples", "--train-iters"},
      {"--lr-warmup-fraction", "--lr-warmup-iters"}};
  auto it = aliases.find(flag);
  return it == aliases.end() ? flag : it->second;
}

// The command line the scenario was imported from (training.megatron_args), with each modelled flag
// whose value the scenario changed since rewritten, and each changed flag it did not give appended:
// an unchanged flag keeps its spelling ("990,9,1"), an omitted one stays omitted, and flags eellm
// does not model come back verbatim.
Flags as_given(const Scenario& s, const Flags& now, std::vector<std::string>& warnings) {
  MegatronImportOptions o;
  o.device = s.cluster.device_name;
  o.gpus = s.parallel.world_size > 0 ? s.parallel.world_size : s.cluster.total_gpus();
  o.gpus_per_node = std::min(o.gpus, s.cluster.gpus_per_node);
  std::string text = "pretrain_early_exit_gpt.py \\\n";
  for (char c : s.training.megatron_args) text += c == '\n' ? std::string(" \\\n") : std::string(1, c);
  auto given = scenario_from_megatron(text, o);
  if (!given.is_ok()) {
    warnings.push_back("training.megatron_args cannot be read back (" + given.status().message() +
                       "); the export renders every flag from the scenario");
    return now;
  }
  std::map<std::string, std::string> cur, old;
  for (const std::string& l : now.lines) cur[flag_name(l)] = l;
  for (const std::string& l : modelled_flags(given->scenario, nullptr).lines) old[flag_name(l)] = l;
  auto changed = [&](const std::string& f) {
    return cur.count(f) ? !old.count(f) || old[f] != cur[f] : old.count(f) > 0;
  };
  Flags out;
  std::set<std::string> covered;
  std::istringstream in(s.training.megatron_args);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::string f = flag_name(line), canon = canonical_flag(f);
    covered.insert(canon);
    if (!cur.count(canon) && !old.count(canon)) {
      out.lines.push_back(line);  // not modelled, or modelled without a rendered flag (tokenizer, ...)
    } else if (!changed(canon)) {
      out.lines.push_back(line);
    } else if (cur.count(canon)) {
      out.lines.push_back(cur[canon]);  // the new value, under the rendered spelling
    }
  }
  for (const std::string& l : now.lines)
    if (!covered.count(flag_name(l)) && changed(flag_name(l))) out.lines.push_back(l);
  return out;
}

}  // namespace

MegatronExport scenario_to_megatron(const Scenario& s) {
  MegatronExport out;
  Flags flags = modelled_flags(s, &out.warnings);
  if (!s.training.megatron_args.empty()) flags = as_given(s, flags, out.warnings);
  out.command = launch_command(s, flags);
  return out;
}

}  // namespace eellm
