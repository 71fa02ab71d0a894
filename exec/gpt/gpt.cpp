#include "exec/gpt/gpt.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <string_view>

#include "exec/backend/fast_math.h"
#include "model/parse.h"

namespace eellm::exec {
namespace {

void alloc_layer(LayerParams& l, const GptConfig& c) {
  const bool ln = c.norm == Normalization::kLayerNorm;
  resize(l.ln1_w, {c.C});
  resize(l.ln2_w, {c.C});
  if (ln) resize(l.ln1_b, {c.C}), resize(l.ln2_b, {c.C});
  resize(l.qkv_w, {c.qkv_dim(), c.C});
  resize(l.proj_w, {c.C, c.Q()});
  resize(l.fc_w, {c.fc_dim(), c.C});
  resize(l.fcproj_w, {c.C, c.F});
  if (c.bias) {
    resize(l.qkv_b, {c.qkv_dim()});
    resize(l.proj_b, {c.C});
    resize(l.fc_b, {c.fc_dim()});
    resize(l.fcproj_b, {c.C});
  }
}

// The serialized names of a layer's and an exit's tensors with their parts, in checkpoint order.
struct LayerPart {
  const char* name;
  ParamPart part;
  Tensor LayerParams::*member;
};
constexpr LayerPart kLayerParts[] = {
    {"ln1_w", ParamPart::kNormWeight, &LayerParams::ln1_w},
    {"ln1_b", ParamPart::kNormBias, &LayerParams::ln1_b},
    {"qkv_w", ParamPart::kQkvWeight, &LayerParams::qkv_w},
    {"qkv_b", ParamPart::kQkvBias, &LayerParams::qkv_b},
    {"proj_w", ParamPart::kProjWeight, &LayerParams::proj_w},
    {"proj_b", ParamPart::kProjBias, &LayerParams::proj_b},
    {"ln2_w", ParamPart::kNormWeight, &LayerParams::ln2_w},
    {"ln2_b", ParamPart::kNormBias, &LayerParams::ln2_b},
    {"fc_w", ParamPart::kFcWeight, &LayerParams::fc_w},
    {"fc_b", ParamPart::kFcBias, &LayerParams::fc_b},
    {"fcproj_w", ParamPart::kFcProjWeight, &LayerParams::fcproj_w},
    {"fcproj_b", ParamPart::kFcProjBias, &LayerParams::fcproj_b},
};
struct ExitPart {
  const char* name;
  ParamPart part;
  Tensor ExitParams::*member;
};
constexpr ExitPart kExitParts[] = {
    {"norm_w", ParamPart::kNormWeight, &ExitParams::norm_w},
    {"norm_b", ParamPart::kNormBias, &ExitParams::norm_b},
    {"mlp_fc_w", ParamPart::kFcWeight, &ExitParams::mlp_fc_w},
    {"mlp_fc_b", ParamPart::kFcBias, &ExitParams::mlp_fc_b},
    {"mlp_fcproj_w", ParamPart::kFcProjWeight, &ExitParams::mlp_fcproj_w},
    {"mlp_fcproj_b", ParamPart::kFcProjBias, &ExitParams::mlp_fcproj_b},
    {"out_w", ParamPart::kOutputWeight, &ExitParams::out_w},
};
struct TopPart {
  const char* name;
  ParamOwner owner;
  ParamPart part;
  Tensor GptParams::*member;
};
constexpr TopPart kEmbeddingParts[] = {
    {"wte", ParamOwner::kEmbedding, ParamPart::kEmbeddingTable, &GptParams::wte},
    {"wpe", ParamOwner::kPositionEmbedding, ParamPart::kPositionTable, &GptParams::wpe},
};
constexpr TopPart kFinalParts[] = {
    {"lnf_w", ParamOwner::kFinalNorm, ParamPart::kNormWeight, &GptParams::lnf_w},
    {"lnf_b", ParamOwner::kFinalNorm, ParamPart::kNormBias, &GptParams::lnf_b},
    {"lm_head", ParamOwner::kHead, ParamPart::kOutputWeight, &GptParams::lm_head},
};

// Every allocated tensor of `p` (GptParams or const GptParams) with its name and role.
template <typename P, typename T>
std::vector<NamedParam<T>> enumerate(P& p) {
  std::vector<NamedParam<T>> out;
  auto add = [&](std::string name, T& t, ParamRole role) {
    if (!t.empty()) out.push_back({std::move(name), &t, role});
  };
  auto add_layer = [&](const std::string& pre, auto& l, ParamOwner owner, int index, bool block) {
    for (const LayerPart& x : kLayerParts) add(pre + x.name, l.*x.member, {owner, index, block, x.part});
  };
  for (const TopPart& x : kEmbeddingParts) add(x.name, p.*x.member, {x.owner, -1, false, x.part});
  for (size_t i = 0; i < p.layers.size(); ++i)
    add_layer("layers." + std::to_string(i) + ".", p.layers[i], ParamOwner::kLayer, static_cast<int>(i), false);
  for (const TopPart& x : kFinalParts) add(x.name, p.*x.member, {x.owner, -1, false, x.part});
  for (size_t e = 0; e < p.exits.size(); ++e) {
    const std::string pre = "exits." + std::to_string(e) + ".";
    const int j = static_cast<int>(e);
    add_layer(pre + "block.", p.exits[e].block, ParamOwner::kExit, j, true);
    for (const ExitPart& x : kExitParts) add(pre + x.name, p.exits[e].*x.member, {ParamOwner::kExit, j, false, x.part});
  }
  return out;
}

template <typename Table>
const auto* find_part(const Table& table, std::string_view name) {
  for (const auto& x : table)
    if (name == x.name) return &x;
  return static_cast<decltype(&table[0])>(nullptr);
}

// "3.rest" → 3 and "rest"; false when no index and dot lead.
bool split_index(std::string_view s, int& index, std::string_view& rest) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos || !parse_number(s.substr(0, dot), index) || index < 0) return false;
  rest = s.substr(dot + 1);
  return true;
}

}  // namespace

