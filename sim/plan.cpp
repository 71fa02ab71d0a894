// Planner search (see plan.h): enumerate → screen (rules, derive_layout, memory, closed form) →
// event-simulate the best → rank, Pareto front. Renderings are in plan_report.cpp.
#include "sim/plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#include "model/cost_model.h"
#include "model/fit.h"
#include "model/layout.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Compact form of a candidate: partitions and exit placements live in shared tables, so a space of
// millions of candidates costs a few dozen bytes each.
struct Cand {
  int32_t world = 1;
  int16_t tp = 1, pp = 1, vp = 1, mbs = 1;
  ScheduleKind schedule = ScheduleKind::k1F1B;
  RecomputeGranularity recompute = RecomputeGranularity::kNone;
  bool sp = false, dopt = false;
  int32_t partition = 0;  // index into Tables::partitions (0 = even)
  int32_t exits = 0;      // index into Tables::exits (0 = as given)
};

struct ExitConfig {
  std::vector<int> nums;
  bool pre = false;
};

struct Tables {
  std::vector<std::vector<int>> partitions{{}};  // [0] = even split
  std::vector<ExitConfig> exits;                 // [0] = the scenario's
  std::map<std::vector<int>, int32_t> partition_ids;
  std::map<std::pair<std::vector<int>, bool>, int32_t> exit_ids;
  int32_t partition_id(const std::vector<int>& p) {
    auto [it, added] = partition_ids.emplace(p, static_cast<int32_t>(partitions.size()));
    if (added) partitions.push_back(p);
    return it->second;
  }
  int32_t exit_id(const ExitConfig& e) {
    auto [it, added] = exit_ids.emplace(std::make_pair(e.nums, e.pre), static_cast<int32_t>(exits.size()));
    if (added) exits.push_back(e);
    return it->second;
  }
};

// Per-layer and head times (fwd + bwd + recompute, seconds) of one (tp, mbs, sp, recompute).
struct UnitCosts {
  bool ok = false;
  double layer = 0, embedding = 0, final_head = 0;
  std::vector<double> exits;  // per exit, in exit_layer_nums order
};

double total(const OpTimes& t) { return t.fwd + t.bwd(); }

// Times from a one-stage layout of the same model: every layer, head and exit on one chunk.
UnitCosts unit_costs(const Scenario& base, int tp, int mbs, bool sp, RecomputeGranularity r) {
  Scenario s = base;
  s.parallel.tensor_model_parallel_size = tp;
  s.parallel.pipeline_model_parallel_size = 1;
  s.parallel.virtual_pipeline_model_parallel_size = 1;
  s.parallel.world_size = tp;
  s.parallel.data_parallel_size = 0;
  s.parallel.layer_partition.clear();
  s.parallel.schedule = ScheduleKind::kNoPipelining;
  s.parallel.fill_explicit_bubbles = false;
  s.parallel.sequence_parallel = sp;
  s.parallel.recompute_granularity = r;
  s.training.micro_batch_size = mbs;
  s.training.global_batch_size = mbs;
  UnitCosts u;
  auto L = derive_layout(s);
  if (!L.is_ok()) return u;
  const CostModel cm(s, *L);
  const ChunkCosts c = cm.chunk(0);
  const int n = std::max(1, s.model.num_layers);
  u.layer = total(c.per_layer) + c.recompute_fwd / n;
  u.embedding = total(c.embedding);
  u.final_head = total(c.final_head);
  u.exits.assign(s.exits.exit_layer_nums.size(), 0.0);
  const ChunkLayout& cl = L->chunks[0];
  for (size_t k = 0; k < cl.exits.size() && k < c.exits.size(); ++k)
    u.exits[static_cast<size_t>(cl.exits[k])] = total(c.exits[k]);
  u.ok = true;
  return u;
}

