// Pipeline-based early-exit generation over MPI ranks (see pipeline_generate.h for the protocol).
#include "exec/generate/pipeline_generate.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "model/parse.h"

#ifdef EELLM_HAVE_MPI
#include "exec/comm/mpi/mpi_comm.h"
#endif

namespace eellm::exec {
namespace {

constexpr int kTagRows = 1, kTagDecision = 2;
enum Kind : int32_t { kPrefill = 1, kStep = 2, kFinish = 3 };

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One rank's stage: its layers, its exits and the decoder whose cache holds their K/V.
class Stage {
 public:
  Stage(const GptConfig& cfg, const GptParams& params, Backend& be, const PipelineStages& st, const GenerateOptions& o,
        Communicator& comm, double timeout, int batch)
      : cfg_(cfg),
        o_(o),
        st_(st),
        comm_(comm),
        timeout_(timeout),
        B_(batch),
        s_(comm.rank()),
        dec_(cfg, params, be, batch) {
    for (int e : active_exits(cfg, o))
      if (st.exit_stage[static_cast<size_t>(e)] == s_) exits_.push_back(e);
    l0_ = st.first_layer[static_cast<size_t>(s_)];
    l1_ = st.first_layer[static_cast<size_t>(s_) + 1];
  }

  Decoder& decoder() { return dec_; }
  bool first() const { return s_ == 0; }
  bool last() const { return s_ + 1 == st_.pp(); }

  // Runs this stage's layers on `rows` (residuals at depth l0 in the decoder's store). With
  // heads = true, evaluates the stage's exits (and on the last stage the final head) for rows not
  // yet decided; their (row index, head) go to `dec_rows` and the logits rows to `dec_logits`.
  void run(const std::vector<DecodeRow>& rows, std::vector<int32_t>& decided, bool heads,
           std::vector<std::pair<int, int>>& dec_rows, std::vector<float>& dec_logits) {
    const int C = cfg_.C, Vp = cfg_.Vp, R = static_cast<int>(rows.size());
    for (int depth = l0_; depth <= l1_; ++depth) {
      for (int e : exits_) {
        if (cfg_.exit_depth[static_cast<size_t>(e)] != depth) continue;
        std::vector<int> idx;  // undecided rows
        for (int r = 0; r < R; ++r)
          if (!decided[static_cast<size_t>(r)]) idx.push_back(r);
        x_.resize(static_cast<size_t>(R) * C);
        if (cfg_.exit_block) dec_.exit_block(e, rows, x_.data());  // fills the block's K/V for every row
        if (!heads || idx.empty()) continue;
        hx_.resize(idx.size() * static_cast<size_t>(C));
        for (size_t i = 0; i < idx.size(); ++i) {
          const DecodeRow row = rows[static_cast<size_t>(idx[i])];
          const float* src = cfg_.exit_block ? x_.data() + static_cast<size_t>(idx[i]) * C : dec_.resid(row.b, row.pos);
          std::copy_n(src, C, hx_.data() + i * static_cast<size_t>(C));
        }
        logits_.resize(idx.size() * static_cast<size_t>(Vp));
        dec_.head(e, hx_.data(), static_cast<int>(idx.size()), logits_.data());
        for (size_t i = 0; i < idx.size(); ++i) {
          const float* lg = logits_.data() + i * static_cast<size_t>(Vp);
          if (confidence_score(o_.confidence, lg, cfg_.V) < o_.threshold) continue;
          decided[static_cast<size_t>(idx[i])] = 1;
          dec_rows.emplace_back(idx[i], e);
          dec_logits.insert(dec_logits.end(), lg, lg + Vp);
        }
      }
      if (depth < l1_) dec_.layer(depth, rows);
    }
    if (!heads || !last()) return;
    std::vector<int> idx;
    for (int r = 0; r < R; ++r)
      if (!decided[static_cast<size_t>(r)]) idx.push_back(r);
    if (idx.empty()) return;
    hx_.resize(idx.size() * static_cast<size_t>(C));
    for (size_t i = 0; i < idx.size(); ++i) {
      const DecodeRow row = rows[static_cast<size_t>(idx[i])];
      std::copy_n(dec_.resid(row.b, row.pos), C, hx_.data() + i * static_cast<size_t>(C));
    }
    logits_.resize(idx.size() * static_cast<size_t>(Vp));
    dec_.head(-1, hx_.data(), static_cast<int>(idx.size()), logits_.data());
    for (size_t i = 0; i < idx.size(); ++i) {
      decided[static_cast<size_t>(idx[i])] = 1;
      dec_rows.emplace_back(idx[i], cfg_.num_exits());
      dec_logits.insert(dec_logits.end(), logits_.data() + i * static_cast<size_t>(Vp),
                        logits_.data() + (i + 1) * static_cast<size_t>(Vp));
    }
  }