StatusOr<GptConfig> make_gpt_config(const Scenario& s) {
  EELLM_ASSIGN_OR_RETURN(Layout lay, derive_layout(s));
  const ModelSpec& m = s.model;
  GptConfig c;
  c.L = m.num_layers;
  c.C = m.hidden_size;
  c.NH = m.num_attention_heads;
  c.G = lay.num_query_groups;
  c.HS = lay.kv_channels;
  c.F = lay.ffn_hidden_size;
  c.V = m.vocab_size;
  c.Vp = lay.padded_vocab_size;
  c.max_T = m.max_position_embeddings > 0 ? m.max_position_embeddings : m.seq_length;
  c.norm = m.normalization;
  c.rope = m.position_embedding_type == PositionEmbedding::kRope;
  c.swiglu = m.activation == Activation::kSwiGLU;
  c.bias = m.add_bias_linear;
  c.untie_final = m.untie_embeddings_and_output_weights;
  c.eps = static_cast<float>(m.layernorm_epsilon);
  c.rope_base = static_cast<float>(m.rotary_base);
  c.init_std = static_cast<float>(m.init_method_std);
  if (c.rope && c.HS % 2 != 0)
    return Status::invalid_argument("model.kv_channels (" + std::to_string(c.HS) + ") must be even for rope");
  if (m.seq_length > c.max_T)
    return Status::invalid_argument("model.seq_length (" + std::to_string(m.seq_length) +
                                    ") exceeds max_position_embeddings (" + std::to_string(c.max_T) + ")");
  for (const ExitPlacement& x : lay.exits) {
    c.exit_depth.push_back(x.depth);
    c.exit_layer.push_back(x.layer);
  }
  c.exit_block = s.exits.use_exit_block;
  c.exit_norm = s.exits.use_exit_norm;
  c.exit_mlp = s.exits.use_exit_mlp;
  c.untie_exits = s.exits.untie_exit_output_weights;
  return c;
}

void GptParams::allocate(const GptConfig& c) {
  resize(wte, {c.Vp, c.C});
  if (!c.rope) resize(wpe, {c.max_T, c.C});
  layers.resize(static_cast<size_t>(c.L));
  for (LayerParams& l : layers) alloc_layer(l, c);
  resize(lnf_w, {c.C});
  if (c.norm == Normalization::kLayerNorm) resize(lnf_b, {c.C});
  if (c.untie_final) resize(lm_head, {c.Vp, c.C});
  exits.resize(static_cast<size_t>(c.num_exits()));
  for (ExitParams& e : exits) {
    if (c.exit_block) alloc_layer(e.block, c);
    if (c.exit_norm) {
      resize(e.norm_w, {c.C});
      if (c.norm == Normalization::kLayerNorm) resize(e.norm_b, {c.C});
    }
    if (c.exit_mlp) {
      resize(e.mlp_fc_w, {c.fc_dim(), c.C});
      resize(e.mlp_fcproj_w, {c.C, c.F});
      if (c.bias) resize(e.mlp_fc_b, {c.fc_dim()}), resize(e.mlp_fcproj_b, {c.C});
    }
    if (c.untie_exits) resize(e.out_w, {c.Vp, c.C});
  }
}

std::vector<NamedParam<Tensor>> GptParams::params() {
  return enumerate<GptParams, Tensor>(*this);
}
std::vector<NamedParam<const Tensor>> GptParams::params() const {
  return enumerate<const GptParams, const Tensor>(*this);
}

std::vector<std::pair<std::string, Tensor*>> GptParams::named() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& p : params()) out.emplace_back(std::move(p.name), p.tensor);
  return out;
}