// Min-max partition of `layers` into `v` chunks of ≥ 1 layer; exit k sits in the chunk holding
// 0-based layer q[k] (derive_layout's rule). O(v·layers²).
std::vector<int> balanced_partition(int layers, int v, const UnitCosts& u, const std::vector<int>& q) {
  const double inf = 1e300;
  auto cost = [&](int i, int j) {
    double c = (j - i) * u.layer;
    if (i == 0) c += u.embedding;
    if (j == layers) c += u.final_head;
    for (size_t k = 0; k < q.size(); ++k)
      if (q[k] >= i && q[k] < j) c += u.exits[k];
    return c;
  };
  std::vector<std::vector<double>> best(static_cast<size_t>(v + 1), std::vector<double>(static_cast<size_t>(layers + 1), inf));
  std::vector<std::vector<int>> from(static_cast<size_t>(v + 1), std::vector<int>(static_cast<size_t>(layers + 1), -1));
  best[0][0] = 0;
  for (int s = 1; s <= v; ++s)
    for (int j = s; j <= layers - (v - s); ++j)
      for (int i = s - 1; i < j; ++i) {
        if (best[static_cast<size_t>(s - 1)][static_cast<size_t>(i)] >= inf) continue;
        const double c = std::max(best[static_cast<size_t>(s - 1)][static_cast<size_t>(i)], cost(i, j));
        // Ties go to the later boundary: earlier stages hold more microbatches in flight under
        // 1F1B, so extra layers are cheaper in memory further down the pipeline.
        if (c < best[static_cast<size_t>(s)][static_cast<size_t>(j)] - 1e-15 ||
            (c <= best[static_cast<size_t>(s)][static_cast<size_t>(j)] + 1e-15 && i < from[static_cast<size_t>(s)][static_cast<size_t>(j)])) {
          best[static_cast<size_t>(s)][static_cast<size_t>(j)] = c;
          from[static_cast<size_t>(s)][static_cast<size_t>(j)] = i;
        }
      }
  std::vector<int> parts(static_cast<size_t>(v));
  int j = layers;
  for (int s = v; s >= 1; --s) {
    const int i = from[static_cast<size_t>(s)][static_cast<size_t>(j)];
    if (i < 0) return {};
    parts[static_cast<size_t>(s - 1)] = j - i;
    j = i;
  }
  return parts;
}

// Exits snapped to the nearest chunk boundary of `parts`: post-exits end the earlier chunk, or
// pre-exits start the later one. Empty nums when two exits collide.
ExitConfig snap_exits(const ExitSpec& e, const std::vector<int>& parts, bool pre) {
  std::vector<int> bounds;
  int acc = 0;
  for (size_t i = 0; i + 1 < parts.size(); ++i) bounds.push_back(acc += parts[i]);
  ExitConfig out;
  out.pre = pre;
  if (bounds.empty()) return out;
  for (int n : e.exit_layer_nums) {
    const int depth = e.pre_exit ? n - 1 : n;
    int b = bounds[0];
    for (int x : bounds)
      if (std::abs(x - depth) < std::abs(b - depth)) b = x;
    const int num = pre ? b + 1 : b;
    if (!out.nums.empty() && num <= out.nums.back()) return ExitConfig{{}, pre};
    out.nums.push_back(num);
  }
  return out;
}

std::vector<int> even_parts(int layers, int v) {
  if (v <= 0 || layers % v != 0) return {};
  return std::vector<int>(static_cast<size_t>(v), layers / v);
}

// Short key of a derive_layout message: its leading field name ("training.global_batch_size"),
// or the words before the first number ("number of microbatches").
std::string reason_key(const std::string& msg) {
  const size_t sp = msg.find(' ');
  const std::string first = msg.substr(0, sp);
  if (first.find('.') != std::string::npos) return first;
  const size_t cut = msg.find(" (");
  return msg.substr(0, std::min<size_t>(cut == std::string::npos ? msg.size() : cut, 48));
}

struct Budget {
  std::vector<int> worlds;
};

