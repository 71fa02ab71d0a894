// GenerationService and the request parsing of `eellm serve` (see serve.h).
#include "exec/generate/serve.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <set>
#include <sstream>

#include "exec/backend/device.h"
#include "exec/io/data.h"
#include "exec/io/dist_checkpoint.h"
#include "exec/io/json_check.h"
#include "model/yaml_reader.h"

namespace eellm::exec {

using nlohmann::json;

StatusOr<int> exit_index_at_layer(const GptConfig& cfg, int layer) {
  for (int e = 0; e < cfg.num_exits(); ++e)
    if (cfg.exit_layer[static_cast<size_t>(e)] == layer) return e;
  std::string have;
  for (int l : cfg.exit_layer) have += (have.empty() ? "" : ", ") + std::to_string(l);
  return Status::invalid_argument("no exit at layer " + std::to_string(layer) + "; the model's exits are at layers [" +
                                  have + "]");
}

StatusOr<GenerationSession> open_generation(const std::string& checkpoint, const std::string& device, int threads,
                                            const CheckpointReadOptions& read) {
  GenerationSession s;
  EELLM_ASSIGN_OR_RETURN(Scenario scenario, checkpoint_scenario(checkpoint));
  s.device = scenario.execution.device;
  // The scenario reader's names and aliases, so --device accepts what execution.device does.
  if (!device.empty() && !parse_enum(device, s.device))
    return Status::invalid_argument("--device: unknown device '" + device +
                                    "'; allowed: " + enum_names<::eellm::DeviceKind>());
  EELLM_ASSIGN_OR_RETURN(s.backend, make_backend(s.device, threads));
  EELLM_ASSIGN_OR_RETURN(s.model, load_generation_model(checkpoint, read));
  return s;
}

Status check_serve_config(const GptConfig& cfg, const ServeConfig& sc) {
  if (sc.decode.method == InferenceMethod::kPipeline)
    return Status::invalid_argument(
        "method pipeline is not served (it runs under mpirun); use recompute, speculative "
        "or full");
  if (sc.max_batch < 1) return Status::invalid_argument("max_batch (" + std::to_string(sc.max_batch) + ") must be ≥ 1");
  return check_generate_options(cfg, sc.decode);
}

namespace {

// The value as it appears in the request, shortened for error messages.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

Status field_error(const std::string& field, const std::string& rule, const json& got) {
  return Status::invalid_argument(field + ": " + rule + ", got " + shown(got));
}

StatusOr<bool> get_bool(const json& req, const char* name, bool fallback) {
  if (!req.contains(name)) return fallback;
  const json& v = req[name];
  if (!v.is_boolean()) return field_error(name, "must be true or false", v);
  return v.get<bool>();
}

// An integer in [lo, hi] (JSON integers only: 2.0 is refused, as EE-LLM's isinstance(int) does).
StatusOr<int64_t> get_int(const json& req, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!req.contains(name)) return fallback;
  const json& v = req[name];
  const std::string rule = "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!v.is_number_integer()) return field_error(name, rule, v);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return field_error(name, rule, v);
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return field_error(name, rule, v);
  return x;
}

StatusOr<double> get_number(const json& req, const char* name, double fallback, double lo, double hi) {
  if (!req.contains(name)) return fallback;
  const json& v = req[name];
  std::ostringstream rule;
  rule << "must be a number in [" << lo << ", " << hi << "]";
  if (!v.is_number()) return field_error(name, rule.str(), v);
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) return field_error(name, rule.str(), v);
  return x;
}

// Every field EE-LLM's (and Megatron's) server reads; anything else is a typo worth a 400.
const std::set<std::string>& known_fields() {
  static const std::set<std::string> k = {"prompts",
                                          "tokens_to_generate",
                                          "logprobs",
                                          "echo_prompts",
                                          "early_exit_thres",
                                          "print_max_prob",
                                          "top_k",
                                          "top_p",
                                          "top_p_decay",
                                          "top_p_bound",
                                          "temperature",
                                          "add_BOS",
                                          "stop_sequences",
                                          "prevent_newline_after_colon",
                                          "random_seed",
                                          "use_early_exit",
                                          "no_log",
                                          "beam_width",
                                          "length_penalty",
                                          "exit_layers"};
  return k;
}

