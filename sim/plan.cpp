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
#include "sim/plan_space.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

using plan_detail::cancelled_status;
using plan_detail::Cand;
using plan_detail::ExitConfig;
using plan_detail::materialize;
using plan_detail::Tables;
using plan_detail::write_candidate;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Short key of a derive_layout message: its leading field name ("training.global_batch_size"),
// or the words before the first number ("number of microbatches").
std::string reason_key(const std::string& msg) {
  const size_t sp = msg.find(' ');
  const std::string first = msg.substr(0, sp);
  if (first.find('.') != std::string::npos) return first;
  const size_t cut = msg.find(" (");
  return msg.substr(0, std::min<size_t>(cut == std::string::npos ? msg.size() : cut, 48));
}

// Result of screening one candidate.
struct Screened {
  double est_s = -1;  // < 0: pruned
  double peak_GiB = 0;
};

struct ThreadTally {
  std::map<std::string, std::pair<int64_t, std::pair<int64_t, std::string>>>
      reasons;  // key → (count, (first index, msg))
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

bool cancel_requested(const PlanOptions& o) {
  return o.cancelled && o.cancelled();
}

// Runs f(i) for i in [0, n) on `threads` workers, reporting progress from this thread. Workers take
// `block` indices at a time (large for cheap screening steps, 1 for simulations, so a round of a
// few dozen simulations still spreads over every thread) and poll o.cancelled before each block:
// after a cancel they stop at the next block and the caller checks cancel_requested().
template <typename F>
int64_t parallel_for(int64_t n, int threads, const PlanOptions& o, const char* phase, int64_t block, F&& f) {
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<int> active{0};
  auto worker = [&](int tid) {
    for (;;) {
      if (cancel_requested(o)) break;
      const int64_t start = next.fetch_add(block);
      if (start >= n) break;
      const int64_t end = std::min(n, start + block);
      for (int64_t i = start; i < end; ++i) f(tid, i);
      done.fetch_add(end - start);
    }
    active.fetch_sub(1);
  };
  std::vector<std::thread> pool;
  if (!o.progress) {
    active = threads;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
    worker(0);
  } else {
    // Every thread of the pool works; this one only reports, until every worker has returned
    // (done stops short of n after a cancel).
    active = threads;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
    while (active.load() > 0) {
      o.progress(phase, done.load(), n);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    o.progress(phase, done.load(), n);
  }
  for (auto& th : pool) th.join();
  return done.load();  // < n only after a cancel
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

const char* to_string(LaunchTarget t) {
  switch (t) {
    case LaunchTarget::kEellm:
      return "eellm";
    case LaunchTarget::kEELLM:
      return "ee-llm";
    case LaunchTarget::kMegatron:
      return "megatron";
  }
  return "?";
}

StatusOr<LaunchTarget> parse_launch_target(const std::string& name) {
  for (LaunchTarget t : kLaunchTargets)
    if (name == to_string(t)) return t;
  return Status::invalid_argument("launch target '" + name + "' is not one of eellm, ee-llm, megatron");
}

// EE-LLM picks its pipeline function from the flags (megatron/core/pipeline_parallel/schedules.py):
// with exits, the early-exit 1F1B or its bubble-filling variant (no interleaving, no zero bubble);
// without, Megatron's 1F1B or interleaved. Neither splits layers unevenly (--to-megatron warns).
std::string launch_problem(LaunchTarget t, ScheduleKind k, bool uneven_partition, bool has_exits) {
  if (t == LaunchTarget::kEellm) return "";
  if (t == LaunchTarget::kMegatron && has_exits) return "Megatron-LM has no early exits";
  if (uneven_partition) return "no flag for an uneven layer split";
  const bool plain = k == ScheduleKind::kNoPipelining || k == ScheduleKind::k1F1B || k == ScheduleKind::kEE1F1B;
  if (plain) return "";
  if (k == ScheduleKind::kInterleaved1F1B && !has_exits) return "";
  if (k == ScheduleKind::kEEFill && has_exits && t == LaunchTarget::kEELLM) return "";
  if (k == ScheduleKind::kInterleaved1F1B) return "EE-LLM does not interleave a model with exits";
  return std::string("no ") + to_string(k) + " schedule";
}

std::string launch_problem(LaunchTarget t, const PlanCandidate& c) {
  return launch_problem(t, c.schedule, !c.layer_partition.empty(), !c.exit_layer_nums.empty());
}

Scenario apply_candidate(const Scenario& base, const PlanCandidate& pc) {
  Tables t;
  t.partitions = {pc.layer_partition};
  t.exits = {ExitConfig{pc.exit_layer_nums, pc.pre_exit}};
  Cand c;
  c.world = pc.world_size;
  c.tp = static_cast<int32_t>(pc.tp);
  c.pp = static_cast<int32_t>(pc.pp);
  c.vp = static_cast<int32_t>(pc.vp);
  c.mbs = static_cast<int32_t>(pc.micro_batch_size);
  c.schedule = pc.schedule;
  c.recompute = pc.recompute;
  c.sp = pc.sequence_parallel;
  c.dopt = pc.distributed_optimizer;
  Scenario s = base;
  write_candidate(s, c, t, base.cluster.gpus_per_node);
  // The planner places exits freely; EE-LLM's released fill order runs only some placements
  // (sim/schedule.h), eellm's exit-truncated variant all of them.
  if (s.parallel.schedule == ScheduleKind::kEEFill) s.parallel.fill_semantics = FillSemantics::kExitTruncated;
  s.source_path.clear();
  return s;
}

StatusOr<std::vector<PlanCandidate>> enumerate_candidates(const Scenario& base, const PlanOptions& options) {
  Tables t;
  EELLM_ASSIGN_OR_RETURN(std::vector<Cand> cands, plan_detail::enumerate(base, options, t));
  std::vector<PlanCandidate> out;
  out.reserve(cands.size());
  for (size_t i = 0; i < cands.size(); ++i) out.push_back(materialize(cands[i], t, static_cast<int64_t>(i)));
  return out;
}

namespace {

// What the phases of one search share: the inputs, the enumerated space, the screening results and
// the prune tallies (one per thread, merged at the end).
struct Search {
  Search(const Scenario& b, const PlanOptions& opts) : base(b), o(opts) {}
  const Scenario& base;
  const PlanOptions& o;
  Tables tables;
  std::vector<Cand> cands;
  std::vector<Screened> scr;
  std::vector<ThreadTally> tally;
  double budget_GiB = 0;
  int threads = 1;
  int gpn = 1;
  double est_s(int64_t i) const { return scr[static_cast<size_t>(i)].est_s; }
};

// Screens candidate i in `s` (a per-thread scratch scenario): structural rules, derive_layout, the
// cost model's per-stage memory, then the closed form. Pruned candidates go to `tt`.
void screen_one(Search& q, Scenario& s, ThreadTally& tt, int64_t i) {
  const Cand& c = q.cands[static_cast<size_t>(i)];
  if (c.tp > q.gpn) {
    tt.add("tp > gpus_per_node", i,
           "tensor_model_parallel_size (" + std::to_string(c.tp) + ") exceeds the GPUs of a node (" +
               std::to_string(q.gpn) + "): tensor-parallel collectives must stay on NVLink");
    return;
  }
  if (c.pp * c.vp > q.base.model.num_layers) {
    tt.add("pp x vp > num_layers", i,
           "pipeline_model_parallel_size (" + std::to_string(c.pp) + ") × virtual stages (" + std::to_string(c.vp) +
               ") exceeds model.num_layers (" + std::to_string(q.base.model.num_layers) + ")");
    return;
  }
  for (LaunchTarget t : q.o.launchable_with) {
    const std::string why =
        launch_problem(t, c.schedule, c.partition != 0, !q.tables.exits[static_cast<size_t>(c.exits)].nums.empty());
    if (!why.empty()) {
      tt.add(std::string("not launchable with ") + to_string(t), i, why);
      return;
    }
  }
  write_candidate(s, c, q.tables, q.gpn);
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
  if (peak > q.budget_GiB) {
    std::ostringstream os;
    os.precision(3);
    os << "stage " << worst << " needs " << peak << " GiB > " << q.budget_GiB << " GiB (" << s.cluster.device.name
       << " " << s.cluster.device.memory_GiB << " GiB less " << q.o.memory_margin * 100 << " % margin)";
    tt.add("memory", i, os.str());
    return;
  }
  q.scr[static_cast<size_t>(i)] = Screened{estimate_iteration(cm).total_s, peak};
}

// Screens every candidate on the worker threads; `alive` gets the survivors, best estimate first
// (ties by enumeration index). After a cancel `alive` holds those screened so far and the cancelled
// status is returned.
Status screen(Search& q, std::vector<int64_t>& alive) {
  const int64_t n = static_cast<int64_t>(q.cands.size());
  q.scr.assign(q.cands.size(), Screened{});
  q.tally.assign(static_cast<size_t>(q.threads), ThreadTally{});
  std::vector<Scenario> work(static_cast<size_t>(q.threads), q.base);
  const int64_t screened = parallel_for(n, q.threads, q.o, "screen", 256, [&](int tid, int64_t i) {
    screen_one(q, work[static_cast<size_t>(tid)], q.tally[static_cast<size_t>(tid)], i);
  });
  for (size_t i = 0; i < q.scr.size(); ++i)
    if (q.scr[i].est_s >= 0) alive.push_back(static_cast<int64_t>(i));
  std::sort(alive.begin(), alive.end(), [&](int64_t a, int64_t b) {
    const double x = q.est_s(a), y = q.est_s(b);
    return x != y ? x < y : a < b;
  });
  return cancel_requested(q.o) ? cancelled_status("screening", screened, n) : Status::ok();
}

// The simulated candidates so far (entries[k] failed when error[k] is set) and which were picked.
struct Simulated {
  std::vector<PlanEntry> entries;
  std::vector<std::string> error;
  std::vector<char> picked;
  int64_t done = 0;
};

SimulateOptions quick_simulation() {
  SimulateOptions so;
  so.record_timeline = false;
  so.compare_without_exits = false;
  return so;
}

// Plays candidate i in the event simulator; the message of a failed run goes to `error`.
PlanEntry simulate_one(const Search& q, int64_t i, std::string& error) {
  PlanEntry e;
  e.candidate = materialize(q.cands[static_cast<size_t>(i)], q.tables, i);
  e.metrics.estimated_time_s = q.est_s(i);
  e.metrics.peak_memory_GiB = q.scr[static_cast<size_t>(i)].peak_GiB;
  auto r = simulate(apply_candidate(q.base, e.candidate), quick_simulation());
  if (!r.is_ok()) {
    error = r.status().message();
    return e;
  }
  const SimulationSummary& sum = r->summary;
  e.metrics.simulated = true;
  e.metrics.iteration_time_s = sum.iteration_time_s;
  e.metrics.tokens_per_s = sum.tokens_per_s;
  e.metrics.backbone_fraction = static_cast<double>(sum.num_backbone_microbatches) / sum.num_microbatches;
  e.metrics.mfu = sum.mfu;
  e.metrics.bubble_fraction = sum.bubble_fraction;
  const CostModel cm(r->scenario, r->layout);
  for (int st = 0; st < r->layout.pp; ++st)
    e.metrics.stage_memory_GiB.push_back(static_cast<double>(cm.stage_memory(st).peak_bytes()) / kGiB);
  e.metrics.peak_memory_GiB = std::max(e.metrics.peak_memory_GiB, sum.peak_memory_GiB);
  return e;
}

// Every simulation of one search, by candidate index, shared by the runs over its sub-spaces.
struct SimCache {
  std::map<int64_t, size_t> at;  // candidate index → position in all.entries
  Simulated all;
};

// Simulates the candidates `idx` on the worker threads (those `cache` already holds are copied);
// false once the search was cancelled.
bool run_round(const Search& q, Simulated& sim, const std::vector<int64_t>& idx, SimCache& cache) {
  std::vector<int64_t> fresh;
  for (int64_t i : idx)
    if (!cache.at.count(i)) fresh.push_back(i);
  Simulated& all = cache.all;
  const size_t first = all.entries.size();
  all.entries.resize(first + fresh.size());
  all.error.resize(first + fresh.size());
  const int64_t n = static_cast<int64_t>(fresh.size());
  const int64_t done = parallel_for(n, q.threads, q.o, "simulate", 1, [&](int, int64_t k) {
    const size_t at = first + static_cast<size_t>(k);
    all.entries[at] = simulate_one(q, fresh[static_cast<size_t>(k)], all.error[at]);
  });
  if (done < n) {  // cancelled: keep only what ran (workers stop after a whole simulation)
    std::vector<PlanEntry> kept;
    std::vector<std::string> kept_error;
    for (size_t at = first; at < all.entries.size(); ++at)
      if (all.entries[at].metrics.simulated || !all.error[at].empty()) {
        kept.push_back(std::move(all.entries[at]));
        kept_error.push_back(std::move(all.error[at]));
      }
    all.entries.resize(first);
    all.error.resize(first);
    for (size_t k = 0; k < kept.size(); ++k) {
      all.entries.push_back(std::move(kept[k]));
      all.error.push_back(std::move(kept_error[k]));
    }
  }
  for (size_t at = first; at < all.entries.size(); ++at) cache.at[all.entries[at].candidate.index] = at;
  all.done = static_cast<int64_t>(all.entries.size());
  for (int64_t i : idx) {
    auto it = cache.at.find(i);
    if (it == cache.at.end()) continue;
    sim.entries.push_back(all.entries[it->second]);
    sim.error.push_back(all.error[it->second]);
    sim.picked[static_cast<size_t>(i)] = 1;
  }
  sim.done = static_cast<int64_t>(sim.entries.size());
  return !cancel_requested(q.o);
}

using Group = std::tuple<int, int, int, int>;           // (schedule, pp, vp, recompute)
using FineGroup = std::tuple<int, int, int, int, int>;  // … and the micro-batch size

Group group_of(const Cand& c) {
  return std::make_tuple(static_cast<int>(c.schedule), static_cast<int>(c.pp), static_cast<int>(c.vp),
                         static_cast<int>(c.recompute));
}

FineGroup fine_group_of(const Cand& c) {
  return std::tuple_cat(group_of(c), std::make_tuple(static_cast<int>(c.mbs)));
}

// Round one: the overall best and the best estimate of every (schedule, pp, vp, recompute) group,
// a third of the simulation budget at most.
std::vector<int64_t> first_round(const Search& q, const std::vector<int64_t>& alive, size_t nsim) {
  std::vector<int64_t> round1{alive.front()};
  std::map<Group, int64_t> rep;
  // alive is sorted: the first of a group is its best estimate.
  for (int64_t i : alive) rep.emplace(group_of(q.cands[static_cast<size_t>(i)]), i);
  std::vector<int64_t> reps;
  for (const auto& [g, i] : rep)
    if (i != alive.front()) reps.push_back(i);
  std::sort(reps.begin(), reps.end(),
            [&](int64_t a, int64_t b) { return q.est_s(a) != q.est_s(b) ? q.est_s(a) < q.est_s(b) : a < b; });
  const size_t cap = std::max<size_t>(1, nsim / 3);
  for (int64_t i : reps)
    if (round1.size() < cap) round1.push_back(i);
  return round1;
}

// Simulated/estimated ratios seen so far, summed per group: the finest group with data corrects an
// estimate — (schedule, pp, vp, recompute, micro-batch), then (schedule, pp, vp, recompute), then
// the schedule, then the median of all.
struct Ratios {
  std::map<FineGroup, std::pair<double, int>> fine;
  std::map<Group, std::pair<double, int>> coarse;
  std::map<int, std::pair<double, int>> by_schedule;
  double global = 1.0;

  Ratios(const Search& q, const Simulated& sim) {
    std::vector<double> all;
    for (size_t k = 0; k < sim.entries.size(); ++k) {
      const PlanMetrics& m = sim.entries[k].metrics;
      if (!sim.error[k].empty() || m.estimated_time_s <= 0) continue;
      const double r = m.iteration_time_s / m.estimated_time_s;
      const Cand& c = q.cands[static_cast<size_t>(sim.entries[k].candidate.index)];
      auto add = [r](std::pair<double, int>& acc) {
        acc.first += r;
        ++acc.second;
      };
      add(fine[fine_group_of(c)]);
      add(coarse[group_of(c)]);
      add(by_schedule[static_cast<int>(c.schedule)]);
      all.push_back(r);
    }
    std::sort(all.begin(), all.end());
    if (!all.empty()) global = all[all.size() / 2];
  }

  double of(const Cand& c) const {
    if (auto f = fine.find(fine_group_of(c)); f != fine.end()) return f->second.first / f->second.second;
    if (auto g = coarse.find(group_of(c)); g != coarse.end()) return g->second.first / g->second.second;
    if (auto s = by_schedule.find(static_cast<int>(c.schedule)); s != by_schedule.end())
      return s->second.first / s->second.second;
    return global;
  }
};

// A later round: the `take` best estimates not yet simulated, corrected by the ratios seen so far.
std::vector<int64_t> corrected_round(const Search& q, const Simulated& sim, const std::vector<int64_t>& alive,
                                     size_t take) {
  const Ratios ratios(q, sim);
  std::vector<std::pair<double, int64_t>> corrected;
  for (int64_t i : alive)
    if (!sim.picked[static_cast<size_t>(i)])
      corrected.emplace_back(q.est_s(i) * ratios.of(q.cands[static_cast<size_t>(i)]), i);
  take = std::min(take, corrected.size());
  std::partial_sort(corrected.begin(), corrected.begin() + static_cast<std::ptrdiff_t>(take), corrected.end());
  std::vector<int64_t> round;
  for (size_t k = 0; k < take; ++k) round.push_back(corrected[k].second);
  return round;
}

// Event simulation of the most promising survivors of one space, in rounds. The closed form is
// biased differently per schedule, pipeline depth and microbatch count (bubble filling and zero-bubble
// gain more in the simulator than in the formula), so round one simulates the best estimate of
// every (schedule, pp, vp, recompute) group (a third of the budget); each later round (an eighth)
// simulates the best estimates corrected by the simulated/estimated ratios seen so far.
Status simulate_space(const Search& q, const std::vector<int64_t>& alive, SimCache& cache) {
  const size_t nsim = q.o.simulate_top < 0
                          ? alive.size()
                          : std::min(alive.size(), static_cast<size_t>(std::max(q.o.simulate_top, q.o.top_k)));
  Simulated sim;
  sim.picked.assign(q.cands.size(), 0);
  auto stop = [&] { return cancelled_status("simulation", cache.all.done, static_cast<int64_t>(nsim)); };
  if (nsim == alive.size()) return run_round(q, sim, alive, cache) ? Status::ok() : stop();
  if (!run_round(q, sim, first_round(q, alive, nsim), cache)) return stop();
  const size_t step = std::max<size_t>(1, nsim / 8);
  while (sim.entries.size() < nsim) {
    const std::vector<int64_t> round = corrected_round(q, sim, alive, std::min(step, nsim - sim.entries.size()));
    if (round.empty()) break;
    if (!run_round(q, sim, round, cache)) return stop();
  }
  return Status::ok();
}

// A part of the search space a narrower search would have searched: one world size (0: all), and
// whether moved exits and neighbourhood partitions belong to it.
struct Space {
  int world = 0;
  bool moved = true, neighbour = true;
  bool contains(const Cand& c) const {
    return (world == 0 || c.world == world) && (moved || c.exits == 0) && (neighbour || !c.neighbour);
  }
  std::string name() const {
    std::string n = world > 0 ? std::to_string(world) + " GPUs" : "";
    if (!moved) n += std::string(n.empty() ? "" : ", ") + "fixed exits";
    if (!neighbour) n += std::string(n.empty() ? "" : ", ") + "no partition neighbourhood";
    return n.empty() ? "the full space" : n;
  }
};

// The narrower searches the options contain (each flag off, each world size alone), then the full
// space. Simulating the best of each on its own is what makes a wider search never worse: it
// simulates everything the narrower search would have.
std::vector<Space> spaces_of(const Search& q) {
  std::vector<int> worlds;
  for (const Cand& c : q.cands)
    if (std::find(worlds.begin(), worlds.end(), c.world) == worlds.end()) worlds.push_back(c.world);
  const bool can_move = q.o.movable_exits && !q.base.exits.exit_layer_nums.empty();
  const bool can_neighbour = q.o.partition_neighbourhood;
  std::vector<Space> narrow;
  for (bool moved : {false, true})
    for (bool neighbour : {false, true}) {
      if ((moved && !can_move) || (neighbour && !can_neighbour)) continue;  // not searched at all
      if (moved == can_move && neighbour == can_neighbour) continue;        // the full space, last
      narrow.push_back(Space{0, moved || !can_move, neighbour || !can_neighbour});
    }
  if (worlds.size() > 1)
    for (int w : worlds) narrow.push_back(Space{w, true, true});
  narrow.push_back(Space{});
  return narrow;
}

// Runs simulate_space over every space of spaces_of (a shared cache: a candidate is simulated once).
Status simulate_best(const Search& q, const std::vector<int64_t>& alive, SimCache& cache,
                     std::vector<std::string>& names) {
  for (const Space& sp : spaces_of(q)) {
    std::vector<int64_t> sub;
    for (int64_t i : alive)
      if (sp.contains(q.cands[static_cast<size_t>(i)])) sub.push_back(i);
    if (sub.empty()) continue;
    names.push_back(sp.name());
    EELLM_RETURN_IF_ERROR(simulate_space(q, sub, cache));
  }
  return Status::ok();
}

// The simulated plans that ran and fit the memory budget, ranked by time per backbone-equivalent
// batch (ties by enumeration index); the others are tallied as pruned in `tt`.
std::vector<PlanEntry> feasible_ranked(Simulated& sim, double budget_GiB, ThreadTally& tt) {
  std::vector<PlanEntry> ok;
  for (size_t k = 0; k < sim.entries.size(); ++k) {
    PlanEntry& e = sim.entries[k];
    if (!sim.error[k].empty()) {
      tt.add("simulator: " + reason_key(sim.error[k]), e.candidate.index, sim.error[k]);
    } else if (e.metrics.peak_memory_GiB > budget_GiB) {
      std::ostringstream os;
      os.precision(3);
      os << "simulated peak " << e.metrics.peak_memory_GiB << " GiB > " << budget_GiB << " GiB";
      tt.add("memory (simulated)", e.candidate.index, os.str());
    } else {
      ok.push_back(std::move(e));
    }
  }
  std::sort(ok.begin(), ok.end(), [](const PlanEntry& a, const PlanEntry& b) {
    const double x = a.metrics.ranking_time_s(), y = b.metrics.ranking_time_s();
    return x != y ? x < y : a.candidate.index < b.candidate.index;
  });
  return ok;
}

// Prune tallies merged over threads, by count descending (ties by reason); each reason's example
// is the message of its first candidate in enumeration order.
std::vector<PruneCount> merge_tallies(const std::vector<ThreadTally>& tally) {
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
  std::vector<PruneCount> out;
  for (auto& [key, pc] : merged) out.push_back(pc);
  std::sort(out.begin(), out.end(), [](const PruneCount& a, const PruneCount& b) {
    return a.count != b.count ? a.count > b.count : a.reason < b.reason;
  });
  return out;
}

Status no_plan_fits(const Scenario& base, const PlanOptions& o, const PlanResult& res) {
  std::ostringstream os;
  os << "no layout of " << base.name << " fits " << o.gpus << " GPUs of " << res.device << " (" << res.candidates
     << " candidates screened; pruned:";
  for (const PruneCount& pc : res.pruned) os << " " << pc.reason << " " << pc.count << ";";
  if (!res.pruned.empty()) os << " e.g. " << res.pruned.front().example;
  os << ")";
  return Status::failed_precondition(os.str());
}

// The exit overhead of the ranked plans and the front: each simulated again without exits (EE
// schedules become 1F1B). No progress reports for this short phase, but the same cancel hook.
void measure_exit_overhead(const Search& q, std::vector<PlanEntry>& ranked, std::vector<PlanEntry>& front) {
  std::vector<PlanEntry*> todo;
  for (PlanEntry& e : ranked) todo.push_back(&e);
  for (PlanEntry& e : front) todo.push_back(&e);
  PlanOptions quiet;
  quiet.cancelled = q.o.cancelled;
  parallel_for(static_cast<int64_t>(todo.size()), q.threads, quiet, "exit overhead", 1, [&](int, int64_t k) {
    PlanEntry& e = *todo[static_cast<size_t>(k)];
    auto r = simulate(scenario_without_exits(apply_candidate(q.base, e.candidate)), quick_simulation());
    if (r.is_ok() && r->summary.iteration_time_s > 0)
      e.metrics.exit_overhead_fraction = e.metrics.ranking_time_s() / r->summary.iteration_time_s - 1.0;
  });
}

}  // namespace

std::vector<PlanEntry> pareto_front(const std::vector<PlanEntry>& plans) {
  std::vector<PlanEntry> front;
  for (size_t a = 0; a < plans.size(); ++a) {
    bool dominated = false;
    for (size_t b = 0; b < plans.size() && !dominated; ++b) {
      if (a == b) continue;
      const PlanMetrics &x = plans[a].metrics, &y = plans[b].metrics;
      const int gx = plans[a].candidate.world_size, gy = plans[b].candidate.world_size;
      const double ty = y.ranking_time_s(), tx = x.ranking_time_s();
      const bool le = ty <= tx && y.peak_memory_GiB <= x.peak_memory_GiB && gy <= gx;
      const bool lt = ty < tx || y.peak_memory_GiB < x.peak_memory_GiB || gy < gx;
      dominated = le && lt;
    }
    if (!dominated) front.push_back(plans[a]);
  }
  return front;
}

namespace {

// |estimate / simulated − 1| over the simulated plans: mean and max.
void estimate_error(const Simulated& all, PlanResult& res) {
  double sum = 0;
  int n = 0;
  for (const PlanEntry& e : all.entries) {
    if (!e.metrics.simulated || e.metrics.iteration_time_s <= 0) continue;
    const double err = std::abs(e.metrics.estimated_time_s / e.metrics.iteration_time_s - 1.0);
    sum += err;
    res.estimate_error_max = std::max(res.estimate_error_max, err);
    ++n;
  }
  res.estimate_error_mean = n > 0 ? sum / n : 0.0;
}

// The best plans of a stopped search: the simulated ones that fit, else the best estimates.
StatusOr<PlanResult> interrupted(Search& q, PlanResult res, const std::vector<int64_t>& alive, SimCache& cache,
                                 const Status& why) {
  if (!q.o.partial_on_cancel || !why.is_cancelled()) return why;
  res.interrupted = why.message();
  res.simulated = static_cast<int64_t>(cache.all.entries.size());
  estimate_error(cache.all, res);
  std::vector<PlanEntry> ok = feasible_ranked(cache.all, q.budget_GiB, q.tally[0]);
  res.pruned = merge_tallies(q.tally);
  res.feasible = ok;
  res.pareto = pareto_front(ok);
  for (size_t k = 0; ok.empty() && k < alive.size() && k < static_cast<size_t>(std::max(1, q.o.top_k)); ++k) {
    const int64_t i = alive[k];
    PlanEntry e;
    e.candidate = materialize(q.cands[static_cast<size_t>(i)], q.tables, i);
    e.metrics.estimated_time_s = q.est_s(i);
    e.metrics.peak_memory_GiB = q.scr[static_cast<size_t>(i)].peak_GiB;
    res.ranked.push_back(e);
  }
  if (!ok.empty()) ok.resize(std::min(ok.size(), static_cast<size_t>(std::max(1, q.o.top_k))));
  if (res.ranked.empty()) res.ranked = std::move(ok);
  if (res.ranked.empty()) return why;
  return res;
}

}  // namespace

StatusOr<PlanResult> plan(const Scenario& base, const PlanOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Search q(base, o);
  EELLM_ASSIGN_OR_RETURN(q.cands, plan_detail::enumerate(base, o, q.tables));
  PlanResult res;
  res.candidates = static_cast<int64_t>(q.cands.size());
  res.device = base.cluster.device.name;
  res.launchable_with = o.launchable_with;
  q.budget_GiB = res.memory_budget_GiB = base.cluster.device.memory_GiB * (1.0 - o.memory_margin);
  q.gpn = std::max(1, base.cluster.gpus_per_node);
  q.threads = thread_count(o);

  std::vector<int64_t> alive;
  SimCache cache;
  Status st = screen(q, alive);
  res.estimated = static_cast<int64_t>(alive.size());
  const auto t1 = Clock::now();
  res.screen_seconds = std::chrono::duration<double>(t1 - t0).count();
  if (!st.is_ok()) return interrupted(q, res, alive, cache, st);

  st = simulate_best(q, alive, cache, res.spaces);
  res.simulate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  if (!st.is_ok()) return interrupted(q, res, alive, cache, st);
  estimate_error(cache.all, res);
  std::vector<PlanEntry> ok = feasible_ranked(cache.all, q.budget_GiB, q.tally[0]);
  res.simulated = static_cast<int64_t>(cache.all.entries.size());
  res.pruned = merge_tallies(q.tally);
  if (ok.empty()) return no_plan_fits(base, o, res);

  res.pareto = pareto_front(ok);
  res.feasible = ok;
  ok.resize(std::min(ok.size(), static_cast<size_t>(std::max(1, o.top_k))));
  if (o.exit_overhead && !base.exits.exit_layer_nums.empty()) measure_exit_overhead(q, ok, res.pareto);
  if (cancel_requested(o)) {
    st = cancelled_status("the exit-overhead runs", 0, static_cast<int64_t>(ok.size()));
    if (!o.partial_on_cancel) return st;
    res.interrupted = st.message();
  }
  res.ranked = std::move(ok);
  res.simulate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return res;
}

}  // namespace eellm
