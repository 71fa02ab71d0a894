// The early-exit GPT: parameters, the per-chunk forward/backward a pipeline rank runs, and the
// single-process model composed of one chunk. Built from a Scenario's `model` and `exits` sections
// (derive_layout gives padded vocab, ffn size, head size and exit depths).
//
// Legend: B = micro batch, T = time, C = hidden, L = layers, V = vocab, Vp = padded vocab,
// F = ffn hidden, NH = heads, G = kv groups, HS = head size, Q = NH·HS, KV = G·HS.
//
// Exit heads (EE-LLM): residual after `depth` layers → [transformer block] → [norm] → [MLP branch,
// x + MLP(x)] → output projection (tied to wte unless untie_exit_output_weights). The final head is
// final norm → projection (tied unless untie_embeddings_and_output_weights). Every head is run
// forward AND backward at forward time (its loss weight is known then): only the gradient on the
// residual stream (B,T,C) is kept until the chunk's backward, where it is added to the gradient
// flowing down the residual stream (EE-LLM's method). Head activations are never held.
//
// Tensor parallelism (Megatron, exec/gpt/tp_shard.h): a chunk built on local_config(full, tp) with
// set_tensor_parallel(group) holds this rank's shards. Column-parallel qkv (local heads and kv
// groups) and fc; row-parallel proj and fcproj whose partial outputs are all-reduced over the
// group, the replicated bias added once (by tp rank 0 before the sum); the input gradient of
// every column-parallel block is all-reduced before its norm's backward. The same in exit blocks
// and exit MLPs. Vocabulary-parallel embedding (rank r holds rows [r·Vp_l, (r+1)·Vp_l); other
// tokens contribute 0; all-reduced; positions added after) and cross-entropy for every head
// (local logits; per-row max, Σexp and target logit combined over the group with one all-gather;
// logit gradients computed locally; the head's input gradient all-reduced). Activations between
// chunks stay full (B,T,C) and identical on every tp rank; replicated parameters get identical
// gradients on every tp rank. Without a group (or a group of 1) every op is exactly the
// single-process one, bit for bit.
// Sequence parallelism (Megatron): the residual stream, norms and the chunk's input/output hold
// only this rank's rows [r·N/tp, (r+1)·N/tp) of the N = B·T tokens (any row split works, as norms
// and residual adds are per row); the norm output is all-gathered before each column-parallel
// block (the gathered copy is kept for backward) and row-parallel outputs are reduce-scattered
// instead of all-reduced (backward: the mirror images). Norm-weight gradients, computed from this
// rank's rows only, are summed over the group per call; heads gather their input before the
// vocabulary-parallel cross-entropy and reduce-scatter its input gradient.
//
// Thread-safety: a GptChunk is used by one thread; ChunkState is per microbatch.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/tensor.h"
#include "exec/comm/comm.h"
#include "model/layout.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

// Resolved sizes and switches; the single source for shapes in exec/.
struct GptConfig {
  int L = 0, C = 0, NH = 0, G = 0, HS = 0, F = 0, V = 0, Vp = 0, max_T = 0;
  Normalization norm = Normalization::kLayerNorm;
  bool rope = false;
  bool swiglu = false;
  bool bias = true;
  bool untie_final = false;
  float eps = 1e-5f;
  float rope_base = 10000.0f;
  float init_std = 0.02f;
  // Exits.
  std::vector<int> exit_depth;  // backbone layers before each exit head (model order)
  std::vector<int> exit_layer;  // the scenario's 1-based layer number of each exit
  bool exit_block = false, exit_norm = false, exit_mlp = false, untie_exits = false;
  // Tensor parallelism: 1 for a full model; local_config (exec/gpt/tp_shard.h) sets tp and divides
  // NH, G, F and Vp by it (V stays the full real vocabulary).
  int tp = 1;
  int Q() const { return NH * HS; }
  int KV() const { return G * HS; }
  int qkv_dim() const { return Q() + 2 * KV(); }
  int fc_dim() const { return swiglu ? 2 * F : F; }
  int num_exits() const { return static_cast<int>(exit_depth.size()); }
};

StatusOr<GptConfig> make_gpt_config(const Scenario& scenario);

// One transformer layer (also the exit heads' optional block).
struct LayerParams {
  Tensor ln1_w, ln1_b;        // (C) (C; LayerNorm only)
  Tensor qkv_w, qkv_b;        // (Q+2KV, C) (Q+2KV; with bias)
  Tensor proj_w, proj_b;      // (C, Q) (C)
  Tensor ln2_w, ln2_b;        // (C) (C)
  Tensor fc_w, fc_b;          // (F or 2F for SwiGLU, C) (F|2F)
  Tensor fcproj_w, fcproj_b;  // (C, F) (C)
};