StatusOr<Budget> check_budget(const Scenario& base, const PlanOptions& o) {
  const int gpn = std::max(1, base.cluster.gpus_per_node);
  auto check = [&](int g, const char* what) -> Status {
    if (g <= 0) return Status::invalid_argument(std::string(what) + " (" + std::to_string(g) + ") must be a positive number of GPUs");
    if (g > gpn && g % gpn != 0)
      return Status::invalid_argument(std::string(what) + " (" + std::to_string(g) + ") spans more than one node of cluster '" +
                                      base.cluster.name + "' (" + std::to_string(gpn) +
                                      " GPUs per node) but is not a whole number of nodes; use a multiple of " +
                                      std::to_string(gpn) + " or at most " + std::to_string(gpn));
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(check(o.gpus, "--gpus"));
  Budget b;
  b.worlds.push_back(o.gpus);
  if (o.min_gpus > 0) {
    if (o.min_gpus > o.gpus)
      return Status::invalid_argument("--min-gpus (" + std::to_string(o.min_gpus) + ") exceeds --gpus (" + std::to_string(o.gpus) + ")");
    for (int g = o.gpus; g % 2 == 0 && g / 2 >= o.min_gpus;) {
      g /= 2;
      if (check(g, "scaled-down GPU count").is_ok()) b.worlds.push_back(g);
    }
  }
  return b;
}

std::vector<int> divisors_up_to(int n, int cap) {
  std::vector<int> d;
  for (int i = 1; i <= std::min(n, cap); ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// Enumerates in a fixed order, resolving partitions and exit variants into `tables`.
StatusOr<std::vector<Cand>> enumerate(const Scenario& base, const PlanOptions& o, Tables& tables) {
  EELLM_ASSIGN_OR_RETURN(Budget budget, check_budget(base, o));
  const ModelSpec& m = base.model;
  const bool has_exits = !base.exits.exit_layer_nums.empty();
  tables.exit_id(ExitConfig{base.exits.exit_layer_nums, base.exits.pre_exit});
  std::map<std::tuple<int, int, bool, int>, UnitCosts> unit_cache;
  std::vector<int> q;  // 0-based reading layer of each given exit
  for (int n : base.exits.exit_layer_nums) q.push_back(n - 1);
  std::vector<Cand> out;
  for (int world : budget.worlds) {
    std::vector<int> tps = o.tp_values;
    if (tps.empty())
      for (int t = 1; t <= std::min(world, std::max(1, m.num_attention_heads)); t *= 2) tps.push_back(t);
    for (int tp : tps) {
      if (tp <= 0 || world % tp != 0) continue;
      std::vector<int> pps = o.pp_values.empty() ? divisors_up_to(world / tp, world / tp) : o.pp_values;
      for (int pp : pps) {
        if (pp <= 0 || (world / tp) % pp != 0) continue;
        const int dp = world / (tp * pp);
        for (int mbs : o.micro_batch_values) {
          std::vector<std::pair<ScheduleKind, int>> scheds;
          if (pp == 1) {
            scheds.emplace_back(ScheduleKind::kNoPipelining, 1);
          } else {
            for (ScheduleKind k : o.schedules) {
              if (k == ScheduleKind::kInterleaved1F1B) {
                for (int vp : o.vp_values)
                  if (vp >= 2) scheds.emplace_back(k, vp);
              } else if (k == ScheduleKind::k1F1B || k == ScheduleKind::kEE1F1B) {
                scheds.emplace_back(has_exits ? ScheduleKind::kEE1F1B : ScheduleKind::k1F1B, 1);
              } else if (k == ScheduleKind::kEEFill) {
                if (has_exits) scheds.emplace_back(k, 1);
              } else if (k != ScheduleKind::kNoPipelining) {
                scheds.emplace_back(k, 1);
              }
            }
          }
          for (auto [kind, vp] : scheds) {
            const int nvs = pp * vp;
            for (RecomputeGranularity rc : o.recompute) {
              for (int sp = 0; sp <= (o.search_sequence_parallel && tp > 1 ? 1 : 0); ++sp) {
                // Partitions of this (nvs, unit costs): even (id 0) and the balanced one.
                std::vector<int32_t> parts{0};
                if (o.search_partition && nvs > 1 && nvs <= m.num_layers) {
                  auto key = std::make_tuple(tp, mbs, sp == 1, static_cast<int>(rc));
                  auto it = unit_cache.find(key);
                  if (it == unit_cache.end()) it = unit_cache.emplace(key, unit_costs(base, tp, mbs, sp == 1, rc)).first;
                  if (it->second.ok) {
                    std::vector<int> bal = balanced_partition(m.num_layers, nvs, it->second, q);
                    const std::vector<int> even = even_parts(m.num_layers, nvs);
                    if (!bal.empty() && bal != even) parts.push_back(tables.partition_id(bal));
                    // Neighbourhood: one layer moved across one boundary of the balanced split
                    // (trades a little time for memory on the early stages, or the reverse).
                    if (!bal.empty() && o.partition_neighbourhood)
                      for (size_t b = 0; b + 1 < bal.size(); ++b)
                        for (int delta : {-1, 1}) {
                          std::vector<int> q2 = bal;
                          q2[b] += delta;
                          q2[b + 1] -= delta;
                          if (q2[b] < 1 || q2[b + 1] < 1 || q2 == even) continue;
                          const int32_t id = tables.partition_id(q2);
                          if (std::find(parts.begin(), parts.end(), id) == parts.end()) parts.push_back(id);
                        }
                  }
                }
                for (int32_t part : parts) {
                  std::vector<int32_t> exit_vars{0};
                  if (o.movable_exits && has_exits && nvs > 1) {
                    const std::vector<int> pv = part == 0 ? even_parts(m.num_layers, nvs) : tables.partitions[static_cast<size_t>(part)];
                    if (!pv.empty())
                      for (bool pre : {false, true}) {
                        ExitConfig ec = snap_exits(base.exits, pv, pre);
                        if (ec.nums.empty()) continue;
                        if (ec.nums == base.exits.exit_layer_nums && pre == base.exits.pre_exit) continue;
                        exit_vars.push_back(tables.exit_id(ec));
                      }
                  }
                  for (int32_t ev : exit_vars)
                    for (int dopt = 0; dopt <= (o.search_distributed_optimizer && dp > 1 ? 1 : 0); ++dopt) {
                      Cand c;
                      c.world = world;
                      c.tp = static_cast<int16_t>(tp);
                      c.pp = static_cast<int16_t>(pp);
                      c.vp = static_cast<int16_t>(vp);
                      c.mbs = static_cast<int16_t>(mbs);
                      c.schedule = kind;
                      c.recompute = rc;
                      c.sp = sp == 1;
                      c.dopt = dopt == 1;
                      c.partition = part;
                      c.exits = ev;
                      out.push_back(c);
                    }
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

PlanCandidate materialize(const Cand& c, const Tables& t, int64_t index) {
  PlanCandidate p;
  p.world_size = c.world;
  p.tp = c.tp;
  p.pp = c.pp;
  p.vp = c.vp;
  p.dp = c.world / (c.tp * c.pp);
  p.micro_batch_size = c.mbs;
  p.schedule = c.schedule;
  p.recompute = c.recompute;
  p.sequence_parallel = c.sp;
  p.distributed_optimizer = c.dopt;
  p.layer_partition = t.partitions[static_cast<size_t>(c.partition)];
  p.balanced_partition = c.partition != 0;
  p.exit_layer_nums = t.exits[static_cast<size_t>(c.exits)].nums;
  p.pre_exit = t.exits[static_cast<size_t>(c.exits)].pre;
  p.exits_moved = c.exits != 0;
  p.index = index;
  return p;
}

// Writes a candidate into a scenario in place (the screening loop reuses one scenario per thread).
void write_candidate(Scenario& s, const Cand& c, const Tables& t, int gpus_per_node) {
  ParallelSpec& p = s.parallel;
  p.tensor_model_parallel_size = c.tp;
  p.pipeline_model_parallel_size = c.pp;
  p.virtual_pipeline_model_parallel_size = c.vp;
  p.world_size = c.world;
  p.data_parallel_size = 0;
  p.schedule = c.schedule;
  p.fill_explicit_bubbles = false;
  p.num_fill_warmup_microbatches = -1;
  p.num_fill_cooldown_microbatches = -1;
  p.recompute_granularity = c.recompute;
  p.sequence_parallel = c.sp;
  p.use_distributed_optimizer = c.dopt;
  p.layer_partition = t.partitions[static_cast<size_t>(c.partition)];
  s.exits.exit_layer_nums = t.exits[static_cast<size_t>(c.exits)].nums;
  s.exits.pre_exit = t.exits[static_cast<size_t>(c.exits)].pre;
  s.training.micro_batch_size = c.mbs;
  const int gpn = std::max(1, gpus_per_node);
  s.cluster.gpus_per_node = std::min(gpn, c.world);
  s.cluster.num_nodes = (c.world + s.cluster.gpus_per_node - 1) / s.cluster.gpus_per_node;
}

// Result of screening one candidate.
struct Screened {
  double est_s = -1;   // < 0: pruned
  double peak_GiB = 0;
};

struct ThreadTally {
  std::map<std::string, std::pair<int64_t, std::pair<int64_t, std::string>>> reasons;  // key → (count, (first index, msg))
  void add(const std::string& key, int64_t index, const std::string& msg) {
    auto& e = reasons[key];
    if (e.first == 0 || index < e.second.first) e.second = {index, msg};
    ++e.first;
  }
};

int thread_count(const PlanOptions& o) {
  if (o.threads > 0) return o.threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

// Runs f(i) for i in [0, n) on `threads` workers, reporting progress from this thread.
template <typename F>
void parallel_for(int64_t n, int threads, const PlanOptions& o, const char* phase, F&& f) {
  std::atomic<int64_t> next{0}, done{0};
  constexpr int64_t kBlock = 256;
  auto worker = [&](int tid) {
    for (;;) {
      const int64_t start = next.fetch_add(kBlock);
      if (start >= n) return;
      const int64_t end = std::min(n, start + kBlock);
      for (int64_t i = start; i < end; ++i) f(tid, i);
      done.fetch_add(end - start);
    }
  };
  std::vector<std::thread> pool;
  if (!o.progress) {
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
    worker(0);
  } else {
    // Every thread of the pool works; this one only reports.
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
    while (done.load() < n) {
      o.progress(phase, done.load(), n);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    o.progress(phase, n, n);
  }
  for (auto& th : pool) th.join();
}

}  // namespace

std::string to_string(const PlanCandidate& c) {
  std::ostringstream os;
  os << "tp" << c.tp << " pp" << c.pp << " dp" << c.dp << " vp" << c.vp << " mbs" << c.micro_batch_size << " "
     << to_string(c.schedule) << " " << to_string(c.recompute);
  if (c.sequence_parallel) os << " sp";
  if (c.distributed_optimizer) os << " dopt";
  if (!c.layer_partition.empty()) {
    os << " part=[";
    for (size_t i = 0; i < c.layer_partition.size(); ++i) os << (i ? "," : "") << c.layer_partition[i];
    os << "]";
  }
  if (c.exits_moved) {
    os << " exits=" << (c.pre_exit ? "pre" : "post") << "[";
    for (size_t i = 0; i < c.exit_layer_nums.size(); ++i) os << (i ? "," : "") << c.exit_layer_nums[i];
    os << "]";
  }
  return os.str();
}

Scenario apply_candidate(const Scenario& base, const PlanCandidate& pc) {
  Tables t;
  t.partitions = {pc.layer_partition};
  t.exits = {ExitConfig{pc.exit_layer_nums, pc.pre_exit}};
  Cand c;
  c.world = pc.world_size;
  c.tp = static_cast<int16_t>(pc.tp);
  c.pp = static_cast<int16_t>(pc.pp);
  c.vp = static_cast<int16_t>(pc.vp);
  c.mbs = static_cast<int16_t>(pc.micro_batch_size);
  c.schedule = pc.schedule;
  c.recompute = pc.recompute;
  c.sp = pc.sequence_parallel;
  c.dopt = pc.distributed_optimizer;
  Scenario s = base;
  write_candidate(s, c, t, base.cluster.gpus_per_node);
  s.source_path.clear();
  return s;
}

StatusOr<std::vector<PlanCandidate>> enumerate_candidates(const Scenario& base, const PlanOptions& options) {
  Tables t;
  EELLM_ASSIGN_OR_RETURN(std::vector<Cand> cands, enumerate(base, options, t));
  std::vector<PlanCandidate> out;
  out.reserve(cands.size());
  for (size_t i = 0; i < cands.size(); ++i) out.push_back(materialize(cands[i], t, static_cast<int64_t>(i)));
  return out;
}

StatusOr<PlanResult> plan(const Scenario& base, const PlanOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Tables tables;
  EELLM_ASSIGN_OR_RETURN(std::vector<Cand> cands, enumerate(base, o, tables));
  PlanResult res;
  res.candidates = static_cast<int64_t>(cands.size());
  res.device = base.cluster.device.name;
  const double budget_GiB = base.cluster.device.memory_GiB * (1.0 - o.memory_margin);
  res.memory_budget_GiB = budget_GiB;
  const int gpn = std::max(1, base.cluster.gpus_per_node);
  const int threads = thread_count(o);

  // --- Screen: rules, layout, memory, closed form. ---
  std::vector<Screened> scr(cands.size());
  std::vector<ThreadTally> tally(static_cast<size_t>(threads));
  std::vector<Scenario> work(static_cast<size_t>(threads), base);
  parallel_for(static_cast<int64_t>(cands.size()), threads, o, "screen", [&](int tid, int64_t i) {
    const Cand& c = cands[static_cast<size_t>(i)];
    ThreadTally& tt = tally[static_cast<size_t>(tid)];
    if (c.tp > gpn) {
      tt.add("tp > gpus_per_node", i,
             "tensor_model_parallel_size (" + std::to_string(c.tp) + ") exceeds the GPUs of a node (" + std::to_string(gpn) +
                 "): tensor-parallel collectives must stay on NVLink");
      return;
    }
    if (c.pp * c.vp > base.model.num_layers) {
      tt.add("pp x vp > num_layers", i,
             "pipeline_model_parallel_size (" + std::to_string(c.pp) + ") × virtual stages (" + std::to_string(c.vp) +
                 ") exceeds model.num_layers (" + std::to_string(base.model.num_layers) + ")");
      return;
    }
    Scenario& s = work[static_cast<size_t>(tid)];
    write_candidate(s, c, tables, gpn);
    auto L = derive_layout(s);
    if (!L.is_ok()) {
      tt.add(reason_key(L.status().message()), i, L.status().message());
      return;
    }
    const CostModel cm(s, *L);
    double peak = 0;
    int worst = 0;
    for (int st = 0; st < L->pp; ++st) {
      const double g = static_cast<double>(cm.stage_memory(st).peak_bytes()) / kGiB;
      if (g > peak) {
        peak = g;
        worst = st;
      }
    }
    if (peak > budget_GiB) {
      std::ostringstream os;
      os.precision(3);
      os << "stage " << worst << " needs " << peak << " GiB > " << budget_GiB << " GiB (" << s.cluster.device.name
         << " " << s.cluster.device.memory_GiB << " GiB less " << o.memory_margin * 100 << " % margin)";
      tt.add("memory", i, os.str());
      return;
    }
    scr[static_cast<size_t>(i)] = Screened{estimate_iteration(cm).total_s, peak};
  });
  const auto t1 = Clock::now();
  res.screen_seconds = std::chrono::duration<double>(t1 - t0).count();

  std::vector<int64_t> alive;
  for (size_t i = 0; i < scr.size(); ++i)
    if (scr[i].est_s >= 0) alive.push_back(static_cast<int64_t>(i));
  res.estimated = static_cast<int64_t>(alive.size());
  std::sort(alive.begin(), alive.end(), [&](int64_t a, int64_t b) {
    const double x = scr[static_cast<size_t>(a)].est_s, y = scr[static_cast<size_t>(b)].est_s;
    return x != y ? x < y : a < b;
  });

  // --- Event simulation of the most promising, in rounds. ---
  // The closed form is biased differently per schedule, pipeline depth and microbatch count
  // (bubble filling and zero-bubble gain more in the simulator than in the formula), so round one
  // simulates the best estimate of every (schedule, pp, vp, recompute) group (a third of the
  // budget); each later round (an eighth) simulates the best estimates corrected by the
  // simulated/estimated ratios seen so far.
  const size_t nsim = o.simulate_top < 0 ? alive.size()
                                         : std::min(alive.size(), static_cast<size_t>(std::max(o.simulate_top, o.top_k)));
  auto group_of = [&](int64_t i) {
    const Cand& c = cands[static_cast<size_t>(i)];
    return std::make_tuple(static_cast<int>(c.schedule), static_cast<int>(c.pp), static_cast<int>(c.vp),
                           static_cast<int>(c.recompute));
  };
  std::vector<PlanEntry> entries;
  std::vector<std::string> sim_error;
  std::vector<char> picked(cands.size(), 0);
  auto run_round = [&](const std::vector<int64_t>& idx) {
    const size_t first = entries.size();
    entries.resize(first + idx.size());
    sim_error.resize(first + idx.size());
    parallel_for(static_cast<int64_t>(idx.size()), threads, o, "simulate", [&](int, int64_t k) {
      const int64_t i = idx[static_cast<size_t>(k)];
      PlanEntry& e = entries[first + static_cast<size_t>(k)];
      e.candidate = materialize(cands[static_cast<size_t>(i)], tables, i);
      e.metrics.estimated_time_s = scr[static_cast<size_t>(i)].est_s;
      e.metrics.peak_memory_GiB = scr[static_cast<size_t>(i)].peak_GiB;
      const Scenario s = apply_candidate(base, e.candidate);
      SimulateOptions so;
      so.record_timeline = false;
      so.compare_without_exits = false;
      auto r = simulate(s, so);
      if (!r.is_ok()) {
        sim_error[first + static_cast<size_t>(k)] = r.status().message();
        return;
      }
      const SimulationSummary& sum = r->summary;
      e.metrics.simulated = true;
      e.metrics.iteration_time_s = sum.iteration_time_s;
      e.metrics.tokens_per_s = sum.tokens_per_s;
      e.metrics.mfu = sum.mfu;
      e.metrics.bubble_fraction = sum.bubble_fraction;
      const CostModel cm(r->scenario, r->layout);
      for (int st = 0; st < r->layout.pp; ++st)
        e.metrics.stage_memory_GiB.push_back(static_cast<double>(cm.stage_memory(st).peak_bytes()) / kGiB);
      e.metrics.peak_memory_GiB = std::max(e.metrics.peak_memory_GiB, sum.peak_memory_GiB);
    });
    for (int64_t i : idx) picked[static_cast<size_t>(i)] = 1;
  };
  if (nsim == alive.size()) {
    run_round(alive);
  } else {
    // Round one: the overall best and the best estimate of every coarse group.
    std::vector<int64_t> round1{alive.front()};
    std::map<std::tuple<int, int, int, int>, int64_t> rep;
    for (int64_t i : alive) rep.emplace(group_of(i), i);  // alive is sorted: first = best estimate
    std::vector<int64_t> reps;
    for (const auto& [g, i] : rep)
      if (i != alive.front()) reps.push_back(i);
    std::sort(reps.begin(), reps.end(), [&](int64_t a, int64_t b) {
      return scr[static_cast<size_t>(a)].est_s != scr[static_cast<size_t>(b)].est_s
                 ? scr[static_cast<size_t>(a)].est_s < scr[static_cast<size_t>(b)].est_s
                 : a < b;
    });
    const size_t first_round = std::max<size_t>(1, nsim / 3);
    for (int64_t i : reps)
      if (round1.size() < first_round) round1.push_back(i);
    run_round(round1);
    // Later rounds: estimates corrected by the simulated/estimated ratio of the finest group with
    // data — (schedule, pp, vp, recompute, micro-batch), then (schedule, pp, vp, recompute), then
    // the schedule, then all — re-ranked after every round.
    const size_t step = std::max<size_t>(1, nsim / 8);
    while (entries.size() < nsim) {
      std::map<std::tuple<int, int, int, int, int>, std::pair<double, int>> fine;
      std::map<std::tuple<int, int, int, int>, std::pair<double, int>> coarse;
      std::map<int, std::pair<double, int>> by_schedule;
      std::vector<double> all_ratios;
      for (size_t k = 0; k < entries.size(); ++k) {
        if (!sim_error[k].empty() || entries[k].metrics.estimated_time_s <= 0) continue;
        const double q = entries[k].metrics.iteration_time_s / entries[k].metrics.estimated_time_s;
        const int64_t i = entries[k].candidate.index;
        const auto g = group_of(i);
        auto add = [q](std::pair<double, int>& acc) {
          acc.first += q;
          ++acc.second;
        };
        add(fine[std::tuple_cat(g, std::make_tuple(static_cast<int>(cands[static_cast<size_t>(i)].mbs)))]);
        add(coarse[g]);
        add(by_schedule[std::get<0>(g)]);
        all_ratios.push_back(q);
      }
      std::sort(all_ratios.begin(), all_ratios.end());
      const double global = all_ratios.empty() ? 1.0 : all_ratios[all_ratios.size() / 2];
      std::vector<std::pair<double, int64_t>> corrected;
      for (int64_t i : alive) {
        if (picked[static_cast<size_t>(i)]) continue;
        const auto g = group_of(i);
        double q = global;
        if (auto f = fine.find(std::tuple_cat(g, std::make_tuple(static_cast<int>(cands[static_cast<size_t>(i)].mbs))));
            f != fine.end())
          q = f->second.first / f->second.second;
        else if (auto c = coarse.find(g); c != coarse.end())
          q = c->second.first / c->second.second;
        else if (auto sc = by_schedule.find(std::get<0>(g)); sc != by_schedule.end())
          q = sc->second.first / sc->second.second;
        corrected.emplace_back(scr[static_cast<size_t>(i)].est_s * q, i);
      }
      if (corrected.empty()) break;
      const size_t take = std::min({step, nsim - entries.size(), corrected.size()});
      std::partial_sort(corrected.begin(), corrected.begin() + static_cast<std::ptrdiff_t>(take), corrected.end());
      std::vector<int64_t> round;
      for (size_t k = 0; k < take; ++k) round.push_back(corrected[k].second);
      run_round(round);
    }
  }
  ThreadTally& main_tally = tally[0];
  std::vector<PlanEntry> ok;
  for (size_t k = 0; k < entries.size(); ++k) {
    PlanEntry& e = entries[k];
    if (!sim_error[k].empty()) {
      main_tally.add("simulator: " + reason_key(sim_error[k]), e.candidate.index, sim_error[k]);
    } else if (e.metrics.peak_memory_GiB > budget_GiB) {
      std::ostringstream os;
      os.precision(3);
      os << "simulated peak " << e.metrics.peak_memory_GiB << " GiB > " << budget_GiB << " GiB";
      main_tally.add("memory (simulated)", e.candidate.index, os.str());
    } else {
      ok.push_back(std::move(e));
    }
  }
  res.simulated = static_cast<int64_t>(entries.size());
  std::sort(ok.begin(), ok.end(), [](const PlanEntry& a, const PlanEntry& b) {
    const double x = a.metrics.iteration_time_s, y = b.metrics.iteration_time_s;
    return x != y ? x < y : a.candidate.index < b.candidate.index;
  });

  // Prune tallies merged over threads, by count.
  std::map<std::string, PruneCount> merged;
  std::map<std::string, int64_t> first_index;
  for (const ThreadTally& tt : tally)
    for (const auto& [key, v] : tt.reasons) {
      PruneCount& pc = merged[key];
      pc.reason = key;
      pc.count += v.first;
      auto it = first_index.find(key);
      if (it == first_index.end() || v.second.first < it->second) {
        first_index[key] = v.second.first;
        pc.example = v.second.second;
      }
    }
  for (auto& [key, pc] : merged) res.pruned.push_back(pc);
  std::sort(res.pruned.begin(), res.pruned.end(), [](const PruneCount& a, const PruneCount& b) {
    return a.count != b.count ? a.count > b.count : a.reason < b.reason;
  });

  if (ok.empty()) {
    std::ostringstream os;
    os << "no layout of " << base.name << " fits " << o.gpus << " GPUs of " << res.device << " (" << res.candidates
       << " candidates screened; pruned:";
    for (const PruneCount& pc : res.pruned) os << " " << pc.reason << " " << pc.count << ";";
    if (!res.pruned.empty()) os << " e.g. " << res.pruned.front().example;
    os << ")";
    return Status::failed_precondition(os.str());
  }

  // Pareto front over (time, peak memory, GPUs) of the simulated plans.
  for (size_t a = 0; a < ok.size(); ++a) {
    bool dominated = false;
    for (size_t b = 0; b < ok.size() && !dominated; ++b) {
      if (a == b) continue;
      const PlanMetrics &x = ok[a].metrics, &y = ok[b].metrics;
      const int gx = ok[a].candidate.world_size, gy = ok[b].candidate.world_size;
      const bool le = y.iteration_time_s <= x.iteration_time_s && y.peak_memory_GiB <= x.peak_memory_GiB && gy <= gx;
      const bool lt = y.iteration_time_s < x.iteration_time_s || y.peak_memory_GiB < x.peak_memory_GiB || gy < gx;
      dominated = le && lt;
    }
    if (!dominated) res.pareto.push_back(ok[a]);
  }

  ok.resize(std::min(ok.size(), static_cast<size_t>(std::max(1, o.top_k))));
  if (o.exit_overhead && !base.exits.exit_layer_nums.empty()) {
    // The same layout without exits (EE schedules become 1F1B), for the ranked plans and the front.
    std::vector<PlanEntry*> todo;
    for (PlanEntry& e : ok) todo.push_back(&e);
    for (PlanEntry& e : res.pareto) todo.push_back(&e);
    parallel_for(static_cast<int64_t>(todo.size()), threads, PlanOptions{}, "exit overhead", [&](int, int64_t k) {
      PlanEntry& e = *todo[static_cast<size_t>(k)];
      Scenario s = apply_candidate(base, e.candidate);
      s.exits = ExitSpec{};
      if (s.parallel.schedule == ScheduleKind::kEE1F1B || s.parallel.schedule == ScheduleKind::kEEFill)
        s.parallel.schedule = ScheduleKind::k1F1B;
      SimulateOptions so;
      so.record_timeline = false;
      so.compare_without_exits = false;
      auto r = simulate(s, so);
      if (r.is_ok() && r->summary.iteration_time_s > 0)
        e.metrics.exit_overhead_fraction = e.metrics.iteration_time_s / r->summary.iteration_time_s - 1.0;
    });
  }
  res.ranked = std::move(ok);
  res.simulate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return res;
}

}  // namespace eellm
