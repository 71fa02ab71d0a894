#include "model/layout.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <string>

namespace eellm {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

}  // namespace

int default_ffn_hidden_size(const ModelSpec& model) {
  if (model.ffn_hidden_size > 0) return model.ffn_hidden_size;
  if (model.activation == Activation::kSwiGLU) {
    // Megatron-LM: int((4h · 2/3) / 64) · 64 keeps SwiGLU's parameter count near a 4h GELU MLP.
    return static_cast<int>((4.0 * model.hidden_size * 2.0 / 3.0) / 64.0) * 64;
  }
  return 4 * model.hidden_size;
}

double exit_loss_weight_at(const ExitSpec& spec, int exit_index, int iteration) {
  auto pick = [exit_index](const std::vector<double>& v, double fallback) {
    if (v.empty()) return fallback;
    if (v.size() == 1) return v[0];
    return v[static_cast<size_t>(exit_index)];
  };
  const double final_w = pick(spec.exit_layer_weight, 1.0);
  const double init_w = pick(spec.exit_layer_weight_init, final_w);
  const int warm = spec.exit_layer_weight_warmup_iters;
  if (warm <= 0 || iteration >= warm) return final_w;
  const double frac = static_cast<double>(std::max(iteration, 0)) / warm;
  const double shape = spec.exit_layer_weight_warmup_style == WarmupStyle::kLinear
                           ? frac
                           : 0.5 * (1.0 - std::cos(std::numbers::pi * frac));
  return init_w + (final_w - init_w) * shape;
}