struct ExitParams {
  LayerParams block;                  // with use_exit_block
  Tensor norm_w, norm_b;              // (C) with use_exit_norm
  Tensor mlp_fc_w, mlp_fc_b;          // (F|2F, C) with use_exit_mlp
  Tensor mlp_fcproj_w, mlp_fcproj_b;  // (C, F)
  Tensor out_w;                       // (Vp, C) with untie_exit_output_weights
};

// What a parameter tensor is, attached where GptParams names its tensors (as Megatron attaches
// tensor_model_parallel / partition_dim to its parameters). Sharding (exec/gpt/tp_shard.h), data-
// parallel readiness (exec/train/grad_sync.h), weight decay and initialisation read the role; the
// names (GptParams::named) are for serialization only (checkpoint and safetensors keys).
enum class ParamOwner { kEmbedding, kPositionEmbedding, kLayer, kExit, kFinalNorm, kHead };
enum class ParamPart {
  kEmbeddingTable,  // wte (Vp, C)
  kPositionTable,   // wpe (max_T, C)
  kNormWeight,
  kNormBias,
  kQkvWeight,
  kQkvBias,
  kProjWeight,
  kProjBias,
  kFcWeight,  // also an exit MLP's mlp_fc_w
  kFcBias,
  kFcProjWeight,  // also an exit MLP's mlp_fcproj_w
  kFcProjBias,
  kOutputWeight,  // lm_head, exits.j.out_w (Vp, C)
};
// Megatron's tensor-parallel split: column-parallel (output features, dim 0), row-parallel (input
// features, dim 1), vocabulary-parallel (vocabulary rows, dim 0) or replicated.
enum class TpSplit { kReplicated, kColumn, kRow, kVocab };
TpSplit tp_split_of(ParamPart part);

struct ParamRole {
  ParamOwner owner = ParamOwner::kLayer;
  int index = -1;           // layer i (kLayer) or exit j (kExit); −1 otherwise
  bool exit_block = false;  // a tensor of exit j's transformer block (use_exit_block)
  ParamPart part = ParamPart::kNormWeight;
  TpSplit split() const { return tp_split_of(part); }
  int split_dim() const;  // 0, 1, or −1 when replicated
  // Weight decay applies to matrices (weights and tables), not to biases and norms.
  bool decays() const;
  bool operator==(const ParamRole&) const = default;
};
std::string to_string(const ParamRole& r);  // "layer 3 qkv weight (column-parallel)", for messages

// The role a serialized name ("layers.3.qkv_w", a checkpoint key) stands for; for readers that hold
// only names (manifests, checkpoints). Unknown names are an error naming them.
StatusOr<ParamRole> param_role_of(const std::string& name);

template <typename T>
struct NamedParam {
  std::string name;
  T* tensor = nullptr;
  ParamRole role;
};

struct GptParams {
  Tensor wte;                       // (Vp, C)
  Tensor wpe;                       // (max_T, C), learned positions only
  std::vector<LayerParams> layers;  // L
  Tensor lnf_w, lnf_b;              // (C)
  Tensor lm_head;                   // (Vp, C) when untied
  std::vector<ExitParams> exits;

  // Allocates every tensor of the config with zeros.
  void allocate(const GptConfig& cfg);
  // Every allocated tensor with its checkpoint name ("layers.3.qkv_w") and role, in a fixed order.
  std::vector<NamedParam<Tensor>> params();
  std::vector<NamedParam<const Tensor>> params() const;
  // The same tensors as (name, tensor) pairs.
  std::vector<std::pair<std::string, Tensor*>> named();
  std::vector<std::pair<std::string, const Tensor*>> named() const;
  size_t num_parameters() const;
};

// Megatron init: N(0, init_std) for weights, N(0, init_std/√(2L)) for the output layers of each
// residual branch (proj, fcproj, exit MLP fcproj), zeros for biases, ones for norm weights.
void init_params(GptParams& p, const GptConfig& cfg, uint64_t seed);

// Saved activations of one layer for one microbatch.
struct LayerActs {
  Tensor ln1, ln1_mean, ln1_rstd, qkv, att, lse, res2, ln2, ln2_mean, ln2_rstd, fc, act, out;
  Tensor ln1_full, ln2_full;  // sequence parallelism: the all-gathered norm outputs (N, C)
  // Zero-bubble split: the output gradients of fcproj, fc, proj and qkv that backward_weight needs.
  Tensor w_fcproj, w_fc, w_proj, w_qkv;
};