std::string known_list() {
  std::string s;
  for (const std::string& f : known_fields()) s += (s.empty() ? "" : ", ") + f;
  return s;
}

// The body as a JSON object whose every field is known. Nesting is bounded before parsing: no field
// needs more than 2 levels, and values are printed (recursively) in error messages.
StatusOr<json> parse_body(const std::string& body) {
  if (json_nesting_depth(body, kMaxRequestDepth) > kMaxRequestDepth)
    return Status::invalid_argument("request body: JSON nested deeper than " + std::to_string(kMaxRequestDepth) +
                                    " levels");
  json req;
  try {
    req = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return Status::invalid_argument(std::string("request body is not valid JSON: ") + e.what());
  }
  if (!req.is_object()) return field_error("request body", "must be a JSON object", req);
  // EE-LLM's renamed fields keep its messages.
  if (req.contains("max_len"))
    return Status::invalid_argument("max_len: no longer used; replace it with tokens_to_generate");
  if (req.contains("sentences")) return Status::invalid_argument("sentences: no longer used; replace it with prompts");
  for (const auto& [key, value] : req.items())
    if (!known_fields().count(key))
      return Status::invalid_argument(key + ": unknown field; the fields are " + known_list());
  return req;
}

// prompts: a string or a non-empty list of non-empty strings, each leaving room in the context.
Status parse_prompts(const json& req, const GptConfig& cfg, const ServeConfig& sc, ServeRequest& r) {
  if (!req.contains("prompts")) return Status::invalid_argument("prompts: required (a string or a list of strings)");
  const json& p = req["prompts"];
  if (p.is_string()) {
    r.prompts.push_back(p.get<std::string>());
  } else if (p.is_array()) {
    if (p.empty()) return Status::invalid_argument("prompts: is empty; give at least one prompt");
    for (size_t i = 0; i < p.size(); ++i) {
      if (!p[i].is_string()) return field_error("prompts[" + std::to_string(i) + "]", "must be a string", p[i]);
      r.prompts.push_back(p[i].get<std::string>());
    }
  } else {
    return field_error("prompts", "must be a string or a list of strings", p);
  }
  if (static_cast<int>(r.prompts.size()) > sc.max_batch)
    return Status::invalid_argument("prompts: " + std::to_string(r.prompts.size()) + " prompts; at most " +
                                    std::to_string(sc.max_batch) + " per request (eellm serve --max-batch)");
  EELLM_ASSIGN_OR_RETURN(const bool add_bos, get_bool(req, "add_BOS", false));
  if (add_bos) return Status::invalid_argument("add_BOS: not supported; the byte-level tokenizer has no BOS token");
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const std::string which = "prompts[" + std::to_string(i) + "]";
    const size_t n = r.prompts[i].size();  // byte-level tokenizer: one token per byte
    if (n == 0) return Status::invalid_argument(which + ": is empty (EE-LLM needs add_BOS for that, not supported)");
    if (static_cast<int64_t>(n) >= cfg.max_T)
      return Status::invalid_argument(which + ": " + std::to_string(n) +
                                      " tokens; the context (max_position_embeddings " + std::to_string(cfg.max_T) +
                                      ") leaves no room for a new token: at most " + std::to_string(cfg.max_T - 1));
  }
  return Status::ok();
}