std::vector<std::pair<std::string, const Tensor*>> GptParams::named() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (auto& p : params()) out.emplace_back(std::move(p.name), p.tensor);
  return out;
}

TpSplit tp_split_of(ParamPart part) {
  switch (part) {
    case ParamPart::kEmbeddingTable:
    case ParamPart::kOutputWeight:
      return TpSplit::kVocab;
    case ParamPart::kQkvWeight:
    case ParamPart::kQkvBias:
    case ParamPart::kFcWeight:
    case ParamPart::kFcBias:
      return TpSplit::kColumn;
    case ParamPart::kProjWeight:
    case ParamPart::kFcProjWeight:
      return TpSplit::kRow;
    case ParamPart::kPositionTable:
    case ParamPart::kNormWeight:
    case ParamPart::kNormBias:
    case ParamPart::kProjBias:
    case ParamPart::kFcProjBias:
      return TpSplit::kReplicated;  // row-parallel biases: added once
  }
  return TpSplit::kReplicated;
}

int ParamRole::split_dim() const {
  switch (split()) {
    case TpSplit::kColumn:
    case TpSplit::kVocab:
      return 0;
    case TpSplit::kRow:
      return 1;
    case TpSplit::kReplicated:
      return -1;
  }
  return -1;
}

bool ParamRole::decays() const {
  switch (part) {
    case ParamPart::kNormWeight:
    case ParamPart::kNormBias:
    case ParamPart::kQkvBias:
    case ParamPart::kProjBias:
    case ParamPart::kFcBias:
    case ParamPart::kFcProjBias:
      return false;
    case ParamPart::kEmbeddingTable:
    case ParamPart::kPositionTable:
    case ParamPart::kQkvWeight:
    case ParamPart::kProjWeight:
    case ParamPart::kFcWeight:
    case ParamPart::kFcProjWeight:
    case ParamPart::kOutputWeight:
      return true;
  }
  return true;
}

std::string to_string(const ParamRole& r) {
  static constexpr const char* kOwner[] = {"embedding", "position embedding", "layer", "exit", "final norm", "head"};
  static constexpr const char* kPart[] = {
      "embedding table", "position table", "norm weight", "norm bias",     "qkv weight",  "qkv bias",     "proj weight",
      "proj bias",       "fc weight",      "fc bias",     "fcproj weight", "fcproj bias", "output weight"};
  static constexpr const char* kSplit[] = {"replicated", "column-parallel", "row-parallel", "vocabulary-parallel"};
  std::string s = kOwner[static_cast<int>(r.owner)];
  if (r.index >= 0) s += " " + std::to_string(r.index);
  if (r.exit_block) s += " block";
  return s + " " + kPart[static_cast<int>(r.part)] + " (" + kSplit[static_cast<int>(r.split())] + ")";
}

StatusOr<ParamRole> param_role_of(const std::string& name) {
  const TopPart* top = find_part(kEmbeddingParts, name);
  if (!top) top = find_part(kFinalParts, name);
  if (top) return ParamRole{top->owner, -1, false, top->part};
  std::string_view rest;
  int index = -1;
  const std::string_view n = name;
  if (n.starts_with("layers.") && split_index(n.substr(7), index, rest)) {
    if (const LayerPart* x = find_part(kLayerParts, rest)) return ParamRole{ParamOwner::kLayer, index, false, x->part};
  } else if (n.starts_with("exits.") && split_index(n.substr(6), index, rest)) {
    if (rest.starts_with("block.")) {
      if (const LayerPart* x = find_part(kLayerParts, rest.substr(6)))
        return ParamRole{ParamOwner::kExit, index, true, x->part};
    } else if (const ExitPart* x = find_part(kExitParts, rest)) {
      return ParamRole{ParamOwner::kExit, index, false, x->part};
    }
  }
  return Status::invalid_argument("'" + name + "' names no parameter of the early-exit GPT");
}

size_t GptParams::num_parameters() const {
  size_t n = 0;
  for (auto& [name, t] : named()) n += t->numel();
  return n;
}

