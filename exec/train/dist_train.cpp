// run_distributed_training: `eellm train` under mpirun (see runtime.h). Every rank reads the same
// token stream, so the global batch is split by DP rank without any data messages: replica d takes
// microbatches [d·m, (d+1)·m) of each global batch of m·dp microbatches. Checkpoints are the
// distributed ones of exec/io/dist_checkpoint.h: each rank contributes its owned tensors (its TP
// shard of them) and its GradSync AdamW moment slices.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <thread>

#include "exec/io/data.h"
#include "exec/io/dist_checkpoint.h"
#include "exec/train/preempt.h"
#include "exec/train/runtime.h"
#ifdef EELLM_HAVE_MPI
#include "exec/comm/mpi/mpi_comm.h"
#endif
#if defined(EELLM_HAVE_MPI) && defined(EELLM_HAVE_CUDA)
#include "exec/comm/nccl/nccl_comm.h"
#endif
#include "sim/trace.h"

namespace eellm::exec {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

// What this rank holds, as the checkpoint sees it: owned tensors (TP shards) and moment slices.
struct RankView {
  std::vector<CkptParam> params;
  std::vector<CkptMoments> moments;
};
StatusOr<RankView> rank_view(PipelineRuntime& rt, const GptConfig& full, const Layout& layout, int tp_rank) {
  EELLM_ASSIGN_OR_RETURN(GradSync * gs, rt.grad_sync());
  RankView v;
  std::vector<ShardSpec> specs;
  std::vector<std::vector<int64_t>> shapes;
  for (const SyncTensor& t : gs->tensors()) {
    ShardSpec spec;  // tp 1: the whole tensor
    if (layout.tp > 1) {
      EELLM_ASSIGN_OR_RETURN(spec, shard_spec(full, t.name, layout.tp, tp_rank));
    }
    EELLM_ASSIGN_OR_RETURN(std::vector<int64_t> shape, full_shape_of(full, t.name, t.param->shape, layout.tp));
    v.params.push_back({t.name, shape, spec, t.param});
    specs.push_back(spec);
    shapes.push_back(shape);
  }
  for (const GradSync::MomentSlice& ms : gs->moment_slices()) {
    const SyncTensor& t = gs->tensors()[ms.tensor];
    v.moments.push_back({t.name, shapes[ms.tensor], specs[ms.tensor], t.param->shape, ms.begin, ms.end, ms.m, ms.v});
  }
  return v;
}

[[noreturn]] void fail(Communicator& world, const Status& st) {
  std::fprintf(stderr, "eellm train: %s\n", st.message().c_str());
  std::fflush(stderr);
  world.abort(1);
  std::_Exit(1);  // abort() never returns; this keeps the compiler's noreturn analysis satisfied
}

// The run's configuration, printed once by world rank 0.
void print_run_header(std::ostream& out, const Scenario& scenario, const Layout& layout, const PipelineRuntime& rt,
                      const std::string& source) {
  const int B = scenario.training.micro_batch_size, T = scenario.model.seq_length;
  out << "eellm train (distributed): " << scenario.name << "\n"
      << "  world " << layout.tp * layout.pp * layout.dp << " = tp " << layout.tp << " × pp " << layout.pp << " × dp "
      << layout.dp << (layout.vp > 1 ? ", " + str(layout.vp) + " chunks per stage" : "") << "\n"
      << "  schedule " << to_string(rt.schedule().kind) << ", " << layout.num_microbatches << " microbatches of " << B
      << "×" << T << " per replica per iteration\n"
      << "  data " << source << "\n";
  for (int s = 0; s < layout.num_virtual_stages(); ++s) {
    const ChunkLayout& c = layout.chunks[static_cast<size_t>(s)];
    out << "  stage " << c.stage << " chunk " << c.chunk << ": layers " << c.first_layer + 1 << "-"
        << c.first_layer + c.num_layers << (c.has_embedding ? ", embedding" : "")
        << (c.has_final_head ? ", final head" : "") << (c.exits.empty() ? "" : ", exits") << "\n";
  }
}

// One iteration's line on the log (world rank 0: `out` non-null) and in the metrics file.
void log_iteration(std::ostream* out, std::ofstream& metrics, const PipelineRuntime& rt, const IterationResult& r,
                   int it, double secs) {
  if (out) {
    char line[256];
    std::snprintf(line, sizeof line, "iter %d | loss %.4f | final %.4f", it + 1, r.total_loss, r.final_loss);
    *out << line;
    for (size_t e = 0; e < r.exit_loss.size(); ++e) {
      std::snprintf(line, sizeof line, " | exit@%d %.4f", rt.config().exit_layer[e], r.exit_loss[e]);
      *out << line;
    }
    std::snprintf(line, sizeof line, " | grad norm %.3f | lr %.2e | %.0f ms\n", r.grad_norm, r.lr, secs * 1e3);
    *out << line << std::flush;
  }
  if (metrics.is_open()) {
    metrics << "{\"iter\":" << it + 1 << ",\"loss\":" << r.total_loss << ",\"final\":" << r.final_loss;
    for (size_t e = 0; e < r.exit_loss.size(); ++e) metrics << ",\"exit" << e << "\":" << r.exit_loss[e];
    metrics << ",\"grad_norm\":" << r.grad_norm << ",\"lr\":" << r.lr << ",\"seconds\":" << secs << "}\n";
  }
}

}  // namespace

