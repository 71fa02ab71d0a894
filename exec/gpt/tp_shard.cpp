// Tensor-parallel sharding rules of the early-exit GPT (see tp_shard.h).
#include "exec/gpt/tp_shard.h"

#include <algorithm>
#include <cstring>

namespace eellm::exec {
namespace {

std::string str(int64_t v) {
  return std::to_string(v);
}

// Block r of tp equal blocks of [offset, offset + extent).
std::pair<int64_t, int64_t> block(int64_t offset, int64_t extent, int tp, int r) {
  const int64_t b = extent / tp;
  return {offset + r * b, offset + (r + 1) * b};
}

// Strides for copying along `dim` of a row-major tensor: outer × [extent along dim] × inner.
struct Geometry {
  int64_t outer = 1, extent = 1, inner = 1;
};
Geometry geometry(const std::vector<int64_t>& shape, int dim) {
  Geometry g;
  for (int i = 0; i < dim; ++i) g.outer *= shape[static_cast<size_t>(i)];
  g.extent = shape[static_cast<size_t>(dim)];
  for (size_t i = static_cast<size_t>(dim) + 1; i < shape.size(); ++i) g.inner *= shape[i];
  return g;
}

}  // namespace

int64_t ShardSpec::local_extent() const {
  int64_t n = 0;
  for (auto& [b, e] : ranges) n += e - b;
  return n;
}

StatusOr<GptConfig> local_config(const GptConfig& full, int tp) {
  if (tp < 1) return Status::invalid_argument("tensor-parallel size (" + str(tp) + ") must be ≥ 1");
  if (full.tp != 1)
    return Status::invalid_argument("local_config needs a full config (its tp is " + str(full.tp) + ")");
  if (tp == 1) return full;
  auto check = [&](const char* what, int v) -> Status {
    if (v % tp != 0)
      return Status::invalid_argument(std::string(what) + " (" + str(v) +
                                      ") is not divisible by tensor_model_parallel_size (" + str(tp) + ")");
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(check("model.num_attention_heads", full.NH));
  EELLM_RETURN_IF_ERROR(check("model.num_query_groups", full.G));
  EELLM_RETURN_IF_ERROR(check("model.ffn_hidden_size", full.F));
  EELLM_RETURN_IF_ERROR(check("padded vocabulary size", full.Vp));
  GptConfig c = full;
  c.NH /= tp, c.G /= tp, c.F /= tp, c.Vp /= tp;
  c.tp = tp;
  return c;
}

bool is_tp_replicated(const ParamRole& role) {
  return role.split() == TpSplit::kReplicated;
}

bool is_tp_replicated(const std::string& name) {
  auto role = param_role_of(name);
  return !role.is_ok() || is_tp_replicated(*role);
}

StatusOr<ShardSpec> shard_spec(const GptConfig& c, const ParamRole& role, int tp, int r) {
  if (tp < 1 || r < 0 || r >= tp)
    return Status::invalid_argument("tensor-parallel rank " + str(r) + " of " + str(tp) + " is out of range");
  ShardSpec s;
  s.dim = role.split_dim();
  const int64_t Q = c.Q(), KV = c.KV(), F = c.F, Vp = c.Vp;
  switch (role.split()) {
    case TpSplit::kReplicated:
      break;  // norms, wpe, row-parallel biases
    case TpSplit::kVocab:
      s.ranges = {block(0, Vp, tp, r)};
      break;
    case TpSplit::kColumn:
      if (role.part == ParamPart::kQkvWeight || role.part == ParamPart::kQkvBias) {
        s.ranges = {block(0, Q, tp, r), block(Q, KV, tp, r), block(Q + KV, KV, tp, r)};
      } else {  // fc, exit mlp_fc: [a | b] with SwiGLU
        s.ranges = {block(0, F, tp, r)};
        if (c.swiglu) s.ranges.push_back(block(F, F, tp, r));
      }
      break;
    case TpSplit::kRow:
      s.ranges = {block(0, role.part == ParamPart::kProjWeight ? Q : F, tp, r)};
      break;
  }
  return s;
}

StatusOr<ShardSpec> shard_spec(const GptConfig& c, const std::string& name, int tp, int r) {
  auto role = param_role_of(name);
  if (!role.is_ok()) return Status::invalid_argument("no tensor-parallel sharding rule for tensor '" + name + "'");
  return shard_spec(c, *role, tp, r);
}

std::vector<int64_t> shard_shape(const std::vector<int64_t>& full_shape, const ShardSpec& spec) {
  std::vector<int64_t> s = full_shape;
  if (!spec.replicated()) s[static_cast<size_t>(spec.dim)] = spec.local_extent();
  return s;
}

Tensor extract_shard(const Tensor& full, const ShardSpec& spec) {
  if (spec.replicated()) return full;
  Tensor out(shard_shape(full.shape, spec));
  const Geometry g = geometry(full.shape, spec.dim);
  const int64_t local = spec.local_extent();
  for (int64_t o = 0; o < g.outer; ++o) {
    int64_t at = 0;
    for (auto& [b, e] : spec.ranges) {
      const float* src = full.ptr() + (o * g.extent + b) * g.inner;
      float* dst = out.ptr() + (o * local + at) * g.inner;
      std::memcpy(dst, src, static_cast<size_t>((e - b) * g.inner) * sizeof(float));
      at += e - b;
    }
  }
  return out;
}

void insert_shard(Tensor& full, const Tensor& shard, const ShardSpec& spec) {
  if (spec.replicated()) {
    std::copy(shard.data.begin(), shard.data.end(), full.data.begin());
    return;
  }
  const Geometry g = geometry(full.shape, spec.dim);
  const int64_t local = spec.local_extent();
  for (int64_t o = 0; o < g.outer; ++o) {
    int64_t at = 0;
    for (auto& [b, e] : spec.ranges) {
      const float* src = shard.ptr() + (o * local + at) * g.inner;
      float* dst = full.ptr() + (o * g.extent + b) * g.inner;
      std::memcpy(dst, src, static_cast<size_t>((e - b) * g.inner) * sizeof(float));
      at += e - b;
    }
  }
}

}  // namespace eellm::exec
