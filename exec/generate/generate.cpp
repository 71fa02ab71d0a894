// The incremental decoder (Decoder), teacher-forced incremental logits, option checks and the
// statistics writers. The decoding loops are in generate_loop.cpp.
#include "exec/generate/generate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"

namespace eellm::exec {
namespace {

void fit(Tensor& t, size_t n) {
  if (t.data.size() < n) t.data.resize(n);
}

}  // namespace

Decoder::Decoder(const GptConfig& cfg, const GptParams& params, Backend& be, int batch)
    : cfg_(cfg),
      p_(&params),
      be_(&be),
      batch_(batch),
      cache_(cfg.L, cfg.exit_block ? cfg.num_exits() : 0, batch, cfg.max_T, cfg.KV()),
      resid_(static_cast<size_t>(batch) * cfg.max_T * cfg.C, 0.0f) {}

void Decoder::embed(int b, int pos, int32_t token) {
  const int32_t row = b * cfg_.max_T + pos, p = pos;
  be_->embed_rows(resid_.data(), &row, &token, &p, 1, p_->wte.ptr(), cfg_.rope ? nullptr : p_->wpe.ptr(), cfg_.C);
}

void Decoder::index(const std::vector<DecodeRow>& rows) {
  seq_idx_.resize(rows.size()), pos_idx_.resize(rows.size()), row_idx_.resize(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    seq_idx_[r] = rows[r].b, pos_idx_[r] = rows[r].pos;
    row_idx_[r] = rows[r].b * cfg_.max_T + rows[r].pos;
  }
}

// One transformer layer on R rows held in x (R, C), in place (index(rows) already called); the same
// op sequence as GptChunk::layer_forward, with attention over the cache instead of a full sequence.
void Decoder::block_forward(const LayerParams& lp, int slot, const std::vector<DecodeRow>& rows, float* x) {
  const GptConfig& c = cfg_;
  const int R = static_cast<int>(rows.size());
  const size_t RC = static_cast<size_t>(R) * c.C;
  Backend& be = *be_;
  fit(ln_, RC), fit(mean_, R), fit(rstd_, R), fit(qkv_, static_cast<size_t>(R) * c.qkv_dim());
  fit(att_, static_cast<size_t>(R) * c.Q()), fit(res2_, RC), fit(fc_, static_cast<size_t>(R) * c.fc_dim());
  fit(act_, static_cast<size_t>(R) * c.F);
  be.norm_forward(c.norm, ln_.ptr(), mean_.ptr(), rstd_.ptr(), x, lp.ln1_w.ptr(), opt(lp.ln1_b), R, c.C, c.eps);
  be.matmul_forward(qkv_.ptr(), ln_.ptr(), lp.qkv_w.ptr(), opt(lp.qkv_b), R, c.C, c.qkv_dim());
  const AttentionShape shape{0, 0, c.NH, c.G, c.HS};
  if (c.rope) be.rope_rows(qkv_.ptr(), pos_idx_.data(), R, shape, c.rope_base);
  be.kv_append(cache_.k(slot, 0, 0), cache_.v(slot, 0, 0), qkv_.ptr(), seq_idx_.data(), pos_idx_.data(), R, c.max_T,
               shape);
  for (const DecodeRow& row : rows) cache_.mark(slot, row.b, row.pos);
  be.attention_cached(att_.ptr(), qkv_.ptr(), cache_.k(slot, 0, 0), cache_.v(slot, 0, 0), seq_idx_.data(),
                      pos_idx_.data(), R, c.max_T, shape);
  be.matmul_forward(res2_.ptr(), att_.ptr(), lp.proj_w.ptr(), opt(lp.proj_b), R, c.Q(), c.C);
  be.add_inplace(res2_.ptr(), x, RC);
  be.norm_forward(c.norm, ln_.ptr(), mean_.ptr(), rstd_.ptr(), res2_.ptr(), lp.ln2_w.ptr(), opt(lp.ln2_b), R, c.C,
                  c.eps);
  be.matmul_forward(fc_.ptr(), ln_.ptr(), lp.fc_w.ptr(), opt(lp.fc_b), R, c.C, c.fc_dim());
  if (c.swiglu)
    be.swiglu_forward(act_.ptr(), fc_.ptr(), R, c.F);
  else
    be.gelu_forward(act_.ptr(), fc_.ptr(), static_cast<size_t>(R) * c.F);
  be.matmul_forward(x, act_.ptr(), lp.fcproj_w.ptr(), opt(lp.fcproj_b), R, c.F, c.C);
  be.add_inplace(x, res2_.ptr(), RC);
}

void Decoder::layer(int l, const std::vector<DecodeRow>& rows) {
  if (rows.empty()) return;
  const size_t C = static_cast<size_t>(cfg_.C);
  const int R = static_cast<int>(rows.size());
  fit(x_, rows.size() * C);
  index(rows);
  be_->gather_rows(x_.ptr(), resid_.data(), row_idx_.data(), R, cfg_.C);
  block_forward(p_->layers[static_cast<size_t>(l)], l, rows, x_.ptr());
  be_->scatter_rows(resid_.data(), x_.ptr(), row_idx_.data(), R, cfg_.C);
  be_->synchronize();
  layer_rows_ += static_cast<long>(rows.size());
}

void Decoder::exit_block(int e, const std::vector<DecodeRow>& rows, float* out) {
  if (rows.empty()) return;
  index(rows);
  be_->gather_rows(out, resid_.data(), row_idx_.data(), static_cast<int>(rows.size()), cfg_.C);
  block_forward(p_->exits[static_cast<size_t>(e)].block, cfg_.L + e, rows, out);
  be_->synchronize();
}

void Decoder::head(int e, const float* x, int R, float* logits) {
  const GptConfig& c = cfg_;
  Backend& be = *be_;
  const bool is_exit = e >= 0;
  const ExitParams* ep = is_exit ? &p_->exits[static_cast<size_t>(e)] : nullptr;
  const bool norm = !is_exit || c.exit_norm, mlp = is_exit && c.exit_mlp;
  const size_t RC = static_cast<size_t>(R) * c.C;
  const float* hn = x;
  if (norm) {
    fit(hn_, RC), fit(mean_, R), fit(rstd_, R);
    be.norm_forward(c.norm, hn_.ptr(), mean_.ptr(), rstd_.ptr(), x, is_exit ? ep->norm_w.ptr() : p_->lnf_w.ptr(),
                    opt(is_exit ? ep->norm_b : p_->lnf_b), R, c.C, c.eps);
    hn = hn_.ptr();
  }
  const float* hm = hn;
  if (mlp) {
    fit(hfc_, static_cast<size_t>(R) * c.fc_dim()), fit(hact_, static_cast<size_t>(R) * c.F), fit(hm_, RC);
    be.matmul_forward(hfc_.ptr(), hn, ep->mlp_fc_w.ptr(), opt(ep->mlp_fc_b), R, c.C, c.fc_dim());
    if (c.swiglu)
      be.swiglu_forward(hact_.ptr(), hfc_.ptr(), R, c.F);
    else
      be.gelu_forward(hact_.ptr(), hfc_.ptr(), static_cast<size_t>(R) * c.F);
    be.matmul_forward(hm_.ptr(), hact_.ptr(), ep->mlp_fcproj_w.ptr(), opt(ep->mlp_fcproj_b), R, c.F, c.C);
    be.add_inplace(hm_.ptr(), hn, RC);
    hm = hm_.ptr();
  }
  const Tensor& W = is_exit ? (c.untie_exits ? ep->out_w : p_->wte) : (c.untie_final ? p_->lm_head : p_->wte);
  be.matmul_forward(logits, hm, W.ptr(), nullptr, R, c.C, c.Vp);
  be.synchronize();
}

std::vector<Tensor> incremental_logits(const GptConfig& cfg, const GptParams& params, Backend& be,
                                       const std::vector<int32_t>& tokens, int chunk) {
  const int T = static_cast<int>(tokens.size()), E = cfg.num_exits();
  std::vector<Tensor> out(static_cast<size_t>(E + 1), Tensor({T, cfg.Vp}));
  Decoder dec(cfg, params, be, 1);
  TensorData x, logits;
  for (int t0 = 0; t0 < T; t0 += chunk) {
    std::vector<DecodeRow> rows;
    for (int t = t0; t < std::min(T, t0 + chunk); ++t) {
      rows.push_back({0, t});
      dec.embed(0, t, tokens[static_cast<size_t>(t)]);
    }
    const int R = static_cast<int>(rows.size());
    x.resize(static_cast<size_t>(R) * cfg.C), logits.resize(static_cast<size_t>(R) * cfg.Vp);
    auto run_head = [&](int e) {
      if (e >= 0 && cfg.exit_block) {
        dec.exit_block(e, rows, x.data());
      } else {
        for (int r = 0; r < R; ++r) std::copy_n(dec.resid(0, t0 + r), cfg.C, x.data() + static_cast<size_t>(r) * cfg.C);
      }
      dec.head(e, x.data(), R, logits.data());
      std::copy(logits.begin(), logits.end(),
                out[static_cast<size_t>(e >= 0 ? e : E)].ptr() + static_cast<size_t>(t0) * cfg.Vp);
    };
    for (int depth = 0; depth <= cfg.L; ++depth) {
      for (int e = 0; e < E; ++e)
        if (cfg.exit_depth[static_cast<size_t>(e)] == depth) run_head(e);
      if (depth < cfg.L) dec.layer(depth, rows);
    }
    run_head(-1);
  }
  return out;
}

Status check_generate_options(const GptConfig& cfg, const GenerateOptions& o) {
  if (!(o.threshold >= 0.0 && o.threshold <= 1.0))
    return Status::invalid_argument("threshold (" + std::to_string(o.threshold) +
                                    ") must lie in [0, 1] (1 or \"off\" = full model)");
  for (int e : o.exits)
    if (e < 0 || e >= cfg.num_exits())
      return Status::invalid_argument("exit index " + std::to_string(e) + " does not exist: the model has " +
                                      std::to_string(cfg.num_exits()) + " exits (0-based indices)");
  if (o.max_new_tokens < 1)
    return Status::invalid_argument("max_new_tokens (" + std::to_string(o.max_new_tokens) + ") must be ≥ 1");
  if (o.max_pending < 0)
    return Status::invalid_argument("max_pending (" + std::to_string(o.max_pending) + ") must be ≥ 0");
  EELLM_RETURN_IF_ERROR(check_sampling(o.sampling));
  for (const std::string& s : o.stop)
    if (s.empty()) return Status::invalid_argument("a stop string is empty");
  if (!o.forced.empty() && o.method != InferenceMethod::kFull && o.method != InferenceMethod::kRecompute)
    return Status::invalid_argument("forced tokens (teacher forcing) work with methods full and recompute only, not " +
                                    std::string(to_string(o.method)));
  for (const auto& f : o.forced)
    for (int32_t t : f)
      if (t < 0 || t >= cfg.V)
        return Status::invalid_argument("forced token " + std::to_string(t) + " outside the vocabulary [0, " +
                                        std::to_string(cfg.V) + ")");
  if (o.method == InferenceMethod::kSpeculative) {
    if (cfg.num_exits() == 0) return Status::invalid_argument("method speculative needs a model with an exit head");
    if (o.draft_tokens < 1)
      return Status::invalid_argument("draft_tokens (" + std::to_string(o.draft_tokens) + ") must be ≥ 1");
    if (!(o.draft_threshold >= 0.0 && o.draft_threshold <= 1.0))
      return Status::invalid_argument("draft_threshold (" + std::to_string(o.draft_threshold) + ") must lie in [0, 1]");
    if (o.draft_exit >= cfg.num_exits())
      return Status::invalid_argument("draft exit " + std::to_string(o.draft_exit) + " does not exist: the model has " +
                                      std::to_string(cfg.num_exits()) + " exits");
  }
  return Status::ok();
}

Status check_prompts(const GptConfig& cfg, const std::vector<std::vector<int32_t>>& prompts) {
  if (prompts.empty()) return Status::invalid_argument("no prompt given");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    const std::string which = "prompt " + std::to_string(i + 1);
    if (p.empty()) return Status::invalid_argument(which + " is empty");
    if (static_cast<int>(p.size()) >= cfg.max_T)
      return Status::invalid_argument(which + " has " + std::to_string(p.size()) +
                                      " tokens; the context (max_position_embeddings " + std::to_string(cfg.max_T) +
                                      ") leaves no room for a new token: at most " + std::to_string(cfg.max_T - 1));
    for (int32_t t : p)
      if (t < 0 || t >= cfg.V)
        return Status::invalid_argument(which + " holds token " + std::to_string(t) + " outside the vocabulary [0, " +
                                        std::to_string(cfg.V) + ")");
  }
  return Status::ok();
}

