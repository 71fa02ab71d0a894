// scenario_from_megatron: Megatron-LM / EE-LLM flags → Scenario fields. The flag table below maps
// each flag (EE-LLM's megatron/arguments.py names) to a field; megatron_export.cpp writes the same
// flags back.
#include "model/megatron.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "model/scenario_io.h"
#include "model/yaml_reader.h"

namespace eellm {
namespace {

template <typename T>
Status parse_as(const std::string& flag, const std::string& text, T& out, const char* what) {
  std::string t = text;
  if (!t.empty() && t[0] == '+') t.erase(0, 1);
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, out);
  if (t.empty() || ec != std::errc() || ptr != end)
    return Status::invalid_argument(flag + " expects " + what + ", got '" + text + "'");
  return Status::ok();
}

// Megatron's choices are exact strings; we also take the aliases the YAML reader takes.
template <typename E>
Status parse_choice(const std::string& flag, const std::string& text, E& out) {
  if (!parse_enum(text, out))
    return Status::invalid_argument(flag + ": unknown value '" + text + "'; allowed: " + enum_names<E>());
  return Status::ok();
}

// State that only makes sense once every flag is read.
struct Pending {
  int layers_per_virtual_stage = 0;
  int num_query_groups = 0;
  bool group_query_attention = false;
  bool recompute_given = false;
  bool global_batch_given = false;
  bool vocab_given = false;
  bool dtype_fp16 = false, dtype_bf16 = false;
  long long train_samples = 0;
  double lr_warmup_fraction = -1;
  std::string tokenizer_type, vocab_file;
  bool tune_exit = false;
  std::string recompute_method;
  int recompute_num_layers = 0;
  std::set<std::string> given;  // every flag the command line gave
};

struct FlagSpec {
  int nargs;  // 0: switch, 1: one value, -1: one or more
  std::function<Status(const std::string& flag, const std::vector<std::string>& values)> apply;
};

std::map<std::string, FlagSpec> flag_table(Scenario& s, Pending& p, std::vector<std::string>& warnings) {
  ModelSpec& m = s.model;
  ExitSpec& e = s.exits;
  ParallelSpec& par = s.parallel;
  TrainingSpec& t = s.training;
  auto int_ = [](int& f) {
    return FlagSpec{1, [&f](const std::string& flag, const auto& v) { return parse_as(flag, v[0], f, "an integer"); }};
  };
  auto dbl = [](double& f) {
    return FlagSpec{1, [&f](const std::string& flag, const auto& v) { return parse_as(flag, v[0], f, "a number"); }};
  };
  auto set = [](bool& f, bool value) {
    return FlagSpec{0, [&f, value](const std::string&, const auto&) {
                      f = value;
                      return Status::ok();
                    }};
  };
  auto ints = [](std::vector<int>& f) {
    return FlagSpec{-1, [&f](const std::string& flag, const auto& v) {
                      f.clear();
                      for (const std::string& x : v) {
                        int n = 0;
                        EELLM_RETURN_IF_ERROR(parse_as(flag, x, n, "integers"));
                        f.push_back(n);
                      }
                      return Status::ok();
                    }};
  };
  auto dbls = [](std::vector<double>& f) {
    return FlagSpec{-1, [&f](const std::string& flag, const auto& v) {
                      f.clear();
                      for (const std::string& x : v) {
                        double d = 0;
                        EELLM_RETURN_IF_ERROR(parse_as(flag, x, d, "numbers"));
                        f.push_back(d);
                      }
                      return Status::ok();
                    }};
  };
  auto choice = [](auto& f) {
    return FlagSpec{1, [&f](const std::string& flag, const auto& v) { return parse_choice(flag, v[0], f); }};
  };
  auto run = [](int nargs, std::function<Status(const std::vector<std::string>&)> fn) {
    return FlagSpec{nargs, [fn = std::move(fn)](const std::string&, const auto& v) { return fn(v); }};
  };
  std::map<std::string, FlagSpec> f = {
      {"--num-layers", int_(m.num_layers)},
      {"--hidden-size", int_(m.hidden_size)},
      {"--num-attention-heads", int_(m.num_attention_heads)},
      {"--ffn-hidden-size", int_(m.ffn_hidden_size)},
      {"--kv-channels", int_(m.kv_channels)},
      {"--num-query-groups", int_(p.num_query_groups)},
      {"--group-query-attention", set(p.group_query_attention, true)},
      {"--seq-length", int_(m.seq_length)},
      {"--max-position-embeddings", int_(m.max_position_embeddings)},
      {"--padded-vocab-size", run(1,
                                  [&](const auto& v) {
                                    p.vocab_given = true;
                                    return parse_as("--padded-vocab-size", v[0], m.vocab_size, "an integer");
                                  })},
      {"--make-vocab-size-divisible-by", int_(m.make_vocab_size_divisible_by)},
      {"--normalization", choice(m.normalization)},
      {"--position-embedding-type", choice(m.position_embedding_type)},
      {"--use-rotary-position-embeddings", run(0,
                                               [&](const auto&) {
                                                 m.position_embedding_type = PositionEmbedding::kRope;
                                                 return Status::ok();
                                               })},
      {"--rotary-base", dbl(m.rotary_base)},
      {"--swiglu", run(0,
                       [&](const auto&) {
                         m.activation = Activation::kSwiGLU;
                         return Status::ok();
                       })},
      {"--disable-bias-linear", set(m.add_bias_linear, false)},
      {"--untie-embeddings-and-output-weights", set(m.untie_embeddings_and_output_weights, true)},
      {"--init-method-std", dbl(m.init_method_std)},
      {"--norm-epsilon", dbl(m.layernorm_epsilon)},
      {"--layernorm-epsilon", dbl(m.layernorm_epsilon)},
      {"--exit-layer-nums", ints(e.exit_layer_nums)},
      {"--exit-layer-weight", dbls(e.exit_layer_weight)},
      {"--exit-layer-weight-init", dbls(e.exit_layer_weight_init)},
      {"--exit-layer-weight-warmup-iters", int_(e.exit_layer_weight_warmup_iters)},
      {"--exit-layer-weight-warmup-style", choice(e.exit_layer_weight_warmup_style)},
      {"--exit-layer-temperature", dbls(e.exit_layer_temperature)},
      {"--use-dynamic-exit-layer-weight", set(e.use_dynamic_exit_layer_weight, true)},
      {"--pre-exit", set(e.pre_exit, true)},
      {"--use-exit-norm", set(e.use_exit_norm, true)},
      {"--use-exit-mlp", set(e.use_exit_mlp, true)},
      {"--use-exit-block", set(e.use_exit_block, true)},
      {"--untie-exit-output-weights", set(e.untie_exit_output_weights, true)},
      {"--fill-explicit-bubbles", set(par.fill_explicit_bubbles, true)},
      {"--num-fill-warmup-microbatches", int_(par.num_fill_warmup_microbatches)},
      {"--num-fill-cooldown-microbatches", int_(par.num_fill_cooldown_microbatches)},
      {"--backward-forward-ratio", dbl(par.backward_forward_ratio)},
      {"--tune-exit", set(p.tune_exit, true)},
      {"--tune-exit-pipeline-parallel-size", int_(par.tune_exit_pipeline_parallel_size)},
      {"--tensor-model-parallel-size", int_(par.tensor_model_parallel_size)},
      {"--pipeline-model-parallel-size", int_(par.pipeline_model_parallel_size)},
      {"--num-layers-per-virtual-pipeline-stage", int_(p.layers_per_virtual_stage)},
      {"--sequence-parallel", set(par.sequence_parallel, true)},
      {"--use-distributed-optimizer", set(par.use_distributed_optimizer, true)},
      {"--overlap-grad-reduce", set(par.overlap_grad_reduce, true)},
      {"--ddp-bucket-size", int_(par.ddp_bucket_size)},
      {"--recompute-granularity", run(1,
                                      [&](const auto& v) {
                                        p.recompute_given = true;
                                        return parse_choice("--recompute-granularity", v[0], par.recompute_granularity);
                                      })},
      {"--recompute-activations", run(0,
                                      [&](const auto&) {
                                        p.recompute_given = true;
                                        par.recompute_granularity = RecomputeGranularity::kSelective;
                                        return Status::ok();
                                      })},
      {"--recompute-method", run(1,
                                 [&](const auto& v) {
                                   p.recompute_method = v[0];
                                   return Status::ok();
                                 })},
      {"--recompute-num-layers", int_(p.recompute_num_layers)},
      {"--use-flash-attn", set(m.use_flash_attn, true)},
      {"--accumulate-allreduce-grads-in-fp32", set(t.accumulate_allreduce_grads_in_fp32, true)},
      {"--micro-batch-size", int_(t.micro_batch_size)},
      {"--global-batch-size", run(1,
                                  [&](const auto& v) {
                                    p.global_batch_given = true;
                                    return parse_as("--global-batch-size", v[0], t.global_batch_size, "an integer");
                                  })},
      {"--train-iters", int_(t.train_iters)},
      {"--train-samples",
       run(1, [&](const auto& v) { return parse_as("--train-samples", v[0], p.train_samples, "an integer"); })},
      {"--lr", dbl(t.lr)},
      {"--min-lr", dbl(t.min_lr)},
      {"--lr-warmup-iters", int_(t.lr_warmup_iters)},
      {"--lr-warmup-fraction", dbl(p.lr_warmup_fraction)},
      {"--lr-decay-style", choice(t.lr_decay_style)},
      {"--lr-decay-iters", int_(t.lr_decay_iters)},
      {"--weight-decay", dbl(t.weight_decay)},
      {"--adam-beta1", dbl(t.adam_beta1)},
      {"--adam-beta2", dbl(t.adam_beta2)},
      {"--adam-eps", dbl(t.adam_eps)},
      {"--clip-grad", dbl(t.clip_grad)},
      {"--seed", run(1, [&](const auto& v) { return parse_as("--seed", v[0], t.seed, "a non-negative integer"); })},
      {"--fp16", set(p.dtype_fp16, true)},
      {"--bf16", set(p.dtype_bf16, true)},
      {"--data-path", run(-1,
                          [&](const auto& v) {
                            std::string joined;
                            for (const std::string& x : v) joined += (joined.empty() ? "" : " ") + x;
                            t.data_path = joined;
                            if (v.size() > 1)
                              warnings.push_back("--data-path is a blend of " + std::to_string(v.size() / 2) +
                                                 " weighted datasets; kept verbatim in training.data_path");
                            return Status::ok();
                          })},
      {"--split", run(1,
                      [&](const auto& v) {
                        std::vector<double> parts;
                        std::string item;
                        std::istringstream in(v[0]);
                        const char sep = v[0].find('/') != std::string::npos ? '/' : ',';
                        while (std::getline(in, item, sep)) {
                          double d = 0;
                          EELLM_RETURN_IF_ERROR(parse_as("--split", item, d, "comma-separated numbers"));
                          parts.push_back(d);
                        }
                        parts.resize(3, 0.0);
                        const double sum = parts[0] + parts[1] + parts[2];
                        if (!(sum > 0)) return Status::invalid_argument("--split '" + v[0] + "' has no positive part");
                        t.valid_fraction = std::abs(sum - 1.0) < 1e-9 ? parts[1] : parts[1] / sum;
                        return Status::ok();
                      })},
      {"--eval-interval", int_(t.eval_interval)},
      {"--eval-iters", int_(t.eval_iters)},
      {"--save-interval", int_(t.save_interval)},
      {"--log-interval", int_(t.log_interval)},
      {"--tokenizer-type", run(1,
                               [&](const auto& v) {
                                 p.tokenizer_type = v[0];
                                 return Status::ok();
                               })},
      {"--vocab-file", run(1,
                           [&](const auto& v) {
                             p.vocab_file = v[0];
                             return Status::ok();
                           })},
  };
  // Flags that do not change what eellm models (paths, logging, kernels, fusions): accepted
  // silently.
  for (const char* name : {"--save",
                           "--load",
                           "--tokenizer-model",
                           "--merge-file",
                           "--data-impl",
                           "--distributed-backend",
                           "--num-workers",
                           "--attention-dropout",
                           "--hidden-dropout",
                           "--DDP-impl",
                           "--dataloader-type",
                           "--data-cache-path",
                           "--timing-log-level",
                           "--no-masked-softmax-fusion",
                           "--no-bias-gelu-fusion",
                           "--no-bias-dropout-fusion",
                           "--no-gradient-accumulation-fusion",
                           "--use-checkpoint-args",
                           "--no-load-optim",
                           "--no-load-rng",
                           "--finetune",
                           "--exit-on-missing-checkpoint",
                           "--use-cpu-initialization",
                           "--no-query-key-layer-scaling",
                           "--apply-query-key-layer-scaling",
                           "--attention-softmax-in-fp32",
                           "--no-persist-layer-norm",
                           "--use-mcore-models",
                           "--transformer-impl",
                           "--vocab-extra-ids",
                           "--no-async-tensor-model-parallel-allreduce"})
    f.emplace(name, FlagSpec{-3, nullptr});
  return f;
}

bool silently_ignored_prefix(const std::string& flag) {
  for (const char* prefix : {"--log-", "--wandb-", "--tensorboard-", "--eval-", "--save-", "--load-", "--no-log-"})
    if (flag.starts_with(prefix)) return true;
  return false;
}

// A shipped cluster profile with this device and shape, if any (so the scenario names it).
std::string matching_cluster_profile(const std::string& device, int nodes, int gpn) {
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(scenarios_dir()) / "clusters", ec)) {
    if (entry.path().extension() != ".yaml") continue;
    auto c = load_cluster_profile(entry.path().stem().string());
    if (c.is_ok() && c->device_name == device && c->num_nodes == nodes && c->gpus_per_node == gpn) return c->name;
  }
  return "";
}