Status run_distributed_training(const Scenario& scenario, Communicator& world, const DistributedTrainOptions& options,
                                std::ostream* log) {
  EELLM_ASSIGN_OR_RETURN(Layout layout, derive_layout(scenario));
  const ParallelDims dims{layout.tp, layout.pp, layout.dp};
  if (world.size() != dims.world())
    return Status::invalid_argument("mpirun started " + str(world.size()) + " processes but the scenario needs tp (" +
                                    str(dims.tp) + ") × pp (" + str(dims.pp) + ") × dp (" + str(dims.dp) +
                                    ") = " + str(dims.world()) + "; run mpirun -np " + str(dims.world()) +
                                    " or set parallel.world_size / data_parallel_size");
  EELLM_ASSIGN_OR_RETURN(Communicators comms, make_communicators(world, dims, embedding_group_ranks(scenario, layout)));
  RuntimeOptions ro = options.runtime;
  if (ro.recv_timeout_s <= 0) ro.recv_timeout_s = scenario.execution.recv_timeout_s;
  EELLM_ASSIGN_OR_RETURN(auto rt, PipelineRuntime::create(scenario, comms, ro));
  const bool root = world.rank() == 0;
  std::ostream* out = root ? log : nullptr;

  std::vector<int32_t> tokens;
  const std::string path = !options.data_path.empty() ? options.data_path : scenario.training.data_path;
  std::string source = path;
  if (!path.empty()) {
    EELLM_ASSIGN_OR_RETURN(tokens, read_token_file(path));
  } else {
    EELLM_ASSIGN_OR_RETURN(std::string text, read_corpus(default_corpus_files()));
    tokens = encode_bytes(text);
    source = "default corpus (Debian fortunes, byte-level)";
  }
  const int B = scenario.training.micro_batch_size, T = scenario.model.seq_length;
  auto loader = DataLoader::create(std::move(tokens), rt->config().V, T, scenario.training.valid_fraction,
                                   scenario.training.seed);
  if (!loader.is_ok()) return loader.status().with_context(source);

  const int m = layout.num_microbatches;
  const int steps = options.steps >= 0 ? options.steps : scenario.training.train_iters;
  EELLM_ASSIGN_OR_RETURN(GptConfig full_cfg, make_gpt_config(scenario));
  const int tp_rank = comms.groups.coords.tp;
  const double timeout = ro.recv_timeout_s;
  int start = 0;
  if (!options.resume_dir.empty()) {
    TrainProgress p;
    Status st;
    auto view = rank_view(*rt, full_cfg, layout, tp_rank);
    st = view.is_ok() ? load_distributed_checkpoint(options.resume_dir, full_cfg, view->params, view->moments, &p,
                                                    options.resume_read)
                      : view.status();
    EELLM_RETURN_IF_ERROR(agree_on_status(world, st.with_context("resuming from " + options.resume_dir), timeout));
    start = p.iteration;
    loader->set_position(p.data);
    if (out)
      *out << "  resumed from " << options.resume_dir << " at iteration " << start << " (data epoch " << p.data.epoch
           << ", window " << p.data.index << ")\n";
  }
  if (out) print_run_header(*out, scenario, layout, *rt, source);
  std::ofstream metrics;
  if (root && !options.metrics_path.empty()) {
    metrics.open(options.metrics_path, std::ios::app);
    if (!metrics) return Status::io_error("cannot open metrics file " + options.metrics_path);
  }
  const size_t mb_tokens = static_cast<size_t>(B) * T;
  std::vector<int32_t> all_in(mb_tokens), all_tgt(mb_tokens), in(mb_tokens * m), tgt(mb_tokens * m);
  const int dp_rank = comms.groups.coords.dp;
  for (int it = start; it < steps; ++it) {
    for (int g = 0; g < m * dims.dp; ++g) {
      loader->next_train(B, all_in.data(), all_tgt.data());
      if (g / m != dp_rank) continue;
      std::copy(all_in.begin(), all_in.end(), in.begin() + static_cast<std::ptrdiff_t>((g % m) * mb_tokens));
      std::copy(all_tgt.begin(), all_tgt.end(), tgt.begin() + static_cast<std::ptrdiff_t>((g % m) * mb_tokens));
    }
    rt->set_record_timeline(!options.trace_path.empty() && it + 1 == steps);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = rt->run_iteration(in, tgt, it);
    if (!r.is_ok()) fail(world, r.status());
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log_iteration(out, metrics, *rt, *r, it, secs);
    if (root && !r->timeline.events.empty() && !options.trace_path.empty()) {
      TraceOptions to;
      to.title = scenario.name + " (measured, iteration " + str(it + 1) + ")";
      EELLM_RETURN_IF_ERROR(write_trace(r->timeline, options.trace_path, to));
      if (out) *out << "measured trace: " << options.trace_path << "\n";
    }
    const int done = it + 1;
    bool preempted = false;  // SIGUSR1/SIGTERM on any rank (exec/train/preempt.h): all save and stop here
    if (done != steps) {
      EELLM_ASSIGN_OR_RETURN(preempted, agree_on_preempt(world, timeout));
    }
    if (!options.save_dir.empty() &&
        (done == steps || preempted || (options.save_interval > 0 && done % options.save_interval == 0))) {
      EELLM_ASSIGN_OR_RETURN(RankView view, rank_view(*rt, full_cfg, layout, tp_rank));
      TrainProgress p;
      p.iteration = done, p.data = loader->position(), p.seed = scenario.training.seed;
      CkptLayout cl{layout.tp, layout.pp, layout.dp, layout.vp,
                    scenario.parallel.use_distributed_optimizer && layout.dp > 1};
      EELLM_RETURN_IF_ERROR(save_distributed_checkpoint(options.save_dir, world, scenario, full_cfg, cl, view.params,
                                                        view.moments, p, timeout));
      if (out) *out << "saved checkpoint " << options.save_dir << "/" << checkpoint_iter_name(done) << "\n";
    }
    if (preempted) return preempted_status(done, options.save_dir);
  }
  return Status::ok();
}