StatusOr<GenerationModel> load_generation_model(const std::string& checkpoint_dir, const CheckpointReadOptions& read) {
  GenerationModel m;
  EELLM_ASSIGN_OR_RETURN(m.scenario, checkpoint_scenario(checkpoint_dir));
  EELLM_ASSIGN_OR_RETURN(m.config, make_gpt_config(m.scenario));
  m.params.allocate(m.config);
  EELLM_RETURN_IF_ERROR(load_checkpoint(checkpoint_dir, m.config, m.params, nullptr, nullptr, read));
  return m;
}

StatusOr<std::vector<std::string>> read_prompt_file(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxBatchFileBytes)
    return Status::invalid_argument("batch file " + path + " has " + std::to_string(size) + " bytes; at most " +
                                    std::to_string(kMaxBatchFileBytes) + " are read");
  auto text = read_file(path);  // refuses directories, FIFOs and devices by type
  if (!text.is_ok()) return text.status().with_context("batch file");
  if (text->size() > kMaxBatchFileBytes)
    return Status::invalid_argument("batch file " + path + " has more than " + std::to_string(kMaxBatchFileBytes) +
                                    " bytes");
  std::vector<std::string> out;
  std::istringstream in(*text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string p;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n')
        p += '\n', ++i;
      else
        p += line[i];
    }
    if (p.empty()) return Status::invalid_argument(path + ":" + std::to_string(n) + ": empty prompt");
    if (out.size() == kMaxBatchPrompts)
      return Status::invalid_argument("batch file " + path + " holds more than " + std::to_string(kMaxBatchPrompts) +
                                      " prompts (the most one batch takes)");
    out.push_back(p);
  }
  if (out.empty()) return Status::invalid_argument("batch file " + path + " holds no prompt");
  return out;
}