// The launcher's own options, before the script: torchrun --nnodes / --nproc_per_node.
struct Launcher {
  size_t first = 0;  // index of the script's first argument
  int nodes = 0, procs = 0;
  std::vector<std::string> unreadable;  // launcher flags given without a number (an unset variable)
};

Launcher parse_launcher(const std::vector<std::string>& words) {
  Launcher l;
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i].ends_with(".py")) {
      l.first = i + 1;
      break;
    }
    // `--nnodes 2`, `--nnodes=2`; torchrun spells nproc_per_node with '_' or '-'.
    std::string name = words[i], value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < words.size()) {
      value = words[i + 1];
    }
    int* target = name == "--nnodes"                                         ? &l.nodes
                  : name == "--nproc_per_node" || name == "--nproc-per-node" ? &l.procs
                                                                             : nullptr;
    if (target && !parse_as(name, value, *target, "an integer").is_ok()) {
      *target = 0;
      l.unreadable.push_back(name + (value.starts_with("--") || value.empty() ? " (no value)" : " '" + value + "'"));
    }
  }
  if (l.first == 0) {
    while (l.first < words.size() && !words[l.first].starts_with("--")) ++l.first;
  }
  return l;
}

// A word as the shell reads it back: single-quoted unless it only holds safe characters.
std::string shell_quote(const std::string& w) {
  const bool safe = !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("_-./,:=+@%").find(c) != std::string_view::npos;
  });
  if (safe) return w;
  std::string q = "'";
  for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Applies the script's flags from words[first] on through the table and records each flag line as
