// Early-exit inference simulation (see inference_sim.h for the model).
#include "sim/inference_sim.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/parse.h"
#include "model/scenario_io.h"

namespace eellm {
namespace {

// Deterministic pseudo-random u in [0, 1) for draw i (splitmix64 of the index): draws are
// independent, so runs of early exits and joint acceptances have their true frequencies.
double uniform_at(int64_t i) {
  uint64_t z = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// Tokens simulated at least, so per-token averages are stable (standard error ≲ 0.5 %).
constexpr int kMinSimulatedTokens = 20000;

// Exit index drawn for draw `i` (exit_rates.size() = the final head).
size_t draw_exit(const std::vector<double>& rates, int64_t i) {
  const double u = uniform_at(i);
  double cum = 0;
  for (size_t k = 0; k < rates.size(); ++k) {
    cum += rates[k];
    if (u < cum) return k;
  }
  return rates.size();
}

// Depth (layers run) for an exit index; the final head needs all layers.
int depth_of(const InferenceCosts& c, size_t k) {
  return k < c.exit_depth.size() ? c.exit_depth[k] : c.num_layers;
}

// The exit the whole batch leaves at: the deepest of its sequences' draws.
size_t batch_exit(const InferenceCosts& c, const std::vector<double>& rates, int64_t step) {
  size_t k = 0;
  for (int b = 0; b < c.batch_size; ++b) k = std::max(k, draw_exit(rates, step * c.batch_size + b));
  return k;
}

// Exit heads evaluated by a step that decides at exit k (all exits up to k; none past it).
double exit_heads_time(const InferenceCosts& c, size_t k) {
  double t = 0;
  for (size_t j = 0; j < c.exit_heads.size() && j <= k; ++j) t += c.exit_heads[j].time(1);
  return t;
}

int stage_at_depth(const InferenceCosts& c, int depth) {
  if (depth <= 0 || c.stage_of_layer.empty()) return 0;
  return c.stage_of_layer[static_cast<size_t>(std::min(depth, c.num_layers) - 1)];
}

}  // namespace

Status check_exit_rates(const std::vector<double>& rates, size_t num_exits, const std::string& source) {
  if (rates.size() != num_exits)
    return Status::invalid_argument(source + " has " + std::to_string(rates.size()) + " entries; the model has " +
                                    std::to_string(num_exits) +
                                    " exits (one rate per exit, the rest reach the final head)");
  double sum = 0;
  for (size_t k = 0; k < rates.size(); ++k) {
    if (!(rates[k] >= 0 && rates[k] <= 1))
      return Status::invalid_argument(source + "[" + std::to_string(k) + "] (" + std::to_string(rates[k]) +
                                      ") must lie in [0, 1]");
    sum += rates[k];
  }
  if (sum > 1 + 1e-9)
    return Status::invalid_argument(source + " sums to " + std::to_string(sum) +
                                    "; the fractions of tokens leaving at the exits must sum to at most 1");
  return Status::ok();
}

StatusOr<MeasuredExitRates> read_exit_rates_file(const std::string& path) {
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, "exit-rates file", uint64_t{64} << 20));
  if (json_nesting_depth(text, 8) > 8)
    return Status::invalid_argument(path +
                                    ": JSON nested deeper than 8 levels; an exit-rates file is "
                                    "{\"exit_rates\": [...], \"exit_layers\": [...]}");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return Status::corruption(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("exit_rates") || !j["exit_rates"].is_array())
    return Status::invalid_argument(path + ": expected an object with an array \"exit_rates\"");
  MeasuredExitRates r;
  for (const auto& v : j["exit_rates"]) {
    if (!v.is_number())
      return Status::invalid_argument(path + ": exit_rates holds a non-number (" + std::string(v.type_name()) + ")");
    r.rates.push_back(v.get<double>());
  }
  if (j.contains("exit_layers")) {
    if (!j["exit_layers"].is_array())
      return Status::invalid_argument(path + ": exit_layers must be a list of layer numbers");
    for (const auto& v : j["exit_layers"]) {
      if (!v.is_number_integer())
        return Status::invalid_argument(path + ": exit_layers holds a non-integer (" + std::string(v.type_name()) +
                                        ")");
      r.exit_layers.push_back(v.get<int>());
    }
  }
  return r;
}