std::vector<double> GenerateStats::exit_rates() const {
  std::vector<double> r;
  for (size_t e = 0; e + 1 < head_counts.size(); ++e)
    r.push_back(tokens > 0 ? static_cast<double>(head_counts[e]) / static_cast<double>(tokens) : 0.0);
  return r;
}

std::string exit_rates_json(const GptConfig& cfg, const GenerateOptions& o, const GenerateStats& s) {
  nlohmann::json j;
  j["exit_rates"] = s.exit_rates();
  j["exit_layers"] = cfg.exit_layer;
  j["method"] = to_string(o.method);
  j["confidence"] = to_string(o.confidence);
  j["threshold"] = o.threshold;
  j["tokens"] = s.tokens;
  j["tokens_per_s"] = s.tokens_per_s();
  j["avg_exit_layers"] = s.avg_exit_layers;
  j["layers_per_token"] = s.layers_per_token;
  return j.dump(2) + "\n";
}

std::string stats_to_text(const GptConfig& cfg, const GenerateStats& s) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << "tokens " << s.tokens << ", decode " << s.decode_s << " s, " << s.tokens_per_s() << " tokens/s (prefill "
     << s.prefill_s << " s)\n";
  os << "exit histogram:";
  for (size_t e = 0; e < s.head_counts.size(); ++e) {
    const bool fin = e + 1 == s.head_counts.size();
    os << "  " << (fin ? std::string("final") : "exit@" + std::to_string(cfg.exit_layer[e])) << " " << s.head_counts[e]
       << " (" << (s.tokens > 0 ? 100.0 * static_cast<double>(s.head_counts[e]) / static_cast<double>(s.tokens) : 0.0)
       << " %)";
  }
  os << "\navg exit layers " << s.avg_exit_layers << " of " << cfg.L << ", layers computed per token "
     << s.layers_per_token << "\n";
  if (s.drafted > 0)
    os << "drafted " << s.drafted << ", accepted " << s.accepted << " ("
       << 100.0 * static_cast<double>(s.accepted) / static_cast<double>(s.drafted) << " %)\n";
  return os.str();
}

}  // namespace eellm::exec