// given (training.megatron_args); flags eellm does not model are collected into one warning, stray
// arguments warned about one by one.
Status apply_flags(const std::vector<std::string>& words, size_t first, const std::map<std::string, FlagSpec>& table,
                   Pending& pending, std::string& args, std::vector<std::string>& warnings) {
  std::vector<std::string> unknown;
  for (size_t i = first; i < words.size();) {
    std::string flag = words[i++];
    std::vector<std::string> values;
    if (const size_t eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      values.push_back(flag.substr(eq + 1));
      flag = flag.substr(0, eq);
    }
    if (!flag.starts_with("--")) {
      warnings.push_back("stray argument '" + flag + "' ignored");
      continue;
    }
    while (i < words.size() && !words[i].starts_with("--")) values.push_back(words[i++]);
    if (!args.empty()) args += '\n';
    args += flag;
    for (const std::string& v : values) {
      args += ' ';
      args += shell_quote(v);
    }
    pending.given.insert(flag);
    auto it = table.find(flag);
    if (it == table.end()) {
      if (!silently_ignored_prefix(flag)) unknown.push_back(flag);
      continue;
    }
    const FlagSpec& spec = it->second;
    if (spec.nargs == -3) continue;
    if (spec.nargs == 0 && !values.empty())
      return Status::invalid_argument(flag + " takes no value, got '" + values[0] + "'");
    if (spec.nargs == 1 && values.size() != 1)
      return Status::invalid_argument(flag + " expects one value, got " + std::to_string(values.size()));
    if (spec.nargs == -1 && values.empty()) return Status::invalid_argument(flag + " expects at least one value");
    EELLM_RETURN_IF_ERROR(spec.apply(flag, values));
  }
  if (!unknown.empty()) {
    std::string list;
    for (const std::string& u : unknown) list += (list.empty() ? "" : ", ") + u;
    warnings.push_back("flags eellm does not model (kept verbatim for the export): " + list);
  }
  return Status::ok();
}