StatusOr<std::vector<double>> read_exit_rates_json(const std::string& path) {
  EELLM_ASSIGN_OR_RETURN(MeasuredExitRates r, read_exit_rates_file(path));
  return r.rates;
}

namespace {

std::string layer_list(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Picks the rates (options, else the scenario's, else all 0) and says where they came from; refuses
// rates measured on a model whose exits sit elsewhere.
Status choose_exit_rates(const Scenario& s, const InferenceSimOptions& o, size_t num_exits, InferenceSimResult& r) {
  const bool from_options = !o.exit_rates.empty();
  const std::string source =
      from_options ? (o.exit_rates_source.empty() ? "exit_rates" : o.exit_rates_source) : "inference.exit_rates";
  if (from_options && !o.exit_rates_layers.empty() && o.exit_rates_layers != s.exits.exit_layer_nums)
    return Status::invalid_argument(source + " was measured on a model with exits at layers " +
                                    layer_list(o.exit_rates_layers) + "; " + s.name + " has exits at " +
                                    layer_list(s.exits.exit_layer_nums) +
                                    ": exit rates do not carry over to other exit depths (measure them on this "
                                    "model with eellm generate --stats-out, or set inference.exit_rates)");
  r.exit_rates = from_options ? o.exit_rates : s.inference.exit_rates;
  if (from_options) {
    r.exit_rates_source =
        "from " + source +
        (o.exit_rates_layers.empty() ? "" : " (measured with exits at layers " + layer_list(o.exit_rates_layers) + ")");
  } else if (!r.exit_rates.empty()) {
    r.exit_rates_source = "from the scenario's inference.exit_rates";
  } else {
    r.exit_rates.assign(num_exits, 0.0);
    r.exit_rates_assumed = num_exits > 0;
    r.exit_rates_source = num_exits > 0 ? "assumed: none were given, so no token exits early and every early-exit "
                                          "method can only be slower (pass --exit-rates from eellm generate "
                                          "--stats-out, or set inference.exit_rates)"
                                        : "(no exits)";
  }
  return check_exit_rates(r.exit_rates, num_exits, source);
}

}  // namespace

StatusOr<InferenceCosts> inference_costs(const Scenario& s) {
  EELLM_ASSIGN_OR_RETURN(Layout L, derive_layout(s));
  const CostModel cm(s, L);
  const DeviceProfile& d = s.cluster.device;
  const InferenceSpec& inf = s.inference;
  if (inf.batch_size <= 0)
    return Status::invalid_argument("inference.batch_size (" + std::to_string(inf.batch_size) + ") must be positive");
  if (inf.prompt_length <= 0)
    return Status::invalid_argument("inference.prompt_length (" + std::to_string(inf.prompt_length) +
                                    ") must be positive");
  if (inf.max_new_tokens <= 0)
    return Status::invalid_argument("inference.max_new_tokens (" + std::to_string(inf.max_new_tokens) +
                                    ") must be positive");
  const double bw = d.memory_bandwidth_GBps * 1e9 * std::max(0.05, d.elementwise_efficiency);
  const double flops = cm.peak_flops() * std::max(0.05, d.gemm_max_efficiency);
  if (bw <= 0 || flops <= 0)
    return Status::invalid_argument("device " + d.name + " has no memory bandwidth or peak FLOP/s");
  const ParamCounts pc = cm.param_counts();
  const double eb = cm.activation_element_bytes();
  const double B = inf.batch_size, h = s.model.hidden_size, tp = L.tp;
  const double kv_per_token = 2.0 * L.num_query_groups * L.kv_channels * eb / tp;
  const bool inter_tp = cm.tp_group_inter_node();
  auto tp_comm = [&](double tokens) {
    return L.tp > 1 ? 2 * cm.allreduce_time(static_cast<int64_t>(B * tokens * h * eb), L.tp, inter_tp) : 0.0;
  };
  auto layer_cost = [&](double context, double tokens_for_comm) {
    StepCost c;
    c.memory_s = (static_cast<double>(pc.per_layer) / tp * eb + B * context * kv_per_token) / bw;
    c.compute_per_token_s = B * (2.0 * static_cast<double>(pc.per_layer) / tp + 4.0 * context * h / tp) / flops;
    c.comm_s = tp_comm(tokens_for_comm);
    return c;
  };
  auto head_cost = [&](double params) {
    StepCost c;
    c.memory_s = params / tp * eb / bw;
    c.compute_per_token_s = B * 2.0 * params / tp / flops;
    return c;
  };
  InferenceCosts c;
  c.num_layers = s.model.num_layers;
  c.pp = L.pp;
  c.batch_size = inf.batch_size;
  c.layer = layer_cost(inf.prompt_length + inf.max_new_tokens / 2.0, 1);
  c.prefill_layer = layer_cost(inf.prompt_length / 2.0, inf.prompt_length);
  const double vocab_proj = static_cast<double>(L.padded_vocab_size) * h;
  c.final_head = head_cost(pc.output_layer > 0 ? static_cast<double>(pc.output_layer) : vocab_proj);
  for (size_t k = 0; k < L.exits.size(); ++k) {
    double p = k < pc.exit_heads.size() ? static_cast<double>(pc.exit_heads[k]) : 0;
    if (!s.exits.untie_exit_output_weights) p += vocab_proj;  // tied: the projection reads the embedding
    c.exit_heads.push_back(head_cost(p));
    c.exit_depth.push_back(L.exits[k].depth);
  }
  c.stage_of_layer.assign(static_cast<size_t>(c.num_layers), 0);
  for (const ChunkLayout& ch : L.chunks)
    for (int l = ch.first_layer; l < ch.first_layer + ch.num_layers; ++l)
      c.stage_of_layer[static_cast<size_t>(l)] = ch.stage;
  if (L.pp > 1) c.p2p_s = cm.p2p_time(static_cast<int64_t>(B * h * eb), cm.pp_hop_inter_node(0));
  return c;
}

namespace {

// What a decode of N tokens adds up: its time, the layers tokens needed before their decision and
// the layer steps run (incl. KV recompute / fill).
struct DecodeTally {
  double total = 0, exit_layers = 0, computed = 0;
};

// One full-model token after another.
DecodeTally decode_full(const InferenceCosts& c, int N, double full_token) {
  DecodeTally d;
  d.total = N * full_token;
  d.exit_layers = d.computed = static_cast<double>(N) * c.num_layers;
  return d;
}

// Early exit with KV recompute: the layers an exited token skipped run later, batched with the next
// token that goes deeper (a full pass once more than max_pending_recompute tokens wait).
DecodeTally decode_recompute(const InferenceCosts& c, int N, const DecodeParams& p) {
  DecodeTally d;
  const int Lz = c.num_layers;
  std::vector<int> pending;  // depths reached by earlier tokens whose deeper KV is missing
  for (int t = 0; t < N; ++t) {
    size_t k = batch_exit(c, p.exit_rates, t);
    if (static_cast<int>(pending.size()) > p.max_pending_recompute) k = c.exit_depth.size();  // forced full pass
    const int D = depth_of(c, k);
    for (int j = 1; j <= D; ++j) {
      int n = 1;
      for (int q : pending) n += q < j ? 1 : 0;
      d.total += c.layer.time(n);
      d.computed += n;
    }
    d.total += exit_heads_time(c, k);
    if (k >= c.exit_depth.size()) d.total += c.final_head.time(1);
    const int s = stage_at_depth(c, D);
    d.total += c.p2p_s * (s + (s > 0 ? 1 : 0));
    d.exit_layers += D;
    std::vector<int> keep;
    for (int q : pending)
      if (std::max(q, D) < Lz) keep.push_back(std::max(q, D));
    if (D < Lz) keep.push_back(D);
    pending.swap(keep);
  }
  return d;
}

// Pipeline-based early exit: the next token starts once this one is decided; later stages keep
// filling the KV of the exited token behind it.
DecodeTally decode_pipeline(const InferenceCosts& c, int N, const DecodeParams& p) {
  DecodeTally d;
  const int Lz = c.num_layers;
  const double t1 = c.layer.time(1);
  std::vector<double> free(static_cast<size_t>(c.pp), 0.0);
  double ready = 0, decided = 0;
  for (int t = 0; t < N; ++t) {
    const size_t k = batch_exit(c, p.exit_rates, t);
    const int D = depth_of(c, k);
    double arrival = ready, decision = -1;
    int decision_stage = c.pp - 1;
    int layer = 0;
    for (int s = 0; s < c.pp; ++s) {
      double cur = std::max(arrival, free[static_cast<size_t>(s)]);
      while (layer < Lz && c.stage_of_layer[static_cast<size_t>(layer)] == s) {
        cur += t1;
        ++layer;
        // Exit heads that decide after this layer, while the token is still undecided.
        for (size_t j = 0; j < c.exit_depth.size() && decision < 0; ++j)
          if (c.exit_depth[j] == layer && j <= k) {
            cur += c.exit_heads[j].time(1);
            if (j == k) {
              decision = cur;
              decision_stage = s;
            }
          }
      }
      if (s == c.pp - 1 && decision < 0) {
        cur += c.final_head.time(1);
        decision = cur;
      }
      free[static_cast<size_t>(s)] = cur;
      arrival = cur + c.p2p_s;
    }
    ready = decision + (c.pp > 1 && decision_stage > 0 ? c.p2p_s : 0);
    decided = decision;
    d.exit_layers += D;
    d.computed += Lz;
  }
  d.total = decided;
  return d;
}

// Self-speculative decoding: K drafts from an exit, verified by the rest of the model in one pass.
// Per-token figures over the tokens actually produced (the last round may overshoot N).
DecodeResult decode_speculative(const InferenceCosts& c, int N, const DecodeParams& p, double full_token) {
  DecodeResult r;
  r.method = InferenceMethod::kSpeculative;
  const int Lz = c.num_layers;
  const double t1 = c.layer.time(1);
  const size_t dk =
      std::min(static_cast<size_t>(std::max(0, p.draft_exit)), c.exit_depth.empty() ? 0 : c.exit_depth.size() - 1);
  const int d = c.exit_depth.empty() ? Lz : c.exit_depth[dk];
  const int K = std::max(1, p.draft_tokens);
  double alpha = p.acceptance_rate;
  if (alpha < 0) {
    alpha = 0;
    for (size_t j = 0; j <= dk && j < p.exit_rates.size(); ++j) alpha += p.exit_rates[j];
  }
  alpha = std::clamp(alpha, 0.0, 1.0);
  r.acceptance_rate = alpha;
  const double alpha_batch = std::pow(alpha, c.batch_size);  // every sequence must accept
  const int sd = stage_at_depth(c, d);
  const double draft_step = d * t1 + (c.exit_heads.empty() ? 0 : c.exit_heads[dk].time(1)) + c.p2p_s * 2 * sd;
  const double verify = (Lz - d) * c.layer.time(K) + c.final_head.time(K) + (c.pp > 1 ? c.p2p_s * (c.pp - sd) : 0);
  DecodeTally t;
  int produced = 0;
  int64_t draw = 0;
  while (produced < N) {
    int n = 0;
    while (n < K && uniform_at(draw++) < alpha_batch) ++n;
    produced += n < K ? n + 1 : K;
    t.total += K * draft_step + verify;
    t.exit_layers += static_cast<double>(K) * d + (Lz - d);
    t.computed += static_cast<double>(K) * d + static_cast<double>(K) * (Lz - d);
  }
  r.time_per_output_token_s = t.total / produced;
  r.tokens_per_s = c.batch_size * produced / t.total;
  r.avg_exit_layers = t.exit_layers / produced;
  r.avg_layers_computed = t.computed / produced;
  r.speedup_vs_full = full_token / r.time_per_output_token_s;
  r.decode_s = r.time_per_output_token_s * std::max(1, p.new_tokens);
  return r;
}

}  // namespace

DecodeResult simulate_decode(const InferenceCosts& c, InferenceMethod method, const DecodeParams& p) {
  const int N = std::max(kMinSimulatedTokens, p.new_tokens);
  const double full_token = c.num_layers * c.layer.time(1) + c.final_head.time(1) + (c.pp > 1 ? c.pp * c.p2p_s : 0);
  DecodeTally d;
  switch (method) {
    case InferenceMethod::kFull:
      d = decode_full(c, N, full_token);
      break;
    case InferenceMethod::kRecompute:
      d = decode_recompute(c, N, p);
      break;
    case InferenceMethod::kPipeline:
      d = decode_pipeline(c, N, p);
      break;
    case InferenceMethod::kSpeculative:
      return decode_speculative(c, N, p, full_token);
  }
  DecodeResult r;
  r.method = method;
  r.time_per_output_token_s = d.total / N;
  r.decode_s = r.time_per_output_token_s * std::max(1, p.new_tokens);
  r.tokens_per_s = d.total > 0 ? c.batch_size * N / d.total : 0;
  r.avg_exit_layers = d.exit_layers / N;
  r.avg_layers_computed = d.computed / N;
  r.speedup_vs_full = r.time_per_output_token_s > 0 ? full_token / r.time_per_output_token_s : 1;
  return r;
}

StatusOr<InferenceSimResult> simulate_inference(const Scenario& s, const InferenceSimOptions& o) {
  EELLM_ASSIGN_OR_RETURN(InferenceCosts c, inference_costs(s));
  InferenceSimResult r;
  r.scenario = s.name;
  r.tp = s.parallel.tensor_model_parallel_size;
  r.pp = c.pp;
  r.batch_size = c.batch_size;
  r.prompt_length = s.inference.prompt_length;
  r.new_tokens = s.inference.max_new_tokens;
  EELLM_RETURN_IF_ERROR(choose_exit_rates(s, o, c.exit_depth.size(), r));
  r.prefill_s = c.num_layers * c.prefill_layer.time(s.inference.prompt_length) + c.final_head.time(1) +
                (c.pp > 1 ? (c.pp - 1) * c.p2p_s : 0);
  r.layer_step_s = c.layer.time(1);
  DecodeParams dp;
  dp.exit_rates = r.exit_rates;
  dp.new_tokens = s.inference.max_new_tokens;
  dp.max_pending_recompute = s.inference.max_pending_recompute;
  dp.draft_exit = s.inference.draft_exit;
  dp.draft_tokens = s.inference.speculative_draft_tokens;
  dp.acceptance_rate = o.acceptance_rate;
  std::vector<InferenceMethod> methods = o.methods;
  if (methods.empty()) {
    methods = {InferenceMethod::kFull, InferenceMethod::kRecompute};
    if (c.pp > 1) methods.push_back(InferenceMethod::kPipeline);
    if (!c.exit_depth.empty()) methods.push_back(InferenceMethod::kSpeculative);
  }
  for (InferenceMethod m : methods) {
    if ((m == InferenceMethod::kSpeculative) && c.exit_depth.empty())
      return Status::invalid_argument(
          "self-speculative decoding drafts through an exit; exits.exit_layer_nums is empty");
    if (m == InferenceMethod::kSpeculative &&
        (s.inference.draft_exit < 0 || s.inference.draft_exit >= static_cast<int>(c.exit_depth.size())))
      return Status::invalid_argument("inference.draft_exit (" + std::to_string(s.inference.draft_exit) +
                                      ") must index exits.exit_layer_nums (0.." +
                                      std::to_string(c.exit_depth.size() - 1) + ")");
    r.methods.push_back(simulate_decode(c, m, dp));
  }
  return r;
}

std::string inference_to_text(const InferenceSimResult& r) {
  std::ostringstream os;
  char line[256];
  os << r.scenario << ": inference, tp " << r.tp << " pp " << r.pp << ", batch " << r.batch_size << ", prompt "
     << r.prompt_length << ", " << r.new_tokens << " new tokens; exit rates [";
  for (size_t k = 0; k < r.exit_rates.size(); ++k) os << (k ? ", " : "") << r.exit_rates[k];
  os << "] " << r.exit_rates_source;
  std::snprintf(line, sizeof line, "\nprefill (time to first token) %.3f ms; one decode layer step %.4f ms\n\n",
                r.prefill_s * 1e3, r.layer_step_s * 1e3);
  os << line;
  std::snprintf(line, sizeof line, "%-12s %12s %12s %12s %14s %9s %8s\n", "method", "ms/token", "tokens/s",
                "exit_layers", "layers_computed", "speedup", "accept");
  os << line;
  for (const DecodeResult& d : r.methods) {
    std::snprintf(
        line, sizeof line, "%-12s %12.4f %12.1f %12.2f %14.2f %8.3fx %8s\n", to_string(d.method),
        d.time_per_output_token_s * 1e3, d.tokens_per_s, d.avg_exit_layers, d.avg_layers_computed, d.speedup_vs_full,
        d.method == InferenceMethod::kSpeculative ? std::to_string(d.acceptance_rate).substr(0, 5).c_str() : "-");
    os << line;
  }
  return os.str();
}

std::string inference_to_json(const InferenceSimResult& r) {
  nlohmann::json j;
  j["scenario"] = r.scenario;
  j["tp"] = r.tp;
  j["pp"] = r.pp;
  j["batch_size"] = r.batch_size;
  j["prompt_length"] = r.prompt_length;
  j["new_tokens"] = r.new_tokens;
  j["exit_rates"] = r.exit_rates;
  j["exit_rates_source"] = r.exit_rates_source;
  j["exit_rates_assumed"] = r.exit_rates_assumed;
  j["prefill_s"] = r.prefill_s;
  j["layer_step_s"] = r.layer_step_s;
  j["methods"] = nlohmann::json::array();
  for (const DecodeResult& d : r.methods)
    j["methods"].push_back({{"method", to_string(d.method)},
                            {"time_per_output_token_s", d.time_per_output_token_s},
                            {"tokens_per_s", d.tokens_per_s},
                            {"avg_exit_layers", d.avg_exit_layers},
                            {"avg_layers_computed", d.avg_layers_computed},
                            {"decode_s", d.decode_s},
                            {"speedup_vs_full", d.speedup_vs_full},
                            {"acceptance_rate", d.acceptance_rate}});
  return j.dump(2) + "\n";
}

std::string inference_to_csv(const InferenceSimResult& r) {
  std::ostringstream os;
  os << "method,time_per_output_token_s,tokens_per_s,avg_exit_layers,avg_layers_computed,decode_s,speedup_vs_full,"
        "prefill_s\n";
  for (const DecodeResult& d : r.methods)
    os << to_string(d.method) << "," << d.time_per_output_token_s << "," << d.tokens_per_s << "," << d.avg_exit_layers
       << "," << d.avg_layers_computed << "," << d.decode_s << "," << d.speedup_vs_full << "," << r.prefill_s << "\n";
  return os.str();
}

}  // namespace eellm
