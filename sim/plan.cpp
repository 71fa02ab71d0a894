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

Status cancelled_status(const char* phase, int64_t done, int64_t total) {
  return Status::cancelled(std::string("the search was stopped by the caller during ") + phase + " (" +
                           std::to_string(done) + " of " + std::to_string(total) + " done)");
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
  EELLM_ASSIGN_OR_RETURN(std::vector<Cand> cands, plan_detail::enumerate(base, options, t));
  std::vector<PlanCandidate> out;
  out.reserve(cands.size());
  for (size_t i = 0; i < cands.size(); ++i) out.push_back(materialize(cands[i], t, static_cast<int64_t>(i)));
  return out;
}

StatusOr<PlanResult> plan(const Scenario& base, const PlanOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Tables tables;
  EELLM_ASSIGN_OR_RETURN(std::vector<Cand> cands, plan_detail::enumerate(base, o, tables));
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
  const int64_t screened = parallel_for(static_cast<int64_t>(cands.size()), threads, o, "screen", 256, [&](int tid, int64_t i) {
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
  if (cancel_requested(o)) return cancelled_status("screening", screened, res.candidates);
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
  int64_t sim_done = 0;
  auto run_round = [&](const std::vector<int64_t>& idx) {
    const size_t first = entries.size();
    entries.resize(first + idx.size());
    sim_error.resize(first + idx.size());
    sim_done += parallel_for(static_cast<int64_t>(idx.size()), threads, o, "simulate", 1, [&](int, int64_t k) {
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
      e.metrics.backbone_fraction = static_cast<double>(sum.num_backbone_microbatches) / sum.num_microbatches;
      e.metrics.mfu = sum.mfu;
      e.metrics.bubble_fraction = sum.bubble_fraction;
      const CostModel cm(r->scenario, r->layout);
      for (int st = 0; st < r->layout.pp; ++st)
        e.metrics.stage_memory_GiB.push_back(static_cast<double>(cm.stage_memory(st).peak_bytes()) / kGiB);
      e.metrics.peak_memory_GiB = std::max(e.metrics.peak_memory_GiB, sum.peak_memory_GiB);
    });
    for (int64_t i : idx) picked[static_cast<size_t>(i)] = 1;
    return !cancel_requested(o);
  };
  auto cancelled_simulating = [&] { return cancelled_status("simulation", sim_done, static_cast<int64_t>(nsim)); };
  if (nsim == alive.size()) {
    if (!run_round(alive)) return cancelled_simulating();
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
    if (!run_round(round1)) return cancelled_simulating();
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
      if (!run_round(round)) return cancelled_simulating();
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
    const double x = a.metrics.ranking_time_s(), y = b.metrics.ranking_time_s();
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
      const double ty = y.ranking_time_s(), tx = x.ranking_time_s();
      const bool le = ty <= tx && y.peak_memory_GiB <= x.peak_memory_GiB && gy <= gx;
      const bool lt = ty < tx || y.peak_memory_GiB < x.peak_memory_GiB || gy < gx;
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
    PlanOptions quiet;  // no progress reports for this short phase, but the same cancel hook
    quiet.cancelled = o.cancelled;
    parallel_for(static_cast<int64_t>(todo.size()), threads, quiet, "exit overhead", 1, [&](int, int64_t k) {
      PlanEntry& e = *todo[static_cast<size_t>(k)];
      const Scenario s = scenario_without_exits(apply_candidate(base, e.candidate));
      SimulateOptions so;
      so.record_timeline = false;
      so.compare_without_exits = false;
      auto r = simulate(s, so);
      if (r.is_ok() && r->summary.iteration_time_s > 0)
        e.metrics.exit_overhead_fraction = e.metrics.ranking_time_s() / r->summary.iteration_time_s - 1.0;
    });
  }
  if (cancel_requested(o)) return cancelled_status("the exit-overhead runs", 0, static_cast<int64_t>(ok.size()));
  res.ranked = std::move(ok);
  res.simulate_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return res;
}

}  // namespace eellm