// Without --vocab-size: the size of the named tokenizer (GPT-2's when unknown).
void resolve_vocab(ModelSpec& m, const Pending& p, std::vector<std::string>& warnings) {
  if (p.vocab_given) return;
  const std::string tok = normalize_enum_text(p.tokenizer_type);
  if (tok.find("gpt2") != std::string::npos || p.vocab_file.find("gpt2") != std::string::npos) {
    m.vocab_size = 50257;
  } else if (tok.find("sentencepiece") != std::string::npos || tok.find("llama") != std::string::npos) {
    m.vocab_size = 32000;
    warnings.push_back("vocab_size 32000 assumed for tokenizer " + p.tokenizer_type +
                       " (Llama SentencePiece); set model.vocab_size in the scenario to be exact");
  } else {
    m.vocab_size = 50257;
    warnings.push_back(
        "no --padded-vocab-size or known tokenizer: GPT-2's 50257 assumed (set model.vocab_size in the "
        "scenario to be exact)");
  }
}

// The model fields that depend on several flags: sequence length, architecture, query groups,
// dtype, vocabulary.
Status resolve_model(Scenario& s, const Pending& p, std::vector<std::string>& warnings) {
  ModelSpec& m = s.model;
  if (m.num_layers <= 0 || m.hidden_size <= 0 || m.num_attention_heads <= 0)
    return Status::invalid_argument("the command line lacks --num-layers, --hidden-size or --num-attention-heads");
  if (m.seq_length <= 0) m.seq_length = m.max_position_embeddings;
  if (m.normalization == Normalization::kRMSNorm && m.position_embedding_type == PositionEmbedding::kRope &&
      m.activation == Activation::kSwiGLU)
    m.arch = "llama";
  if (p.num_query_groups > 0) {
    m.num_query_groups = p.num_query_groups;
    if (!p.group_query_attention)
      warnings.push_back("--num-query-groups without --group-query-attention: Megatron ignores it; eellm uses it");
  }
  if (p.dtype_fp16 && p.dtype_bf16) return Status::invalid_argument("--fp16 and --bf16 are mutually exclusive");
  s.training.params_dtype = p.dtype_bf16 ? DType::kBF16 : p.dtype_fp16 ? DType::kFP16 : DType::kFP32;
  resolve_vocab(m, p, warnings);
  return Status::ok();
}