  // Sends the rows (header + residuals at depth l1) to stage s+1.
  Status forward(int32_t kind, const std::vector<DecodeRow>& rows, const std::vector<int32_t>& decided) {
    std::vector<int32_t> hdr(static_cast<size_t>(2 + 3 * B_), 0);
    hdr[0] = kind, hdr[1] = static_cast<int32_t>(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      hdr[2 + 3 * r] = rows[r].b, hdr[3 + 3 * r] = rows[r].pos, hdr[4 + 3 * r] = decided[r];
    }
    EELLM_RETURN_IF_ERROR(comm_.send(hdr.data(), hdr.size() * sizeof(int32_t), s_ + 1, kTagRows));
    if (rows.empty()) return Status::ok();
    buf_.resize(rows.size() * static_cast<size_t>(cfg_.C));
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(dec_.resid(rows[r].b, rows[r].pos), cfg_.C, buf_.data() + r * static_cast<size_t>(cfg_.C));
    return comm_.send(buf_.data(), buf_.size() * sizeof(float), s_ + 1, kTagRows);
  }

  // Receives rows from stage s−1 into the residual store; returns the kind.
  StatusOr<int32_t> receive(std::vector<DecodeRow>& rows, std::vector<int32_t>& decided) {
    std::vector<int32_t> hdr(static_cast<size_t>(2 + 3 * B_), 0);
    EELLM_RETURN_IF_ERROR(comm_.recv(hdr.data(), hdr.size() * sizeof(int32_t), s_ - 1, kTagRows, timeout_));
    const int R = hdr[1];
    if (R < 0 || R > B_ * cfg_.max_T)
      return Status::internal("pipeline generation: stage " + std::to_string(s_) + " received a bad row count " +
                              std::to_string(R));
    rows.clear(), decided.clear();
    if (hdr[0] == kFinish) return hdr[0];
    // Prefill carries whole prompts (more than B rows): its header lists no rows, they follow.
    const bool prefill = hdr[0] == kPrefill;
    if (prefill) {
      std::vector<int32_t> idx(static_cast<size_t>(2 * R));
      EELLM_RETURN_IF_ERROR(comm_.recv(idx.data(), idx.size() * sizeof(int32_t), s_ - 1, kTagRows, timeout_));
      for (int r = 0; r < R; ++r)
        rows.push_back({idx[static_cast<size_t>(2 * r)], idx[static_cast<size_t>(2 * r + 1)]});
      decided.assign(static_cast<size_t>(R), 1);
    } else {
      for (int r = 0; r < R; ++r) {
        rows.push_back({hdr[static_cast<size_t>(2 + 3 * r)], hdr[static_cast<size_t>(3 + 3 * r)]});
        decided.push_back(hdr[static_cast<size_t>(4 + 3 * r)]);
      }
    }
    if (R == 0) return hdr[0];
    buf_.resize(static_cast<size_t>(R) * cfg_.C);
    EELLM_RETURN_IF_ERROR(comm_.recv(buf_.data(), buf_.size() * sizeof(float), s_ - 1, kTagRows, timeout_));
    for (int r = 0; r < R; ++r)
      std::copy_n(buf_.data() + static_cast<size_t>(r) * cfg_.C, cfg_.C,
                  dec_.resid(rows[static_cast<size_t>(r)].b, rows[static_cast<size_t>(r)].pos));
    return hdr[0];
  }

  // Prefill rows can exceed B, so their (seq, pos) list goes in a second message after the header.
  Status forward_prefill(const std::vector<DecodeRow>& rows) {
    std::vector<int32_t> hdr(static_cast<size_t>(2 + 3 * B_), 0), idx;
    hdr[0] = kPrefill, hdr[1] = static_cast<int32_t>(rows.size());
    for (const DecodeRow& r : rows) idx.push_back(r.b), idx.push_back(r.pos);
    EELLM_RETURN_IF_ERROR(comm_.send(hdr.data(), hdr.size() * sizeof(int32_t), s_ + 1, kTagRows));
    EELLM_RETURN_IF_ERROR(comm_.send(idx.data(), idx.size() * sizeof(int32_t), s_ + 1, kTagRows));
    if (rows.empty()) return Status::ok();
    buf_.resize(rows.size() * static_cast<size_t>(cfg_.C));
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(dec_.resid(rows[r].b, rows[r].pos), cfg_.C, buf_.data() + r * static_cast<size_t>(cfg_.C));
    return comm_.send(buf_.data(), buf_.size() * sizeof(float), s_ + 1, kTagRows);
  }