// tokens_to_generate and the output flags; fields of features this server lacks are refused.
Status parse_output_fields(const json& req, ServeRequest& r) {
  // A sequence that reaches the end of the context stops there (Megatron refuses such requests;
  // stopping keeps EE-LLM's default of 64 usable on small-context models).
  EELLM_ASSIGN_OR_RETURN(const int64_t ttg,
                         get_int(req, "tokens_to_generate", 64, 1, std::numeric_limits<int32_t>::max()));
  r.options.max_new_tokens = static_cast<int>(ttg);
  EELLM_ASSIGN_OR_RETURN(const bool logprobs, get_bool(req, "logprobs", false));
  if (logprobs) return Status::invalid_argument("logprobs: not supported; this server returns no log-probabilities");
  EELLM_ASSIGN_OR_RETURN(r.echo_prompts, get_bool(req, "echo_prompts", false));
  EELLM_ASSIGN_OR_RETURN(r.no_log, get_bool(req, "no_log", false));
  EELLM_ASSIGN_OR_RETURN(const bool print_max_prob, get_bool(req, "print_max_prob", false));
  (void)print_max_prob;  // EE-LLM prints debug output on the server console; accepted, no effect
  EELLM_ASSIGN_OR_RETURN(const bool newline, get_bool(req, "prevent_newline_after_colon", false));
  if (newline) return Status::invalid_argument("prevent_newline_after_colon: not supported");
  if (req.contains("beam_width")) return Status::invalid_argument("beam_width: beam search is not supported");
  EELLM_ASSIGN_OR_RETURN(const double length_penalty, get_number(req, "length_penalty", 1.0, -1e9, 1e9));
  (void)length_penalty;  // only read by beam search
  return Status::ok();
}

// use_early_exit, early_exit_thres and exit_layers.
Status parse_early_exit(const json& req, const GenerationModel& model, ServeRequest& r) {
  const GptConfig& cfg = model.config;
  GenerateOptions& g = r.options;
  EELLM_ASSIGN_OR_RETURN(r.use_early_exit, get_bool(req, "use_early_exit", false));
  EELLM_ASSIGN_OR_RETURN(const double thres,
                         get_number(req, "early_exit_thres", model.scenario.inference.early_exit_thres, 0.0, 1.0));
  if (req.contains("exit_layers")) {
    const json& el = req["exit_layers"];
    if (!el.is_array()) return field_error("exit_layers", "must be a list of layer numbers", el);
    std::set<int> exits;
    for (size_t i = 0; i < el.size(); ++i) {
      const std::string which = "exit_layers[" + std::to_string(i) + "]";
      if (!el[i].is_number_integer() || el[i].get<int64_t>() < 1 || el[i].get<int64_t>() > cfg.L)
        return field_error(which, "must be a layer number in [1, " + std::to_string(cfg.L) + "]", el[i]);
      auto e = exit_index_at_layer(cfg, el[i].get<int>());
      if (!e.is_ok()) return Status::invalid_argument(which + ": " + e.status().message());
      exits.insert(*e);
    }
    g.exits.assign(exits.begin(), exits.end());
  }
  if (!r.use_early_exit) g.method = InferenceMethod::kFull;
  g.threshold = r.use_early_exit ? thres : 1.0;
  if (g.method == InferenceMethod::kSpeculative && g.draft_exit >= 0 && !g.exits.empty() &&
      std::find(g.exits.begin(), g.exits.end(), g.draft_exit) == g.exits.end())
    return Status::invalid_argument("exit_layers: must include the server's draft exit (layer " +
                                    std::to_string(cfg.exit_layer[static_cast<size_t>(g.draft_exit)]) + ")");
  return Status::ok();
}