// Virtual stages from --num-layers-per-virtual-pipeline-stage, and the schedule Megatron runs.
Status resolve_schedule(Scenario& s, const Pending& p) {
  const ModelSpec& m = s.model;
  ParallelSpec& par = s.parallel;
  const int tp = par.tensor_model_parallel_size, pp = par.pipeline_model_parallel_size;
  if (tp <= 0 || pp <= 0) return Status::invalid_argument("tensor and pipeline parallel sizes must be positive");
  if (p.layers_per_virtual_stage > 0) {
    if (m.num_layers % (pp * p.layers_per_virtual_stage) != 0)
      return Status::invalid_argument("--num-layers (" + std::to_string(m.num_layers) +
                                      ") is not divisible by pipeline size (" + std::to_string(pp) +
                                      ") × --num-layers-per-virtual-pipeline-stage (" +
                                      std::to_string(p.layers_per_virtual_stage) + ")");
    par.virtual_pipeline_model_parallel_size = m.num_layers / (pp * p.layers_per_virtual_stage);
  }
  if (p.tune_exit && !par.fill_explicit_bubbles && pp > 1) {
    par.schedule = ScheduleKind::kEETuning;  // EE-LLM picks bubble filling first when both are given
  } else if (pp == 1) {
    par.schedule = ScheduleKind::kNoPipelining;
  } else if (par.virtual_pipeline_model_parallel_size > 1) {
    par.schedule = ScheduleKind::kInterleaved1F1B;
  } else {
    par.schedule = s.exits.exit_layer_nums.empty() ? ScheduleKind::k1F1B : ScheduleKind::kEE1F1B;
  }
  return Status::ok();
}