bool launched_with_mpi() {
#ifdef EELLM_HAVE_MPI
  return launched_by_mpi();
#else
  return false;
#endif
}

#ifdef EELLM_HAVE_MPI
// EELLM_COMM_PROGRESS: `poll` (default) drives the sends in flight between layers, `off` only between
// instructions (RuntimeOptions::progress_polling; to measure what the polling changes). False: bad value.
static bool progress_from_env(RuntimeOptions& o, int world_rank) {
  const char* v = std::getenv("EELLM_COMM_PROGRESS");
  const std::string value = v ? v : "poll";
  if (value != "poll" && value != "off") {
    if (world_rank == 0)
      std::fprintf(stderr, "eellm train: EELLM_COMM_PROGRESS is '%s'; it must be 'poll' or 'off'\n", v);
    return false;
  }
  o.progress_polling = value == "poll";
  return true;
}
#endif

int train_distributed_main(const Scenario& scenario, const DistributedTrainOptions& options, std::ostream& log) {
#ifdef EELLM_HAVE_MPI
  auto env = MpiEnvironment::init(nullptr, nullptr);
  if (!env.is_ok()) {
    std::fprintf(stderr, "eellm train: %s\n", env.status().to_string().c_str());
    return 1;
  }
  Communicator& world = (*env)->world();
  DistributedTrainOptions o = options;
  if (o.runtime.recv_timeout_s <= 0) o.runtime.recv_timeout_s = scenario.execution.recv_timeout_s;
  if (o.runtime.num_threads <= 0) o.runtime.num_threads = scenario.execution.num_threads;
  if (o.runtime.num_threads <= 0) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks_here = local ? std::max(1, std::atoi(local)) : 1;
    o.runtime.num_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here);
  }
  if (!progress_from_env(o.runtime, world.rank())) return 1;
  Communicator* comm = &world;