namespace {

// Sizes: every parallel degree and model dimension the rest divides by is positive.
Status check_sizes(const Scenario& s, Layout& L) {
  const ModelSpec& m = s.model;
  const ParallelSpec& p = s.parallel;
  L.tp = p.tensor_model_parallel_size;
  L.pp = p.pipeline_model_parallel_size;
  L.vp = p.virtual_pipeline_model_parallel_size;
  if (L.tp <= 0)
    return Status::invalid_argument("parallel.tensor_model_parallel_size (" + str(L.tp) + ") must be positive");
  if (L.pp <= 0)
    return Status::invalid_argument("parallel.pipeline_model_parallel_size (" + str(L.pp) + ") must be positive");
  if (L.vp <= 0)
    return Status::invalid_argument("parallel.virtual_pipeline_model_parallel_size (" + str(L.vp) +
                                    ") must be positive");
  if (m.num_layers <= 0)
    return Status::invalid_argument("model.num_layers (" + str(m.num_layers) + ") must be positive");
  if (m.hidden_size <= 0)
    return Status::invalid_argument("model.hidden_size (" + str(m.hidden_size) + ") must be positive");
  if (m.num_attention_heads <= 0)
    return Status::invalid_argument("model.num_attention_heads (" + str(m.num_attention_heads) + ") must be positive");
  if (m.vocab_size <= 0)
    return Status::invalid_argument("model.vocab_size (" + str(m.vocab_size) + ") must be positive");
  if (m.seq_length <= 0)
    return Status::invalid_argument("model.seq_length (" + str(m.seq_length) + ") must be positive");
  return Status::ok();
}

// World and data-parallel size: parallel.world_size, else data_parallel_size × tp × pp, else the
// cluster's GPUs.
Status resolve_world(const Scenario& s, Layout& L) {
  const ParallelSpec& p = s.parallel;
  L.world_size = p.world_size > 0 ? p.world_size : s.cluster.total_gpus();
  if (p.world_size <= 0 && p.data_parallel_size > 0) L.world_size = L.tp * L.pp * p.data_parallel_size;
  if (L.world_size <= 0) L.world_size = L.tp * L.pp;
  if (L.world_size % (L.tp * L.pp) != 0)
    return Status::invalid_argument("world size (" + str(L.world_size) +
                                    ") is not divisible by tensor_model_parallel_size (" + str(L.tp) +
                                    ") × pipeline_model_parallel_size (" + str(L.pp) + ")");
  L.dp = L.world_size / (L.tp * L.pp);
  if (p.data_parallel_size > 0 && p.data_parallel_size != L.dp)
    return Status::invalid_argument("parallel.data_parallel_size (" + str(p.data_parallel_size) + ") != world size (" +
                                    str(L.world_size) + ") / (tp " + str(L.tp) + " × pp " + str(L.pp) +
                                    ") = " + str(L.dp));
  return Status::ok();
}

// Microbatches per iteration: global batch / (micro-batch × dp).
Status resolve_microbatches(const Scenario& s, Layout& L) {
  const TrainingSpec& t = s.training;
  if (t.micro_batch_size <= 0)
    return Status::invalid_argument("training.micro_batch_size (" + str(t.micro_batch_size) + ") must be positive");
  if (t.global_batch_size <= 0)
    return Status::invalid_argument("training.global_batch_size (" + str(t.global_batch_size) + ") must be positive");
  if (t.global_batch_size % (t.micro_batch_size * L.dp) != 0)
    return Status::invalid_argument("training.global_batch_size (" + str(t.global_batch_size) +
                                    ") is not divisible by micro_batch_size (" + str(t.micro_batch_size) +
                                    ") × data_parallel_size (" + str(L.dp) + ")");
  L.num_microbatches = t.global_batch_size / (t.micro_batch_size * L.dp);
  return Status::ok();
}

// Resolved model dimensions (query groups, kv channels, ffn size, padded vocabulary) and their
// divisibility by tp.
Status resolve_dimensions(const Scenario& s, Layout& L) {
  const ModelSpec& m = s.model;
  const ParallelSpec& p = s.parallel;
  L.num_query_groups = m.num_query_groups > 0 ? m.num_query_groups : m.num_attention_heads;
  L.kv_channels = m.kv_channels > 0 ? m.kv_channels : m.hidden_size / m.num_attention_heads;
  if (m.kv_channels <= 0 && m.hidden_size % m.num_attention_heads != 0)
    return Status::invalid_argument("model.hidden_size (" + str(m.hidden_size) +
                                    ") is not divisible by num_attention_heads (" + str(m.num_attention_heads) + ")");
  if (m.num_attention_heads % L.num_query_groups != 0)
    return Status::invalid_argument("model.num_attention_heads (" + str(m.num_attention_heads) +
                                    ") is not divisible by num_query_groups (" + str(L.num_query_groups) + ")");
  if (m.num_attention_heads % L.tp != 0)
    return Status::invalid_argument("model.num_attention_heads (" + str(m.num_attention_heads) +
                                    ") is not divisible by tensor_model_parallel_size (" + str(L.tp) + ")");
  if (L.num_query_groups % L.tp != 0)
    return Status::invalid_argument("model.num_query_groups (" + str(L.num_query_groups) +
                                    ") is not divisible by tensor_model_parallel_size (" + str(L.tp) + ")");
  L.ffn_hidden_size = default_ffn_hidden_size(m);
  if (L.ffn_hidden_size % L.tp != 0)
    return Status::invalid_argument("model.ffn_hidden_size (" + str(L.ffn_hidden_size) +
                                    ") is not divisible by tensor_model_parallel_size (" + str(L.tp) + ")");
  if (p.sequence_parallel && m.seq_length % L.tp != 0)
    return Status::invalid_argument("model.seq_length (" + str(m.seq_length) +
                                    ") is not divisible by tensor_model_parallel_size (" + str(L.tp) +
                                    ") as sequence_parallel requires");
  const int multiple = std::max(1, m.make_vocab_size_divisible_by) * L.tp;
  L.padded_vocab_size = (m.vocab_size + multiple - 1) / multiple * multiple;
  return Status::ok();
}

// Layers per virtual stage: parallel.layer_partition, or an even split.
StatusOr<std::vector<int>> layer_partition(const Scenario& s, const Layout& L) {
  const ModelSpec& m = s.model;
  const int nvs = L.pp * L.vp;
  std::vector<int> parts = s.parallel.layer_partition;
  if (parts.empty()) {
    if (m.num_layers % nvs != 0)
      return Status::invalid_argument("model.num_layers (" + str(m.num_layers) +
                                      ") is not divisible by pipeline_model_parallel_size (" + str(L.pp) +
                                      ") × virtual_pipeline_model_parallel_size (" + str(L.vp) +
                                      "); give parallel.layer_partition for an uneven split");
    parts.assign(static_cast<size_t>(nvs), m.num_layers / nvs);
  } else {
    if (static_cast<int>(parts.size()) != nvs)
      return Status::invalid_argument("parallel.layer_partition has " + str(static_cast<int>(parts.size())) +
                                      " entries; it needs one per virtual stage: pp (" + str(L.pp) + ") × vp (" +
                                      str(L.vp) + ") = " + str(nvs));
    for (size_t i = 0; i < parts.size(); ++i)
      if (parts[i] < 0)
        return Status::invalid_argument("parallel.layer_partition[" + str(static_cast<int>(i)) + "] (" + str(parts[i]) +
                                        ") must not be negative");
    const int sum = std::accumulate(parts.begin(), parts.end(), 0);
    if (sum != m.num_layers)
      return Status::invalid_argument("parallel.layer_partition sums to " + str(sum) + " layers; model.num_layers is " +
                                      str(m.num_layers));
  }
  return parts;
}

// The chunks (one per virtual stage, round-robin over the stages) with their layers and heads.
void place_chunks(const std::vector<int>& parts, Layout& L) {
  const int nvs = L.pp * L.vp;
  int first = 0;
  L.chunks.resize(static_cast<size_t>(nvs));
  for (int v = 0; v < nvs; ++v) {
    ChunkLayout& c = L.chunks[static_cast<size_t>(v)];
    c.virtual_stage = v;
    c.stage = v % L.pp;
    c.chunk = v / L.pp;
    c.first_layer = first;
    c.num_layers = parts[static_cast<size_t>(v)];
    c.has_embedding = v == 0;
    c.has_final_head = v == nvs - 1;
    first += c.num_layers;
  }
}

// Exits: their weights' lengths, their numbers (in range, increasing) and the chunk each reads.
Status place_exits(const Scenario& s, Layout& L) {
  const ModelSpec& m = s.model;
  const ExitSpec& e = s.exits;
  const size_t ne = e.exit_layer_nums.size();
  auto check_len = [ne](const std::vector<double>& v, const char* name) -> Status {
    if (!v.empty() && v.size() != 1 && v.size() != ne)
      return Status::invalid_argument(std::string("exits.") + name + " has " + std::to_string(v.size()) +
                                      " entries; give one per exit (" + std::to_string(ne) + ") or one for all");
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(check_len(e.exit_layer_weight, "exit_layer_weight"));
  EELLM_RETURN_IF_ERROR(check_len(e.exit_layer_weight_init, "exit_layer_weight_init"));
  for (size_t i = 0; i < ne; ++i) {
    const int n = e.exit_layer_nums[i];
    const std::string field = "exits.exit_layer_nums[" + str(static_cast<int>(i)) + "] (" + str(n) + ")";
    if (n < 1 || n > m.num_layers)
      return Status::invalid_argument(field + " is out of range: layers are numbered 1.." + str(m.num_layers));
    const int depth = e.pre_exit ? n - 1 : n;
    if (depth < 1)
      return Status::invalid_argument(field + " with pre_exit would sit before the first layer; use 2.." +
                                      str(m.num_layers));
    // An exit after the last layer (EE-LLM accepts it; both 8-exit EE-Tuning scripts have one) is
    // a head of its own next to the final head: it reads the same hidden state, with its own
    // norm/MLP/output weights and loss weight.
    if (depth > m.num_layers)
      return Status::invalid_argument(field + " would sit after the last layer; use 1.." + str(m.num_layers));
    if (i > 0 && n <= e.exit_layer_nums[i - 1])
      return Status::invalid_argument(field + " must be greater than the previous exit (" +
                                      str(e.exit_layer_nums[i - 1]) +
                                      "): exits are listed in increasing order, once each");
    ExitPlacement x;
    x.index = static_cast<int>(i);
    x.layer = n;
    x.depth = depth;
    // The layer n (0-based n-1) is the one the head reads (pre: its input; post: its output).
    for (const ChunkLayout& c : L.chunks) {
      if (n - 1 >= c.first_layer && n - 1 < c.first_layer + c.num_layers) {
        x.stage = c.stage;
        x.chunk = c.chunk;
        x.virtual_stage = c.virtual_stage;
        break;
      }
    }
    L.chunks[static_cast<size_t>(x.virtual_stage)].exits.push_back(x.index);
    L.exits.push_back(x);
  }
  return Status::ok();
}

// The schedule (fill_explicit_bubbles → ee-fill) and what it needs of vp, pp, microbatches, exits.
Status resolve_schedule(const Scenario& s, Layout& L) {
  const ParallelSpec& p = s.parallel;
  const size_t ne = s.exits.exit_layer_nums.size();
  L.schedule = p.schedule;
  if (p.fill_explicit_bubbles) {
    if (p.schedule != ScheduleKind::k1F1B && p.schedule != ScheduleKind::kEE1F1B && p.schedule != ScheduleKind::kEEFill)
      return Status::invalid_argument(
          std::string("parallel.fill_explicit_bubbles needs the 1f1b or ee-1f1b schedule, not ") +
          to_string(p.schedule));
    L.schedule = ScheduleKind::kEEFill;
  }
  if (L.schedule == ScheduleKind::kInterleaved1F1B) {
    if (L.vp < 2)
      return Status::invalid_argument(
          "parallel.schedule interleaved needs virtual_pipeline_model_parallel_size ≥ 2 (got " + str(L.vp) + ")");
    if (L.num_microbatches % L.pp != 0)
      return Status::invalid_argument("number of microbatches (" + str(L.num_microbatches) +
                                      ") must be divisible by pipeline_model_parallel_size (" + str(L.pp) +
                                      ") for the interleaved schedule");
  } else if (L.vp > 1) {
    return Status::invalid_argument("parallel.virtual_pipeline_model_parallel_size (" + str(L.vp) +
                                    ") > 1 needs schedule: interleaved (got " + to_string(L.schedule) + ")");
  }
  if (L.schedule == ScheduleKind::kNoPipelining && L.pp != 1)
    return Status::invalid_argument("parallel.schedule none needs pipeline_model_parallel_size 1 (got " + str(L.pp) +
                                    ")");
  if (L.schedule == ScheduleKind::kEETuning && ne == 0)
    return Status::invalid_argument(
        "parallel.schedule ee-tuning trains only exit heads; exits.exit_layer_nums is empty");
  return Status::ok();
}

}  // namespace

StatusOr<Layout> derive_layout(const Scenario& s) {
  Layout L;
  EELLM_RETURN_IF_ERROR(check_sizes(s, L));
  EELLM_RETURN_IF_ERROR(resolve_world(s, L));
  EELLM_RETURN_IF_ERROR(resolve_microbatches(s, L));
  EELLM_RETURN_IF_ERROR(resolve_dimensions(s, L));
  EELLM_ASSIGN_OR_RETURN(const std::vector<int> parts, layer_partition(s, L));
  place_chunks(parts, L);
  EELLM_RETURN_IF_ERROR(place_exits(s, L));
  EELLM_RETURN_IF_ERROR(resolve_schedule(s, L));
  return L;
}

}  // namespace eellm