// Everything one chunk keeps for one microbatch between its forward and its backward.
struct ChunkState {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;  // (B,T) when the chunk has the embedding
  Tensor input;                 // (B,T,C) chunk input (embedding output on the first chunk);
                                // with sequence parallelism this rank's rows (B·T/tp, C), as are
                                // output(), exit_dx, final_dx and backward's dout/dinput
  std::vector<LayerActs> layers;
  std::vector<Tensor> exit_dx;   // per local exit: d(weighted exit loss)/d(residual) (B,T,C)
  Tensor final_dx;               // final head: d(weighted loss)/d(chunk output) (B,T,C)
  std::vector<float> exit_loss;  // per local exit: mean CE over B·T
  float final_loss = 0.0f;
  int backward_layers = 0;      // layers (from the first) its last backward or backward_input ran
  const float* output() const;  // (B,T,C) residual after the chunk's last layer
};

// Loss weights for one microbatch, already divided by the number of microbatches.
struct HeadWeights {
  std::vector<float> exits;  // per model exit (size = num_exits)
  float final_weight = 1.0f;
};

// A contiguous range of backbone layers [first, first+count) with the exits whose depth falls in
// (first, first+count] — or at `first` exactly for a chunk that starts after an exit point with
// pre_exit — plus the embedding and/or the final head when it holds the ends of the model.
class GptChunk {
 public:
  GptChunk(const GptConfig& cfg, int first_layer, int num_layers, bool has_embedding, bool has_final_head);

  const GptConfig& config() const { return cfg_; }
  int first_layer() const { return first_; }
  int num_layers() const { return count_; }
  const std::vector<int>& exits() const { return exits_; }  // model exit indices held here
  // The chunk's layers up to (and including) the deepest exit it holds, all of them without an
  // exit: what a truncated fill backward runs (sim/sim_costs.h's layers_to_deepest_exit, which
  // the simulator charges, computed from the layout).
  int layers_to_deepest_exit() const;

  // Forward of one microbatch. First chunk: `tokens` (B·T) used, `input` ignored; else `input`
  // (B,T,C). `targets` (B·T) feed the chunk's heads. With compute_grad the heads' gradients are
  // accumulated into `grads` and kept in `st` for backward; without, only losses are computed.
  // `logits` (optional, per head in chunk order: exits then final) receives (B,T,Vp) logits.
  void forward(ChunkState& st, const GptParams& p, GptParams& grads, const int32_t* tokens, const float* input,
               const int32_t* targets, int B, int T, const HeadWeights& w, bool compute_grad,
               std::vector<Tensor>* logits = nullptr);
  // Backward of one microbatch: `dout` (B,T,C) is the gradient from the next chunk (null on the
  // last chunk). Writes d(input) into `dinput` (B,T,C; ignored on the first chunk, which
  // back-propagates into the embedding instead). Accumulates parameter gradients into `grads`.
  // `layers` ≥ 0 back-propagates only the chunk's first `layers` layers (EE-LLM's truncated fill
  // backward, which starts at the chunk's deepest exit): the layers above get no work, which
  // equals the whole backward when no gradient enters above them — `dout` null and a zero final
  // head gradient (weight 0) — since their gradients are then exactly zero. −1: all layers.
  void backward(ChunkState& st, const GptParams& p, GptParams& grads, const float* dout, float* dinput,
                int layers = -1);
  // The zero-bubble split of backward (ZB-H1's B and W steps): backward_input is backward() without
  // the weight gradients of the backbone layers' four matmuls (qkv, proj, fc, fcproj), whose
  // output gradients it keeps in `st`; backward_weight then accumulates those weight gradients
  // (no communication, tensor-parallel or not). Norm, bias and embedding gradients are taken in
  // backward_input, the heads' at forward time. Together they equal backward() (the weight sums in
  // another order only). `st` must live until backward_weight.
  // `layers` as for backward(); backward_weight then covers the same layers.
  void backward_input(ChunkState& st, const GptParams& p, GptParams& grads, const float* dout, float* dinput,
                      int layers = -1);
  void backward_weight(ChunkState& st, const GptParams& p, GptParams& grads);

  Backend& backend() { return *be_; }
  void set_backend(Backend* be) { be_ = be; }

  // Per-layer gradient readiness (overlapped DP reduction): called with the backbone layer index
  // (model numbering) right after backward() — not backward_input(), whose matmul weight
  // gradients are still missing — or backward_weight() has accumulated that layer's gradients for
  // this call, top layer first (a layer a truncated backward skips: at the start of the call, as
  // it gets nothing). Null → none. The runtime sets it around a chunk's last backward
  // step of the iteration, when those gradients are final.
  void set_layer_grads_hook(std::function<void(int layer)> hook) { layer_hook_ = std::move(hook); }
  // Called between the big operations of a layer's forward and backward (after the matmuls and
  // the attention core) and after each layer and head of the forward: lets the caller drive the
  // progress of communication in flight (MPI progresses non-blocking messages and collectives
  // only inside MPI calls). Null → none.
  void set_progress_hook(std::function<void()> hook) { progress_hook_ = std::move(hook); }