#ifdef EELLM_HAVE_CUDA
  // GPU ranks talk over NCCL (bootstrapped over MPI; its subgroups are ncclCommSplits), not over
  // MPI through host copies. EELLM_DIST_COMM=mpi keeps MPI (a fallback while NCCL is unverified).
  std::unique_ptr<Communicator> nccl;  // after env: destroyed before MPI is finalised
  const char* forced = std::getenv("EELLM_DIST_COMM");
  const bool use_mpi = forced && std::string(forced) == "mpi";
  if (forced && !use_mpi && std::string(forced) != "nccl") {
    if (world.rank() == 0)
      std::fprintf(stderr, "eellm train: EELLM_DIST_COMM is '%s'; it must be 'nccl' or 'mpi'\n", forced);
    return 1;
  }
  if (scenario.execution.device == ::eellm::DeviceKind::kCUDA && !use_mpi) {
    auto c = make_nccl_communicator(world, "world (NCCL)", o.runtime.recv_timeout_s);
    if (!c.is_ok()) {
      std::fprintf(stderr,
                   "eellm train: rank %d: creating the NCCL communicator for execution.device cuda: %s "
                   "(EELLM_DIST_COMM=mpi runs over MPI instead)\n",
                   world.rank(), c.status().to_string().c_str());
      world.abort(1);
      return 1;
    }
    nccl = std::move(*c);
    comm = nccl.get();
  }
#else
  if (const char* forced = std::getenv("EELLM_DIST_COMM"); forced && std::string(forced) == "nccl") {
    if (world.rank() == 0)
      std::fprintf(stderr,
                   "eellm train: EELLM_DIST_COMM=nccl but this build has no CUDA/NCCL "
                   "(configure with EELLM_CUDA=ON on a machine with the CUDA toolkit and NCCL)\n");
    return 1;
  }
#endif
  const Status st = run_distributed_training(scenario, *comm, o, &log);
  if (!st.is_ok()) {
    if (world.rank() == 0) std::fprintf(stderr, "eellm train: %s\n", st.to_string().c_str());
    return st.is_cancelled() ? kPreemptedExitCode : 1;
  }
  return 0;
#else
  (void)scenario, (void)options, (void)log;
  std::fprintf(stderr, "eellm train: this build has no MPI (configure with EELLM_MPI=ON and Open MPI installed)\n");
  return 1;
#endif
}

}  // namespace eellm::exec