  Status send_decision(const std::vector<DecodeRow>& rows, const std::vector<std::pair<int, int>>& dec_rows,
                       const std::vector<float>& dec_logits) {
    std::vector<int32_t> hdr(static_cast<size_t>(1 + 2 * B_), 0);
    hdr[0] = static_cast<int32_t>(dec_rows.size());
    for (size_t i = 0; i < dec_rows.size(); ++i)
      hdr[1 + 2 * i] = rows[static_cast<size_t>(dec_rows[i].first)].b, hdr[2 + 2 * i] = dec_rows[i].second;
    EELLM_RETURN_IF_ERROR(comm_.send(hdr.data(), hdr.size() * sizeof(int32_t), 0, kTagDecision));
    if (dec_rows.empty()) return Status::ok();
    return comm_.send(dec_logits.data(), dec_logits.size() * sizeof(float), 0, kTagDecision);
  }

  // Stage 0: one decision message from `from`; appends (seq, head) and logits.
  Status receive_decision(int from, std::vector<std::pair<int, int>>& seq_head, std::vector<float>& logits) {
    std::vector<int32_t> hdr(static_cast<size_t>(1 + 2 * B_), 0);
    EELLM_RETURN_IF_ERROR(comm_.recv(hdr.data(), hdr.size() * sizeof(int32_t), from, kTagDecision, timeout_));
    const int n = hdr[0];
    if (n < 0 || n > B_)
      return Status::internal("pipeline generation: bad decision count " + std::to_string(n) + " from stage " +
                              std::to_string(from));
    if (n == 0) return Status::ok();
    for (int i = 0; i < n; ++i)
      seq_head.emplace_back(hdr[static_cast<size_t>(1 + 2 * i)], hdr[static_cast<size_t>(2 + 2 * i)]);
    const size_t off = logits.size();
    logits.resize(off + static_cast<size_t>(n) * cfg_.Vp);
    return comm_.recv(logits.data() + off, static_cast<size_t>(n) * cfg_.Vp * sizeof(float), from, kTagDecision,
                      timeout_);
  }

  // Stages ≥ 1: process messages until the finish message.
  Status serve() {
    std::vector<DecodeRow> rows;
    std::vector<int32_t> decided;
    for (;;) {
      EELLM_ASSIGN_OR_RETURN(int32_t kind, receive(rows, decided));
      if (kind == kFinish) {
        if (!last()) EELLM_RETURN_IF_ERROR(forward(kFinish, {}, {}));
        return comm_.wait_sends(timeout_);
      }
      const bool any_open = std::find(decided.begin(), decided.end(), 0) != decided.end();
      std::vector<std::pair<int, int>> dec_rows;
      std::vector<float> dec_logits;
      run(rows, decided, kind == kStep, dec_rows, dec_logits);
      // Decide first, so stage 0 can go on while this stage forwards the rows.
      if (kind == kStep && any_open) EELLM_RETURN_IF_ERROR(send_decision(rows, dec_rows, dec_logits));
      if (!last()) EELLM_RETURN_IF_ERROR(kind == kPrefill ? forward_prefill(rows) : forward(kind, rows, decided));
    }
  }