// A device profile name: a shipped name, or the one shipped name it is a prefix of (a100-80gb →
// a100-80gb-sxm); several candidates are listed. Paths are left to load_device_profile.
StatusOr<std::string> resolve_device_name(const std::string& name) {
  if (name.find('/') != std::string::npos || name.ends_with(".yaml")) return name;
  std::vector<std::string> candidates;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(scenarios_dir()) / "devices", ec)) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() != ".yaml") continue;
    if (stem == name) return name;
    if (stem.starts_with(name)) candidates.push_back(stem);
  }
  if (candidates.size() == 1) return candidates[0];
  std::sort(candidates.begin(), candidates.end());
  if (candidates.empty()) return name;  // load_device_profile names the shipped ones
  std::string list;
  for (const std::string& c : candidates) list += (list.empty() ? "" : ", ") + c;
  return Status::invalid_argument("--device '" + name + "' is ambiguous: it starts " + list);
}

// EE-LLM's own checks of its early-exit flags (megatron/arguments.py): what it refuses is refused
// here, what it adjusts (fill counts above the optimum) is adjusted the same way, with a warning.
Status check_ee_llm_rules(Scenario& s, const Pending& p, std::vector<std::string>& warnings) {
  ExitSpec& e = s.exits;
  ParallelSpec& par = s.parallel;
  const size_t n = e.exit_layer_nums.size();
  auto per_exit = [&](const std::vector<double>& v, const char* flag) -> Status {
    if (!v.empty() && v.size() != n)
      return Status::invalid_argument(std::string(flag) + " has " + std::to_string(v.size()) + " value(s) for " +
                                      std::to_string(n) + " exit(s); EE-LLM requires one per --exit-layer-nums entry");
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(per_exit(e.exit_layer_weight, "--exit-layer-weight"));
  EELLM_RETURN_IF_ERROR(per_exit(e.exit_layer_weight_init, "--exit-layer-weight-init"));
  EELLM_RETURN_IF_ERROR(per_exit(e.exit_layer_temperature, "--exit-layer-temperature"));
  if (n > 0 && par.virtual_pipeline_model_parallel_size > 1)
    return Status::invalid_argument(
        "--exit-layer-nums with --num-layers-per-virtual-pipeline-stage: EE-LLM does not "
        "support early exits with a virtual pipeline");
  if (e.use_exit_mlp && (n == 0 || e.pre_exit))
    return Status::invalid_argument(n == 0 ? "--use-exit-mlp needs at least one --exit-layer-nums entry (EE-LLM)"
                                           : "--use-exit-mlp with --pre-exit: EE-LLM does not support an exit MLP "
                                             "before its layer");
  if (e.exit_layer_weight_warmup_iters < 0)
    return Status::invalid_argument("--exit-layer-weight-warmup-iters must be non-negative (EE-LLM)");
  // EE-LLM's warm-up starts from 0 per exit when --exit-layer-weight-init is not given.
  if (e.exit_layer_weight_warmup_iters > 0 && e.exit_layer_weight_init.empty()) e.exit_layer_weight_init.assign(n, 0.0);
  if (par.fill_explicit_bubbles) {
    if (par.pipeline_model_parallel_size <= 1)
      return Status::invalid_argument("--fill-explicit-bubbles requires --pipeline-model-parallel-size > 1 (EE-LLM)");
    const double ratio = par.backward_forward_ratio > 0 ? par.backward_forward_ratio : 2.0;  // EE-LLM's default
    const int cap = static_cast<int>((par.pipeline_model_parallel_size - 1) * ratio / (1.0 + ratio));
    for (auto [count, flag] : {std::pair{&par.num_fill_warmup_microbatches, "--num-fill-warmup-microbatches"},
                               std::pair{&par.num_fill_cooldown_microbatches, "--num-fill-cooldown-microbatches"}})
      if (*count > cap) {
        warnings.push_back(std::string(flag) + " " + std::to_string(*count) + " is above EE-LLM's optimum " +
                           std::to_string(cap) + " for this pipeline size and ratio; EE-LLM sets it to " +
                           std::to_string(cap) + ", and so does eellm");
        *count = cap;
      }
    if (par.backward_forward_ratio <= 0) par.backward_forward_ratio = ratio;
  }
  if (p.tune_exit && par.tune_exit_pipeline_parallel_size > 0 && par.pipeline_model_parallel_size > 0) {
    const int per = s.model.num_layers / par.pipeline_model_parallel_size;
    for (int x : e.exit_layer_nums)
      if (per > 0 && (x - 1) / per >= par.tune_exit_pipeline_parallel_size)
        warnings.push_back("exit at layer " + std::to_string(x) +
                           " sits on a stage EE-Tuning does not load "
                           "(--tune-exit-pipeline-parallel-size " +
                           std::to_string(par.tune_exit_pipeline_parallel_size) + "): it is not tuned");
  }
  return Status::ok();
}

// --recompute-method / --recompute-num-layers: eellm models full recompute of every layer, which is
// Megatron's uniform method with one layer per checkpoint.
void check_recompute(const Scenario& s, const Pending& p, std::vector<std::string>& warnings) {
  if (p.recompute_method.empty() && p.recompute_num_layers == 0) return;
  if (s.parallel.recompute_granularity != RecomputeGranularity::kFull) {
    warnings.push_back(
        "--recompute-method/--recompute-num-layers without --recompute-granularity full: Megatron "
        "uses them only with full recompute");
    return;
  }
  if (p.recompute_method == "uniform" && p.recompute_num_layers == 1) return;  // exactly what is modelled
  warnings.push_back("--recompute-method " + p.recompute_method + " --recompute-num-layers " +
                     std::to_string(p.recompute_num_layers) +
                     ": eellm models full recompute of every layer "
                     "(uniform, 1 layer a checkpoint); the flags are kept verbatim for the export");
}

// Cluster: named profile, or the device with the launcher's / the caller's GPU count (a shipped
// profile of that shape when there is one). torchrun without --nnodes runs one node.
Status resolve_cluster(Scenario& s, const MegatronImportOptions& opts, const Launcher& launcher,
                       std::vector<std::string>& warnings) {
  if (!opts.cluster.empty()) {
    EELLM_ASSIGN_OR_RETURN(s.cluster, load_cluster_profile(opts.cluster));
    if (opts.gpus_per_node > 0) s.cluster.gpus_per_node = opts.gpus_per_node;
    if (opts.gpus > 0) {
      if (opts.gpus % s.cluster.gpus_per_node != 0)
        return Status::invalid_argument("--gpus (" + std::to_string(opts.gpus) + ") is not a multiple of the " +
                                        std::to_string(s.cluster.gpus_per_node) + " GPUs per node of cluster " +
                                        opts.cluster);
      s.cluster.num_nodes = opts.gpus / s.cluster.gpus_per_node;
    }
    return Status::ok();
  }
  int gpus = opts.gpus > 0 ? opts.gpus : std::max(1, launcher.nodes) * launcher.procs;
  if (opts.gpus <= 0 && launcher.nodes <= 0 && launcher.procs > 0) {
    std::string why = "torchrun gives no --nnodes";
    for (const std::string& u : launcher.unreadable)
      if (u.starts_with("--nnodes")) why = "torchrun's --nnodes has no number: " + u + " (is WORLD_SIZE/NNODES set?)";
    warnings.push_back(why + ": assuming 1 node of " + std::to_string(launcher.procs) +
                       " GPUs; pass --gpus or set the launcher's variable in the environment");
  }
  int gpn = opts.gpus_per_node > 0 ? opts.gpus_per_node : launcher.procs;
  if (gpus <= 0) {
    gpus = s.parallel.tensor_model_parallel_size * s.parallel.pipeline_model_parallel_size;
    warnings.push_back("no GPU count given (--gpus or torchrun --nnodes/--nproc_per_node): assuming tp × pp = " +
                       std::to_string(gpus) + " GPUs (data parallel 1)");
  }
  if (gpn <= 0 || gpn > gpus) gpn = std::min(gpus, gpn > 0 ? gpn : 8);
  if (gpus % gpn != 0)
    return Status::invalid_argument(std::to_string(gpus) + " GPUs do not fill nodes of " + std::to_string(gpn) +
                                    " GPUs");
  const std::string profile = matching_cluster_profile(opts.device, gpus / gpn, gpn);
  if (!profile.empty()) {
    EELLM_ASSIGN_OR_RETURN(s.cluster, load_cluster_profile(profile));
    return Status::ok();
  }
  EELLM_ASSIGN_OR_RETURN(const DeviceProfile device, load_device_profile(opts.device));
  ClusterSpec& c = s.cluster;
  c.name = opts.device + "-" + std::to_string(gpus / gpn) + "x" + std::to_string(gpn);
  c.device_name = opts.device;
  c.device = device;
  c.num_nodes = gpus / gpn;
  c.gpus_per_node = gpn;
  c.intra_node = LinkSpec{device.nvlink_bandwidth_GBps, device.nvlink_latency_us};
  c.inter_node = LinkSpec{device.network_bandwidth_GBps, device.network_latency_us};
  return Status::ok();
}

// The batch and iteration fields that need the world size: Megatron's default global batch
// (micro-batch × dp), --train-samples and --lr-warmup-fraction.
Status resolve_training(Scenario& s, const Pending& p, std::vector<std::string>& warnings) {
  TrainingSpec& t = s.training;
  const int tp = s.parallel.tensor_model_parallel_size, pp = s.parallel.pipeline_model_parallel_size;
  const int world = s.cluster.total_gpus();
  if (world % (tp * pp) != 0)
    return Status::invalid_argument("world size (" + std::to_string(world) + ") is not divisible by tp (" +
                                    std::to_string(tp) + ") × pp (" + std::to_string(pp) + ")");
  const int dp = world / (tp * pp);
  if (!p.global_batch_given) t.global_batch_size = t.micro_batch_size * dp;  // Megatron's default
  if (p.train_samples > 0) {
    t.train_iters = static_cast<int>(p.train_samples / std::max(1, t.global_batch_size));
    warnings.push_back("--train-samples " + std::to_string(p.train_samples) + " converted to train_iters " +
                       std::to_string(t.train_iters));
  }
  if (p.lr_warmup_fraction >= 0) {
    const int decay = t.lr_decay_iters > 0 ? t.lr_decay_iters : t.train_iters;
    t.lr_warmup_iters = static_cast<int>(p.lr_warmup_fraction * decay);
  }
  return Status::ok();
}

}  // namespace