// Sampling (temperature 0 is greedy: EE-LLM then forces top_k 1; top_p 0 means no nucleus filter),
// random_seed and stop_sequences.
Status parse_sampling(const json& req, GenerateOptions& g) {
  EELLM_ASSIGN_OR_RETURN(const int64_t top_k, get_int(req, "top_k", 0, 0, 1000));
  EELLM_ASSIGN_OR_RETURN(const double top_p, get_number(req, "top_p", 0.0, 0.0, 1.0));
  if (top_k > 0 && top_p > 0) return Status::invalid_argument("top_k, top_p: cannot set both top-k and top-p sampling");
  EELLM_ASSIGN_OR_RETURN(const double top_p_decay, get_number(req, "top_p_decay", 0.0, 0.0, 1.0));
  if (top_p_decay != 0.0) return Status::invalid_argument("top_p_decay: not supported (must be 0)");
  EELLM_ASSIGN_OR_RETURN(const double top_p_bound, get_number(req, "top_p_bound", 0.0, 0.0, 1.0));
  if (top_p_bound != 0.0) return Status::invalid_argument("top_p_bound: not supported (must be 0)");
  EELLM_ASSIGN_OR_RETURN(const double temperature, get_number(req, "temperature", 0.0, 0.0, 100.0));
  g.sampling.temperature = static_cast<float>(temperature);
  g.sampling.top_k = static_cast<int>(top_k);
  g.sampling.top_p = top_p > 0 ? static_cast<float>(top_p) : 1.0f;
  EELLM_ASSIGN_OR_RETURN(const int64_t seed, get_int(req, "random_seed", 1234, 0, std::numeric_limits<int64_t>::max()));
  g.seed = static_cast<uint64_t>(seed);
  if (req.contains("stop_sequences")) {
    const json& ss = req["stop_sequences"];
    if (!ss.is_array()) return field_error("stop_sequences", "must be a list of strings", ss);
    for (size_t i = 0; i < ss.size(); ++i) {
      const std::string which = "stop_sequences[" + std::to_string(i) + "]";
      if (!ss[i].is_string() || ss[i].get<std::string>().empty())
        return field_error(which, "must be a non-empty string", ss[i]);
      g.stop.push_back(ss[i].get<std::string>());
    }
  }
  return Status::ok();
}

}  // namespace

StatusOr<ServeRequest> parse_serve_request(const std::string& body, const GenerationModel& model,
                                           const ServeConfig& sc) {
  EELLM_ASSIGN_OR_RETURN(const json req, parse_body(body));
  ServeRequest r;
  r.options = sc.decode;
  EELLM_RETURN_IF_ERROR(parse_prompts(req, model.config, sc, r));
  EELLM_RETURN_IF_ERROR(parse_output_fields(req, r));
  EELLM_RETURN_IF_ERROR(parse_early_exit(req, model, r));
  EELLM_RETURN_IF_ERROR(parse_sampling(req, r.options));
  // Whatever the rules above let through, generate() checks again; name that as the request's fault.
  if (Status st = check_generate_options(model.config, r.options); !st.is_ok())
    return Status::invalid_argument("request: " + st.message());
  return r;
}

std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json serve_response(const GptConfig& cfg, const ServeRequest& req, const GenerateResult& r, double request_s) {
  json text = json::array(), segments = json::array(), tokens = json::array(), exit_layer = json::array();
  for (size_t i = 0; i < r.sequences.size(); ++i) {
    const SequenceOutput& s = r.sequences[i];
    std::string t = req.echo_prompts ? req.prompts[i] + s.text : s.text;
    json seg = json::array();
    if (req.echo_prompts)
      for (char c : req.prompts[i]) seg.push_back(std::string(1, c));
    json ex = json::array();
    for (size_t k = 0; k < s.tokens.size(); ++k) {
      seg.push_back(decode_bytes({s.tokens[k]}));
      const int h = k < s.head.size() ? s.head[k] : cfg.num_exits();
      ex.push_back(h < cfg.num_exits() ? cfg.exit_layer[static_cast<size_t>(h)] : cfg.L);
    }
    text.push_back(std::move(t));
    segments.push_back(std::move(seg));
    tokens.push_back(s.tokens);
    exit_layer.push_back(std::move(ex));
  }
  const GenerateStats& st = r.stats;
  json hist = json::array();
  for (size_t e = 0; e < st.head_counts.size(); ++e) {
    const bool fin = static_cast<int>(e) == cfg.num_exits();
    const double rate = st.tokens > 0 ? static_cast<double>(st.head_counts[e]) / static_cast<double>(st.tokens) : 0.0;
    hist.push_back({{"exit", fin ? std::string("final") : "exit@" + std::to_string(cfg.exit_layer[e])},
                    {"layer", fin ? cfg.L : cfg.exit_layer[e]},
                    {"tokens", st.head_counts[e]},
                    {"rate", rate}});
  }
  const GenerateOptions& g = req.options;
  json stats = {{"method", to_string(g.method)},
                {"use_early_exit", req.use_early_exit},
                {"early_exit_thres", g.threshold >= 1.0 ? json(nullptr) : json(g.threshold)},
                {"confidence", to_string(g.confidence)},
                {"batch", r.sequences.size()},
                {"tokens", st.tokens},
                {"prefill_s", st.prefill_s},
                {"decode_s", st.decode_s},
                {"tokens_per_s", st.tokens_per_s()},
                {"avg_exit_layers", st.avg_exit_layers},
                {"layers_per_token", st.layers_per_token},
                {"num_layers", cfg.L},
                {"exit_histogram", hist}};
  if (g.method == InferenceMethod::kSpeculative) {
    stats["drafted"] = st.drafted;
    stats["accepted"] = st.accepted;
  }
  // "requst_time" is EE-LLM's spelling, kept for its clients.
  return {{"text", text},
          {"segments", segments},
          {"logprobs", nullptr},
          {"tokens", tokens},
          {"exit_layer", exit_layer},
          {"stats", stats},
          {"request_time", request_s},
          {"requst_time", request_s}};
}