  // Tensor parallelism over `tensor` (this stage's tp group; not owned; null → none). The chunk's
  // config must be local_config(full, tensor->size()). With TP, `logits` of forward() receive this
  // rank's vocabulary shard (B,T,Vp_local). sequence_parallel: see the header comment (B·T must
  // divide by the group size).
  Status set_tensor_parallel(Communicator* tensor, double timeout_s, bool sequence_parallel = false);
  // Rows of the residual stream this rank holds for N tokens (N / tp with sequence parallelism).
  int rows(int N) const { return sp_ ? N / tp_ : N; }
  // The first failed collective of forward/backward (ok otherwise). After a failure the chunk
  // makes no further collective calls, so the caller must check it after every call with TP.
  const Status& comm_status() const { return tp_status_; }

 private:
  void layer_forward(LayerActs& a, const LayerParams& lp, const float* inp, int B, int T);
  void layer_backward(LayerActs& a, const LayerParams& lp, LayerParams& lg, const float* inp, const float* dout,
                      float* dinp, int B, int T);
  // Runs a head on x (B,T,C): loss (mean CE), and with dx != null accumulates the weighted gradient.
  float head(int exit_index, const GptParams& p, GptParams& g, const float* x, const int32_t* targets, int B, int T,
             float weight, float* dx, Tensor* logits);

  GptConfig cfg_;
  int first_ = 0, count_ = 0;
  bool has_embedding_ = false, has_final_ = false;
  std::vector<int> exits_;
  Backend* be_ = nullptr;
  // Tensor parallelism (set_tensor_parallel).
  Communicator* tp_comm_ = nullptr;
  double tp_timeout_ = 60;
  int tp_ = 1, tp_rank_ = 0;
  bool sp_ = false;
  bool defer_w_ = false;                 // inside backward_input
  std::function<void(int)> layer_hook_;  // set_layer_grads_hook
  std::function<void()> progress_hook_;  // set_progress_hook
  void progress() {
    if (progress_hook_) progress_hook_();
  }
  float* weight_grad(Tensor& g) { return defer_w_ ? nullptr : g.ptr(); }
  void keep_for_weight(Tensor& t, const float* src, size_t n);
  int vocab_begin_ = 0, vocab_valid_ = 0;  // global id of local vocab row 0; local rows < V
  Status tp_status_;
  // Collectives (no-ops at tp 1; skipped after a failure, see comm_status()).
  void tp_all_reduce(float* p, size_t n);
  const float* sp_gather(const float* shard, Tensor& full, int N);  // rows(N) rows → N rows in `full`
  void sp_scatter(const float* full, float* shard, int N);          // Σ over the group, this rank's rows
  const float* row_parallel_bias(const Tensor& b) const;            // the bias on tp rank 0 only
  // out (rows(N), C) = Σ_group in (N, K) · Wᵀ + b.
  void row_parallel_forward(float* out, const float* in, const Tensor& W, const Tensor& b, int N, int K);
  // The summed input gradient (rows(N), C) of a column-parallel block from this rank's part `full` (N, C).
  const float* column_parallel_input_grad(Tensor& full, int N);
  struct NormGrads {
    float* w;
    float* b;
  };
  struct NormGradsTarget {
    NormGrads g;
    Tensor* w;
    Tensor* b;
  };
  NormGrads norm_grads(Tensor& w, Tensor& b, int slot);  // where norm_backward writes (scratch with SP)
  void finish_norm_grads(std::initializer_list<NormGradsTarget> targets);
  void tp_classifier(float* dx, Tensor& dW, Tensor* logits, const float* x, const Tensor& W, const int32_t* targets,
                     int N, float grad_scale);
  void tp_embedding_forward(float* out, const GptParams& p, const int32_t* tokens, int B, int T);
  void tp_embedding_backward(GptParams& g, const float* d, const int32_t* tokens, int B, int T);
  void local_tokens(const int32_t* tokens, int N);  // fills s_tok_ / s_tok_out_
  std::vector<int32_t> s_tok_;
  std::vector<char> s_tok_out_;
  Tensor s_logits_, s_stats_, s_gather_, s_demb_, s_gfull_, s_hn_full_, s_hm_full_, s_part_, s_rs_, s_ng_, s_dn_r_;
  // Scratch reused across calls (not per microbatch).
  LayerActs head_block_;
  Tensor s_norm_, s_mean_, s_rstd_, s_fc_, s_act_, s_mlp_, s_losses_, s_dh_, s_dn_, s_dfc_, s_dact_, s_tmp_;
  Tensor d_ln_, d_qkv_, d_att_, d_res2_, d_fc_, d_act_, d_res_, d_res_next_;
};

}  // namespace eellm::exec