StatusOr<MegatronImport> scenario_from_megatron(const std::string& text, const MegatronImportOptions& opts) {
  EELLM_ASSIGN_OR_RETURN(const std::vector<std::string> words, expand_launch_command(text));
  MegatronImport out;
  Scenario& s = out.scenario;
  s.name = opts.name.empty() ? "megatron-import" : opts.name;
  s.description = "imported from a Megatron-LM / EE-LLM command line";
  // Megatron's defaults where they differ from eellm's.
  s.training.lr_decay_style = LrDecayStyle::kLinear;
  s.training.weight_decay = 0.01;
  s.training.adam_beta2 = 0.999;
  s.training.global_batch_size = 0;
  s.training.valid_fraction = 0.03;  // --split '969, 30, 1'
  s.training.eval_interval = 1000;
  s.training.eval_iters = 100;
  s.training.log_interval = 100;
  s.execution.device = DeviceKind::kCUDA;

  const Launcher launcher = parse_launcher(words);
  Pending p;
  const std::map<std::string, FlagSpec> table = flag_table(s, p, out.warnings);
  EELLM_RETURN_IF_ERROR(apply_flags(words, launcher.first, table, p, s.training.megatron_args, out.warnings));
  if (!p.given.count("--train-iters") && !p.given.count("--train-samples"))
    out.warnings.push_back(
        "neither --train-iters nor --train-samples (Megatron needs one): the scenario simulates "
        "with train_iters " +
        std::to_string(s.training.train_iters) + "; the export adds none");
  EELLM_RETURN_IF_ERROR(resolve_model(s, p, out.warnings));
  EELLM_RETURN_IF_ERROR(resolve_schedule(s, p));
  EELLM_RETURN_IF_ERROR(check_ee_llm_rules(s, p, out.warnings));
  check_recompute(s, p, out.warnings);
  MegatronImportOptions o = opts;
  EELLM_ASSIGN_OR_RETURN(o.device, resolve_device_name(opts.device));
  EELLM_RETURN_IF_ERROR(resolve_cluster(s, o, launcher, out.warnings));
  EELLM_RETURN_IF_ERROR(resolve_training(s, p, out.warnings));
  return out;
}

}  // namespace eellm