std::string error_body(const std::string& message) {
  return dump_json(json{{"error", message}});
}

GenerationService::GenerationService(GenerationSession session, ServeConfig sc)
    : session_(std::move(session)), sc_(sc) {}

GenerationService::Reply GenerationService::generate(const std::string& body) {
  const auto t0 = std::chrono::steady_clock::now();
  const GenerationModel& m = session_.model;
  Reply reply;
  auto req = parse_serve_request(body, m, sc_);
  if (!req.is_ok()) {
    reply.status = 400;
    reply.body = error_body(req.status().message());
    reply.log = req.status().message();
    return reply;
  }
  std::vector<std::vector<int32_t>> prompts;
  for (const std::string& t : req->prompts) prompts.push_back(encode_bytes(t));
  StatusOr<GenerateResult> r = Status::internal("not run");
  {
    std::lock_guard<std::mutex> lock(mu_);
    r = exec::generate(m.config, m.params, *session_.backend, prompts, req->options);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.is_ok()) {
    reply.status = r.status().code() == StatusCode::kInvalidArgument ? 400 : 500;
    reply.body = error_body(r.status().message());
    reply.log = r.status().message();
    return reply;
  }
  ++served_;
  reply.body = dump_json(serve_response(m.config, *req, *r, secs));
  if (!req->no_log) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(2);
    const GenerateStats& st = r->stats;
    os << req->prompts.size() << " prompt(s), " << st.tokens << " tokens, " << to_string(req->options.method);
    if (req->use_early_exit) os << " thres " << req->options.threshold;
    os << ", " << st.tokens_per_s() << " tokens/s, " << st.layers_per_token << " layers/token, " << secs << " s";
    reply.log = os.str();
  }
  return reply;
}

std::string GenerationService::health() const {
  const GenerationModel& m = session_.model;
  const GptConfig& c = m.config;
  json config = {{"num_layers", c.L},
                 {"hidden_size", c.C},
                 {"num_attention_heads", c.NH},
                 {"vocab_size", c.V},
                 {"max_position_embeddings", c.max_T},
                 {"exit_layers", c.exit_layer},
                 {"early_exit_thres", m.scenario.inference.early_exit_thres}};
  json server = {{"device", to_string(session_.device)},
                 {"method", to_string(sc_.decode.method)},
                 {"confidence", to_string(sc_.decode.confidence)},
                 {"max_batch", sc_.max_batch},
                 {"requests_served", served_.load()}};
  return dump_json(json{{"status", "ok"}, {"model", m.scenario.name}, {"config", config}, {"server", server}});
}

}  // namespace eellm::exec