void init_params(GptParams& p, const GptConfig& c, uint64_t seed) {
  // Box–Muller over mt19937_64 (std::normal_distribution is implementation-defined; this is not).
  std::mt19937_64 rng(seed);
  auto uniform = [&rng] { return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  auto fill_normal = [&](Tensor& t, double std) {
    for (size_t i = 0; i < t.numel(); i += 2) {
      const double r = std::sqrt(-2.0 * std::log(uniform())), th = 2.0 * std::numbers::pi * uniform();
      t.data[i] = static_cast<float>(std * r * std::cos(th));
      if (i + 1 < t.numel()) t.data[i + 1] = static_cast<float>(std * r * std::sin(th));
    }
  };
  const double out_std = c.init_std / std::sqrt(2.0 * c.L);
  for (const NamedParam<Tensor>& np : p.params()) {
    Tensor* t = np.tensor;
    const ParamPart part = np.role.part;
    if (part == ParamPart::kNormWeight) {
      std::fill(t->data.begin(), t->data.end(), 1.0f);
    } else if (!np.role.decays()) {
      t->zero();  // biases
    } else if (part == ParamPart::kProjWeight || part == ParamPart::kFcProjWeight) {
      fill_normal(*t, out_std);  // proj_w, fcproj_w, mlp_fcproj_w: Megatron's scaled output init
    } else {
      fill_normal(*t, c.init_std);
    }
  }
}

const float* ChunkState::output() const {
  return layers.empty() ? input.ptr() : layers.back().out.ptr();
}

GptChunk::GptChunk(const GptConfig& cfg, int first_layer, int num_layers, bool has_embedding, bool has_final_head)
    : cfg_(cfg), first_(first_layer), count_(num_layers), has_embedding_(has_embedding), has_final_(has_final_head) {
  for (int e = 0; e < cfg.num_exits(); ++e) {
    const int idx = cfg.exit_layer[static_cast<size_t>(e)] - 1;  // the layer the head reads (derive_layout)
    if (idx >= first_ && idx < first_ + count_) exits_.push_back(e);
  }
}

int GptChunk::layers_to_deepest_exit() const {
  if (exits_.empty()) return count_;
  int depth = 0;
  for (int e : exits_) depth = std::max(depth, cfg_.exit_depth[static_cast<size_t>(e)]);
  return std::clamp(depth - first_, 0, count_);
}

void GptChunk::layer_forward(LayerActs& a, const LayerParams& lp, const float* inp, int B, int T) {
  const GptConfig& c = cfg_;
  const int N = B * T, R = rows(N);  // R: this rank's residual rows (N without sequence parallelism)
  const bool ln = c.norm == Normalization::kLayerNorm;
  const AttentionShape sh{B, T, c.NH, c.G, c.HS};
  resize(a.ln1, {R, c.C}), resize(a.ln1_rstd, {R}), resize(a.qkv, {N, c.qkv_dim()}), resize(a.att, {N, c.Q()});
  resize(a.lse, {B, c.NH, T}), resize(a.res2, {R, c.C}), resize(a.ln2, {R, c.C}), resize(a.ln2_rstd, {R});
  resize(a.fc, {N, c.fc_dim()}), resize(a.act, {N, c.F}), resize(a.out, {R, c.C});
  if (ln) resize(a.ln1_mean, {R}), resize(a.ln2_mean, {R});
  Backend& be = *be_;
  be.norm_forward(c.norm, a.ln1.ptr(), opt(a.ln1_mean), a.ln1_rstd.ptr(), inp, lp.ln1_w.ptr(), opt(lp.ln1_b), R, c.C,
                  c.eps);
  const float* x1 = sp_ ? sp_gather(a.ln1.ptr(), a.ln1_full, N) : a.ln1.ptr();
  be.matmul_forward(a.qkv.ptr(), x1, lp.qkv_w.ptr(), opt(lp.qkv_b), N, c.C, c.qkv_dim());
  progress();
  if (c.rope) be.rope_forward(a.qkv.ptr(), sh, c.rope_base);
  be.attention_forward(a.att.ptr(), a.lse.ptr(), a.qkv.ptr(), sh);
  progress();
  row_parallel_forward(a.res2.ptr(), a.att.ptr(), lp.proj_w, lp.proj_b, N, c.Q());
  be.add_inplace(a.res2.ptr(), inp, a.res2.numel());
  be.norm_forward(c.norm, a.ln2.ptr(), opt(a.ln2_mean), a.ln2_rstd.ptr(), a.res2.ptr(), lp.ln2_w.ptr(), opt(lp.ln2_b),
                  R, c.C, c.eps);
  const float* x2 = sp_ ? sp_gather(a.ln2.ptr(), a.ln2_full, N) : a.ln2.ptr();
  be.matmul_forward(a.fc.ptr(), x2, lp.fc_w.ptr(), opt(lp.fc_b), N, c.C, c.fc_dim());
  progress();
  if (c.swiglu)
    be.swiglu_forward(a.act.ptr(), a.fc.ptr(), N, c.F);
  else
    be.gelu_forward(a.act.ptr(), a.fc.ptr(), a.act.numel());
  row_parallel_forward(a.out.ptr(), a.act.ptr(), lp.fcproj_w, lp.fcproj_b, N, c.F);
  be.add_inplace(a.out.ptr(), a.res2.ptr(), a.out.numel());
}

void GptChunk::layer_backward(LayerActs& a, const LayerParams& lp, LayerParams& lg, const float* inp, const float* dout,
                              float* dinp, int B, int T) {
  const GptConfig& c = cfg_;
  const int N = B * T, R = rows(N);
  const AttentionShape sh{B, T, c.NH, c.G, c.HS};
  Backend& be = *be_;
  resize(d_res2_, {R, c.C}), resize(d_act_, {N, c.F}), resize(d_fc_, {N, c.fc_dim()}), resize(d_ln_, {N, c.C});
  resize(d_att_, {N, c.Q()}), resize(d_qkv_, {N, c.qkv_dim()});
  // Norm weight gradients: with sequence parallelism each rank sees only its rows; they are summed
  // over the group once per call (scratch), so the accumulated gradient is never double counted.
  NormGrads ng2 = norm_grads(lg.ln2_w, lg.ln2_b, 0), ng1 = norm_grads(lg.ln1_w, lg.ln1_b, 2);
  be.copy(d_res2_.ptr(), dout, d_res2_.numel());
  // The input gradients of the matmuls overwrite their buffers (accumulate_dinp false: no zeroing
  // pass), and so does GELU's; attention and SwiGLU accumulate into zeroed ones.
  const float* gout = sp_ ? sp_gather(dout, s_gfull_, N) : dout;
  be.matmul_backward(d_act_.ptr(), weight_grad(lg.fcproj_w), opt(lg.fcproj_b), gout, a.act.ptr(), lp.fcproj_w.ptr(), N,
                     c.F, c.C, false);
  keep_for_weight(a.w_fcproj, gout, static_cast<size_t>(N) * c.C);
  progress();
  if (c.swiglu) {
    be.zero(d_fc_.ptr(), d_fc_.numel());
    be.swiglu_backward(d_fc_.ptr(), d_act_.ptr(), a.fc.ptr(), N, c.F);
  } else {
    be.gelu_backward(d_fc_.ptr(), d_act_.ptr(), a.fc.ptr(), d_act_.numel(), false, a.act.ptr());
  }
  be.matmul_backward(d_ln_.ptr(), weight_grad(lg.fc_w), opt(lg.fc_b), d_fc_.ptr(), sp_ ? a.ln2_full.ptr() : a.ln2.ptr(),
                     lp.fc_w.ptr(), N, c.C, c.fc_dim(), false);
  keep_for_weight(a.w_fc, d_fc_.ptr(), d_fc_.numel());
  progress();
  const float* dln = column_parallel_input_grad(d_ln_, N);  // sum over the ffn shards
  be.norm_backward(c.norm, d_res2_.ptr(), ng2.w, ng2.b, dln, a.res2.ptr(), lp.ln2_w.ptr(), opt(a.ln2_mean),
                   a.ln2_rstd.ptr(), R, c.C);
  be.add_inplace(dinp, d_res2_.ptr(), d_res2_.numel());
  const float* g2 = sp_ ? sp_gather(d_res2_.ptr(), s_gfull_, N) : d_res2_.ptr();
  be.matmul_backward(d_att_.ptr(), weight_grad(lg.proj_w), opt(lg.proj_b), g2, a.att.ptr(), lp.proj_w.ptr(), N, c.Q(),
                     c.C, false);
  keep_for_weight(a.w_proj, g2, static_cast<size_t>(N) * c.C);
  progress();
  be.zero(d_qkv_.ptr(), d_qkv_.numel());
  be.attention_backward(d_qkv_.ptr(), d_att_.ptr(), a.att.ptr(), a.lse.ptr(), a.qkv.ptr(), sh);
  progress();
  if (c.rope) be.rope_backward(d_qkv_.ptr(), sh, c.rope_base);
  be.matmul_backward(d_ln_.ptr(), weight_grad(lg.qkv_w), opt(lg.qkv_b), d_qkv_.ptr(),
                     sp_ ? a.ln1_full.ptr() : a.ln1.ptr(), lp.qkv_w.ptr(), N, c.C, c.qkv_dim(), false);
  keep_for_weight(a.w_qkv, d_qkv_.ptr(), d_qkv_.numel());
  progress();
  dln = column_parallel_input_grad(d_ln_, N);  // sum over the heads' shards
  be.norm_backward(c.norm, dinp, ng1.w, ng1.b, dln, inp, lp.ln1_w.ptr(), opt(a.ln1_mean), a.ln1_rstd.ptr(), R, c.C);
  finish_norm_grads({{ng2, &lg.ln2_w, &lg.ln2_b}, {ng1, &lg.ln1_w, &lg.ln1_b}});
}

float GptChunk::head(int e, const GptParams& p, GptParams& g, const float* x, const int32_t* targets, int B, int T,
                     float weight, float* dx, Tensor* logits) {
  const GptConfig& c = cfg_;
  const int N = B * T, R = rows(N);  // x, h, hn, hm, dx: R rows; MLP inner and logits: N rows
  Backend& be = *be_;
  const bool is_exit = e >= 0;
  const ExitParams* ep = is_exit ? &p.exits[static_cast<size_t>(e)] : nullptr;
  ExitParams* eg = is_exit ? &g.exits[static_cast<size_t>(e)] : nullptr;
  const bool block = is_exit && c.exit_block, norm = !is_exit || c.exit_norm, mlp = is_exit && c.exit_mlp;

  const float* h = x;
  if (block) {
    layer_forward(head_block_, ep->block, x, B, T);
    h = head_block_.out.ptr();
  }
  const float* hn = h;
  const Tensor& nw = is_exit ? ep->norm_w : p.lnf_w;
  const Tensor& nb = is_exit ? ep->norm_b : p.lnf_b;
  if (norm) {
    resize(s_norm_, {R, c.C}), resize(s_mean_, {R}), resize(s_rstd_, {R});
    be.norm_forward(c.norm, s_norm_.ptr(), s_mean_.ptr(), s_rstd_.ptr(), h, nw.ptr(), opt(nb), R, c.C, c.eps);
    hn = s_norm_.ptr();
  }
  const float* hm = hn;
  const float* hn_full = hn;  // the MLP's (column-parallel) input, all rows
  if (mlp) {
    if (sp_) hn_full = sp_gather(hn, s_hn_full_, N);
    resize(s_fc_, {N, c.fc_dim()}), resize(s_act_, {N, c.F}), resize(s_mlp_, {R, c.C});
    be.matmul_forward(s_fc_.ptr(), hn_full, ep->mlp_fc_w.ptr(), opt(ep->mlp_fc_b), N, c.C, c.fc_dim());
    if (c.swiglu)
      be.swiglu_forward(s_act_.ptr(), s_fc_.ptr(), N, c.F);
    else
      be.gelu_forward(s_act_.ptr(), s_fc_.ptr(), s_act_.numel());
    row_parallel_forward(s_mlp_.ptr(), s_act_.ptr(), ep->mlp_fcproj_w, ep->mlp_fcproj_b, N, c.F);
    be.add_inplace(s_mlp_.ptr(), hn, s_mlp_.numel());
    hm = s_mlp_.ptr();
  }
  const Tensor& W = is_exit ? (c.untie_exits ? ep->out_w : p.wte) : (c.untie_final ? p.lm_head : p.wte);
  Tensor& dW = is_exit ? (c.untie_exits ? eg->out_w : g.wte) : (c.untie_final ? g.lm_head : g.wte);
  const bool grad = dx != nullptr && weight != 0.0f;  // a zero-weight head contributes exactly nothing
  resize(s_losses_, {N});
  if (logits) resize(*logits, {B, T, c.Vp});
  if (grad) resize(s_dh_, {R, c.C}), be.zero(s_dh_.ptr(), s_dh_.numel());
  if (tp_ == 1)
    be.classifier_fused(s_losses_.ptr(), grad ? s_dh_.ptr() : nullptr, grad ? dW.ptr() : nullptr,
                        logits ? logits->ptr() : nullptr, hm, W.ptr(), targets, N, c.C, c.V, c.Vp,
                        weight / static_cast<float>(N));
  else
    tp_classifier(grad ? s_dh_.ptr() : nullptr, dW, logits, sp_ ? sp_gather(hm, s_hm_full_, N) : hm, W, targets, N,
                  weight / static_cast<float>(N));
  be.synchronize();  // the losses are read on the host (a device backend runs asynchronously)
  double sum = 0.0;
  for (float l : s_losses_.data) sum += l;
  const float loss = static_cast<float>(sum / N);
  if (!grad) return loss;

  // Back through the head, ending in dx (the residual stream).
  if (mlp) {  // hm = hn + MLP(hn): d(hn) = d(hm) + MLP'
    resize(s_dact_, {N, c.F}), resize(s_dfc_, {N, c.fc_dim()}), resize(s_dn_, {N, c.C});
    if (tp_ == 1)
      be.copy(s_dn_.ptr(), s_dh_.ptr(), s_dn_.numel());
    else
      be.zero(s_dn_.ptr(), s_dn_.numel());  // the column-parallel fc's partial input gradient first
    be.zero(s_dact_.ptr(), s_dact_.numel());
    be.matmul_backward(s_dact_.ptr(), eg->mlp_fcproj_w.ptr(), opt(eg->mlp_fcproj_b),
                       sp_ ? sp_gather(s_dh_.ptr(), s_gfull_, N) : s_dh_.ptr(), s_act_.ptr(), ep->mlp_fcproj_w.ptr(), N,
                       c.F, c.C);
    be.zero(s_dfc_.ptr(), s_dfc_.numel());
    if (c.swiglu)
      be.swiglu_backward(s_dfc_.ptr(), s_dact_.ptr(), s_fc_.ptr(), N, c.F);
    else
      be.gelu_backward(s_dfc_.ptr(), s_dact_.ptr(), s_fc_.ptr(), s_dact_.numel(), true, s_act_.ptr());
    be.matmul_backward(s_dn_.ptr(), eg->mlp_fc_w.ptr(), opt(eg->mlp_fc_b), s_dfc_.ptr(), hn_full, ep->mlp_fc_w.ptr(), N,
                       c.C, c.fc_dim());
    if (tp_ > 1) {
      const float* dn = column_parallel_input_grad(s_dn_, N);  // (R, C); s_dn_ itself without SP
      if (sp_) resize(s_dn_r_, {R, c.C}), be.copy(s_dn_r_.ptr(), dn, s_dn_r_.numel()), std::swap(s_dn_, s_dn_r_);
      be.add_inplace(s_dn_.ptr(), s_dh_.ptr(), s_dh_.numel());
    }
    std::swap(s_dn_, s_dh_);
  }
  // s_dh_ = d(hn). Norm backward into d(h): straight into dx without a block, else into scratch.
  float* dh = dx;
  if (block) resize(s_tmp_, {R, c.C}), be.zero(s_tmp_.ptr(), s_tmp_.numel()), dh = s_tmp_.ptr();
  if (norm) {
    Tensor& gw = is_exit ? eg->norm_w : g.lnf_w;
    Tensor& gb = is_exit ? eg->norm_b : g.lnf_b;
    const NormGrads ng = norm_grads(gw, gb, 0);
    be.norm_backward(c.norm, dh, ng.w, ng.b, s_dh_.ptr(), h, nw.ptr(), s_mean_.ptr(), s_rstd_.ptr(), R, c.C);
    finish_norm_grads({{ng, &gw, &gb}});
  } else {
    be.add_inplace(dh, s_dh_.ptr(), s_dh_.numel());
  }
  if (block) layer_backward(head_block_, ep->block, eg->block, x, dh, dx, B, T);
  return loss;
}

void GptChunk::forward(ChunkState& st, const GptParams& p, GptParams& g, const int32_t* tokens, const float* input,
                       const int32_t* targets, int B, int T, const HeadWeights& w, bool compute_grad,
                       std::vector<Tensor>* logits) {
  const GptConfig& c = cfg_;
  const int N = B * T, R = rows(N);
  Backend& be = *be_;
  st.B = B, st.T = T;
  resize(st.input, {R, c.C});
  if (has_embedding_) {
    st.tokens.assign(tokens, tokens + N);
    if (tp_ == 1)
      be.embedding_forward(st.input.ptr(), tokens, p.wte.ptr(), c.rope ? nullptr : p.wpe.ptr(), B, T, c.C);
    else
      tp_embedding_forward(st.input.ptr(), p, tokens, B, T);
  } else {
    be.copy(st.input.ptr(), input, st.input.numel());
  }
  st.layers.resize(static_cast<size_t>(count_));
  st.exit_dx.resize(exits_.size());
  st.exit_loss.assign(exits_.size(), 0.0f);
  if (logits) logits->resize(exits_.size() + (has_final_ ? 1 : 0));
  for (int pos = 0; pos <= count_; ++pos) {
    const float* res = pos == 0 ? st.input.ptr() : st.layers[static_cast<size_t>(pos - 1)].out.ptr();
    for (size_t k = 0; k < exits_.size(); ++k) {
      const int e = exits_[k];
      if (c.exit_depth[static_cast<size_t>(e)] - first_ != pos) continue;
      float* dx = nullptr;
      if (compute_grad)
        resize(st.exit_dx[k], {R, c.C}), be.zero(st.exit_dx[k].ptr(), st.exit_dx[k].numel()), dx = st.exit_dx[k].ptr();
      st.exit_loss[k] =
          head(e, p, g, res, targets, B, T, w.exits[static_cast<size_t>(e)], dx, logits ? &(*logits)[k] : nullptr);
      progress();
    }
    if (pos < count_) {
      layer_forward(st.layers[static_cast<size_t>(pos)], p.layers[static_cast<size_t>(first_ + pos)], res, B, T);
      progress();
    }
  }
  if (has_final_) {
    float* dx = nullptr;
    if (compute_grad)
      resize(st.final_dx, {R, c.C}), be.zero(st.final_dx.ptr(), st.final_dx.numel()), dx = st.final_dx.ptr();
    st.final_loss = head(-1, p, g, st.output(), targets, B, T, w.final_weight, dx, logits ? &logits->back() : nullptr);
  }
}

void GptChunk::backward(ChunkState& st, const GptParams& p, GptParams& g, const float* dout, float* dinput,
                        int layers) {
  const GptConfig& c = cfg_;
  const int B = st.B, T = st.T, N = B * T, R = rows(N);
  const int top = layers < 0 ? count_ : std::min(layers, count_);  // layers above `top` get no work
  st.backward_layers = top;
  Backend& be = *be_;
  resize(d_res_, {R, c.C});
  be.zero(d_res_.ptr(), d_res_.numel());
  if (top == count_ && has_final_ && !st.final_dx.empty())
    be.add_inplace(d_res_.ptr(), st.final_dx.ptr(), d_res_.numel());
  if (top == count_ && dout) be.add_inplace(d_res_.ptr(), dout, d_res_.numel());
  auto add_exits_at = [&](int pos) {
    for (size_t k = 0; k < exits_.size(); ++k)
      if (c.exit_depth[static_cast<size_t>(exits_[k])] - first_ == pos && !st.exit_dx[k].empty())
        be.add_inplace(d_res_.ptr(), st.exit_dx[k].ptr(), d_res_.numel());
  };
  // The skipped layers' gradients got nothing from this call: final for the readiness hook already.
  for (int pos = count_; pos > top; --pos)
    if (layer_hook_ && !defer_w_) layer_hook_(first_ + pos - 1);
  for (int pos = top; pos >= 1; --pos) {
    add_exits_at(pos);
    resize(d_res_next_, {R, c.C});
    be.zero(d_res_next_.ptr(), d_res_next_.numel());
    const float* inp = pos == 1 ? st.input.ptr() : st.layers[static_cast<size_t>(pos - 2)].out.ptr();
    const size_t li = static_cast<size_t>(first_ + pos - 1);
    layer_backward(st.layers[static_cast<size_t>(pos - 1)], p.layers[li], g.layers[li], inp, d_res_.ptr(),
                   d_res_next_.ptr(), B, T);
    if (layer_hook_ && !defer_w_) layer_hook_(static_cast<int>(li));
    std::swap(d_res_, d_res_next_);
  }
  add_exits_at(0);
  if (has_embedding_ && tp_ == 1)
    be.embedding_backward(g.wte.ptr(), c.rope ? nullptr : g.wpe.ptr(), d_res_.ptr(), st.tokens.data(), B, T, c.C);
  else if (has_embedding_)
    tp_embedding_backward(g, d_res_.ptr(), st.tokens.data(), B, T);
  else if (dinput)
    be.copy(dinput, d_res_.ptr(), d_res_.numel());
}

void GptChunk::keep_for_weight(Tensor& t, const float* src, size_t n) {
  if (!defer_w_) return;
  resize(t, {static_cast<int64_t>(n)});
  be_->copy(t.ptr(), src, n);
}

void GptChunk::backward_input(ChunkState& st, const GptParams& p, GptParams& g, const float* dout, float* dinput,
                              int layers) {
  defer_w_ = true;
  backward(st, p, g, dout, dinput, layers);
  defer_w_ = false;
}

void GptChunk::backward_weight(ChunkState& st, const GptParams& p, GptParams& g) {
  const GptConfig& c = cfg_;
  const int N = st.B * st.T;
  Backend& be = *be_;
  // Top layer first (the layers' weight gradients are independent), so that the overlapped DP
  // reduction can post the last layers' buckets while the earlier layers are still computed.
  // Layers backward_input skipped (a truncated fill backward) have nothing to add.
  for (int pos = count_ - 1; pos >= st.backward_layers; --pos)
    if (layer_hook_) layer_hook_(first_ + pos);
  for (int pos = st.backward_layers - 1; pos >= 0; --pos) {
    LayerActs& a = st.layers[static_cast<size_t>(pos)];
    const LayerParams& lp = p.layers[static_cast<size_t>(first_ + pos)];
    LayerParams& lg = g.layers[static_cast<size_t>(first_ + pos)];
    be.matmul_backward(nullptr, lg.fcproj_w.ptr(), nullptr, a.w_fcproj.ptr(), a.act.ptr(), lp.fcproj_w.ptr(), N, c.F,
                       c.C);
    progress();
    be.matmul_backward(nullptr, lg.fc_w.ptr(), nullptr, a.w_fc.ptr(), sp_ ? a.ln2_full.ptr() : a.ln2.ptr(),
                       lp.fc_w.ptr(), N, c.C, c.fc_dim());
    progress();
    be.matmul_backward(nullptr, lg.proj_w.ptr(), nullptr, a.w_proj.ptr(), a.att.ptr(), lp.proj_w.ptr(), N, c.Q(), c.C);
    progress();
    be.matmul_backward(nullptr, lg.qkv_w.ptr(), nullptr, a.w_qkv.ptr(), sp_ ? a.ln1_full.ptr() : a.ln1.ptr(),
                       lp.qkv_w.ptr(), N, c.C, c.qkv_dim());
    a.w_fcproj = Tensor(), a.w_fc = Tensor(), a.w_proj = Tensor(), a.w_qkv = Tensor();
    if (layer_hook_) layer_hook_(first_ + pos);
  }
}

}  // namespace eellm::exec