 private:
  GptConfig cfg_;
  GenerateOptions o_;
  const PipelineStages& st_;
  Communicator& comm_;
  double timeout_;
  int B_, s_, l0_ = 0, l1_ = 0;
  Decoder dec_;
  std::vector<int> exits_;
  TensorData x_, hx_, logits_;  // backend memory
  std::vector<float> buf_;
};

}  // namespace

StatusOr<PipelineStages> even_pipeline_stages(const GptConfig& cfg, int pp) {
  if (pp < 1 || pp > cfg.L)
    return Status::invalid_argument("pipeline size " + std::to_string(pp) + " must lie in [1, num_layers = " +
                                    std::to_string(cfg.L) + "] (every stage holds at least one layer)");
  PipelineStages st;
  st.first_layer.push_back(0);
  for (int s = 0; s < pp; ++s) st.first_layer.push_back(st.first_layer.back() + cfg.L / pp + (s < cfg.L % pp ? 1 : 0));
  for (int e = 0; e < cfg.num_exits(); ++e) {
    const int layer0 = cfg.exit_layer[static_cast<size_t>(e)] - 1;  // the layer the head reads
    int s = 0;
    while (layer0 >= st.first_layer[static_cast<size_t>(s) + 1]) ++s;
    st.exit_stage.push_back(s);
  }
  return st;
}

StatusOr<PipelineStages> pipeline_stages(const Layout& layout, const GptConfig& cfg) {
  if (layout.vp != 1)
    return Status::invalid_argument("virtual_pipeline_model_parallel_size (" + std::to_string(layout.vp) +
                                    ") must be 1 for pipeline generation");
  if (layout.tp != 1)
    return Status::invalid_argument("tensor_model_parallel_size (" + std::to_string(layout.tp) +
                                    ") must be 1 for pipeline generation");
  if (static_cast<int>(layout.exits.size()) != cfg.num_exits())
    return Status::invalid_argument("the layout has " + std::to_string(layout.exits.size()) + " exits, the model " +
                                    std::to_string(cfg.num_exits()));
  PipelineStages st;
  for (int s = 0; s < layout.pp; ++s) st.first_layer.push_back(layout.chunk(s, 0).first_layer);
  st.first_layer.push_back(cfg.L);
  for (const ExitPlacement& x : layout.exits) st.exit_stage.push_back(x.stage);
  return st;
}

void keep_stage_params(const GptConfig& cfg, const PipelineStages& st, int stage, GptParams& params) {
  const int l0 = st.first_layer[static_cast<size_t>(stage)], l1 = st.first_layer[static_cast<size_t>(stage) + 1];
  for (int l = 0; l < cfg.L; ++l)
    if (l < l0 || l >= l1) params.layers[static_cast<size_t>(l)] = LayerParams{};
  bool needs_wte = stage == 0 || (stage + 1 == st.pp() && !cfg.untie_final);
  for (int e = 0; e < cfg.num_exits(); ++e) {
    if (st.exit_stage[static_cast<size_t>(e)] != stage)
      params.exits[static_cast<size_t>(e)] = ExitParams{};
    else if (!cfg.untie_exits)
      needs_wte = true;
  }
  if (!needs_wte) params.wte = Tensor{};
  if (stage != 0) params.wpe = Tensor{};
  if (stage + 1 != st.pp()) params.lnf_w = Tensor{}, params.lnf_b = Tensor{}, params.lm_head = Tensor{};
}

StatusOr<GenerateResult> generate_pipeline(const GptConfig& cfg, const GptParams& params, Backend& be,
                                           const PipelineStages& st, const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& o, Communicator& pipeline, double timeout_s) {
  GenerateOptions opts = o;
  opts.method = InferenceMethod::kRecompute;  // the option checks of the single-process method
  EELLM_RETURN_IF_ERROR(check_generate_options(cfg, opts));
  EELLM_RETURN_IF_ERROR(check_prompts(cfg, prompts));
  if (pipeline.size() != st.pp())
    return Status::invalid_argument("the pipeline group has " + std::to_string(pipeline.size()) +
                                    " ranks; the stage split has " + std::to_string(st.pp()) + " stages");
  const int B = static_cast<int>(prompts.size());
  Stage stage(cfg, params, be, st, o, pipeline, timeout_s, B);
  GenerateResult result;
  if (!stage.first()) {
    EELLM_RETURN_IF_ERROR(stage.serve());
    return result;
  }
  Decoder& dec = stage.decoder();
  std::vector<SequenceState> seq(static_cast<size_t>(B));
  GenerateStats stats;
  stats.head_counts.assign(static_cast<size_t>(cfg.num_exits() + 1), 0);
  std::vector<std::pair<int, int>> dec_rows;
  std::vector<float> dec_logits;

  // Prefill: every prompt position but the last through every stage (no heads).
  auto t0 = std::chrono::steady_clock::now();
  std::vector<DecodeRow> rows;
  for (int b = 0; b < B; ++b) {
    seq[static_cast<size_t>(b)].tokens = prompts[static_cast<size_t>(b)];
    seq[static_cast<size_t>(b)].rng.seed(o.seed + static_cast<uint64_t>(b));
    for (int p = 0; p + 1 < static_cast<int>(prompts[static_cast<size_t>(b)].size()); ++p) {
      dec.embed(b, p, prompts[static_cast<size_t>(b)][static_cast<size_t>(p)]);
      rows.push_back({b, p});
    }
  }
  std::vector<int32_t> decided(rows.size(), 1);
  stage.run(rows, decided, false, dec_rows, dec_logits);
  if (!stage.last()) EELLM_RETURN_IF_ERROR(stage.forward_prefill(rows));
  stats.prefill_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (;;) {
    rows.clear();
    for (int b = 0; b < B; ++b) {
      const SequenceState& s = seq[static_cast<size_t>(b)];
      if (s.done) continue;
      const int pos = static_cast<int>(s.tokens.size()) - 1;
      dec.embed(b, pos, s.tokens.back());
      rows.push_back({b, pos});
    }
    if (rows.empty()) break;
    decided.assign(rows.size(), 0);
    dec_rows.clear(), dec_logits.clear();
    stage.run(rows, decided, true, dec_rows, dec_logits);
    std::vector<std::pair<int, int>> seq_head;
    for (const auto& [r, head] : dec_rows) seq_head.emplace_back(rows[static_cast<size_t>(r)].b, head);
    if (!stage.last()) EELLM_RETURN_IF_ERROR(stage.forward(kStep, rows, decided));
    for (int from = 1; seq_head.size() < rows.size(); ++from) {
      if (from >= st.pp()) return Status::internal("pipeline generation: rows left undecided after the last stage");
      EELLM_RETURN_IF_ERROR(stage.receive_decision(from, seq_head, dec_logits));
    }
    for (size_t i = 0; i < seq_head.size(); ++i) {
      SequenceState& s = seq[static_cast<size_t>(seq_head[i].first)];
      const int32_t tok = pick_token(dec_logits.data() + i * static_cast<size_t>(cfg.Vp), cfg.V, o.sampling, s.rng);
      append_token(cfg, o, s, stats, tok, seq_head[i].second);
    }
  }
  stats.decode_s = seconds_since(t0);
  if (!stage.last()) EELLM_RETURN_IF_ERROR(stage.forward(kFinish, {}, {}));
  EELLM_RETURN_IF_ERROR(pipeline.wait_sends(timeout_s));
  for (const SequenceState& s : seq) result.sequences.push_back(s.out);
  result.stats = stats;
  if (stats.tokens > 0) {
    result.stats.avg_exit_layers = stats.avg_exit_layers / static_cast<double>(stats.tokens);
    result.stats.layers_per_token = cfg.L;
  }
  return result;
}

StatusOr<GenerateResult> generate_pipeline_mpi(GenerationModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                               const GenerateOptions& o, int threads, double timeout_s, int* rank) {
#ifdef EELLM_HAVE_MPI
  if (!launched_by_mpi())
    return Status::failed_precondition(
        "method pipeline runs one pipeline stage per MPI rank: start it as mpirun -np P eellm generate ... "
        "--method pipeline");
  EELLM_ASSIGN_OR_RETURN(std::unique_ptr<MpiEnvironment> env, MpiEnvironment::init(nullptr, nullptr));
  Communicator& world = env->world();
  *rank = world.rank();
  const int pp = world.size();
  PipelineStages st;
  Scenario sc = model.scenario;
  if (sc.parallel.pipeline_model_parallel_size == pp) {
    sc.parallel.tensor_model_parallel_size = 1, sc.parallel.virtual_pipeline_model_parallel_size = 1;
    sc.parallel.world_size = pp, sc.parallel.data_parallel_size = 1;
    EELLM_ASSIGN_OR_RETURN(Layout layout, derive_layout(sc));
    EELLM_ASSIGN_OR_RETURN(st, pipeline_stages(layout, model.config));
  } else {
    EELLM_ASSIGN_OR_RETURN(st, even_pipeline_stages(model.config, pp));
  }
  GenerateOptions checked = o;
  checked.method = InferenceMethod::kRecompute;                          // the single-process method's option checks
  EELLM_RETURN_IF_ERROR(check_generate_options(model.config, checked));  // same answer on every rank
  EELLM_RETURN_IF_ERROR(check_prompts(model.config, prompts));
  keep_stage_params(model.config, st, world.rank(), model.params);
  if (threads <= 0) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int ranks_here = 1;
    if (local) {
      EELLM_ASSIGN_OR_RETURN(ranks_here, parse_int("OMPI_COMM_WORLD_LOCAL_SIZE", local));
    }
    ranks_here = std::max(1, ranks_here);
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here);
  }
  auto be = make_cpu_backend(threads);
  auto r = generate_pipeline(model.config, model.params, *be, st, prompts, o, world, timeout_s);
  if (!r.is_ok()) {
    // Leave no rank waiting on a failed peer.
    std::fprintf(stderr, "eellm generate (rank %d): %s\n", world.rank(), r.status().to_string().c_str());
    world.abort(1);
  }
  return r;
#else
  (void)model, (void)prompts, (void)o, (void)threads, (void)timeout_s;
  *rank = 0;
  return Status::failed_precondition("method pipeline needs MPI, and this eellm was built without it");
#endif
}

}  // namespace eellm::exec
