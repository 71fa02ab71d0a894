// Search-space enumeration of the planner (see plan_space.h).
#include "sim/plan_space.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "model/cost_model.h"
#include "model/layout.h"

namespace eellm::plan_detail {
namespace {

// Per-layer and head times (fwd + bwd + recompute, seconds) of one (tp, mbs, sp, recompute).
struct UnitCosts {
  bool ok = false;
  double layer = 0, embedding = 0, final_head = 0;
  std::vector<double> exits;  // per exit, in exit_layer_nums order
};

double total(const OpTimes& t) {
  return t.fwd + t.bwd();
}

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
// 0-based layer q[k] (derive_layout's rule). best(s, j), the least bottleneck of j layers in s chunks,
// grows with j, and the cost of a last chunk [i, j) falls as i grows, so the best i for (s, j) is
// where the two cross, and that crossing only moves right as j grows: one pass over i per chunk count,
// O(v·(layers − v + 1)) cost evaluations. Ties (within 1e-15 s) go to the earlier boundary, as the
// exhaustive O(v·layers²) search this replaces (tests/sim/test_plan_partition.cpp holds its results).
std::vector<int> balanced_partition(int layers, int v, const UnitCosts& u, const std::vector<int>& q) {
  if (v <= 0 || v > layers) return {};
  const double inf = 1e300;
  auto cost = [&](int i, int j) {
    double c = (j - i) * u.layer;
    if (i == 0) c += u.embedding;
    if (j == layers) c += u.final_head;
    for (size_t k = 0; k < q.size(); ++k)
      if (q[k] >= i && q[k] < j) c += u.exits[k];
    return c;
  };
  const size_t width = static_cast<size_t>(layers - v + 1);  // the ends j of chunk s lie in [s, s + width)
  std::vector<double> prev(static_cast<size_t>(layers + 1), inf), cur(prev.size(), inf);
  std::vector<int> from(static_cast<size_t>(v) * width, -1);
  prev[0] = 0;
  for (int s = 1; s <= v; ++s) {
    std::fill(cur.begin(), cur.end(), inf);
    int p = s - 1;  // the first start whose best(s − 1, p) is no lower than the chunk [p, j)
    for (int j = s; j <= layers - (v - s); ++j) {
      while (p < j && prev[static_cast<size_t>(p)] < cost(p, j)) ++p;
      int i = p;
      if (p == j || (p > s - 1 && !(prev[static_cast<size_t>(p)] < cost(p - 1, j) - 1e-15))) i = p - 1;
      cur[static_cast<size_t>(j)] = std::max(prev[static_cast<size_t>(i)], cost(i, j));
      from[static_cast<size_t>(s - 1) * width + static_cast<size_t>(j - s)] = i;
    }
    std::swap(prev, cur);
  }
  std::vector<int> parts(static_cast<size_t>(v));
  int j = layers;
  for (int s = v; s >= 1; --s) {
    const int i = from[static_cast<size_t>(s - 1) * width + static_cast<size_t>(j - s)];
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

struct Budget {
  std::vector<int> worlds;
};

StatusOr<Budget> check_budget(const Scenario& base, const PlanOptions& o) {
  const int gpn = std::max(1, base.cluster.gpus_per_node);
  auto check = [&](int g, const char* what) -> Status {
    if (g <= 0)
      return Status::invalid_argument(std::string(what) + " (" + std::to_string(g) +
                                      ") must be a positive number of GPUs");
    if (g > gpn && g % gpn != 0)
      return Status::invalid_argument(
          std::string(what) + " (" + std::to_string(g) + ") spans more than one node of cluster '" + base.cluster.name +
          "' (" + std::to_string(gpn) + " GPUs per node) but is not a whole number of nodes; use a multiple of " +
          std::to_string(gpn) + " or at most " + std::to_string(gpn));
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(check(o.gpus, "--gpus"));
  Budget b;
  b.worlds.push_back(o.gpus);
  if (o.min_gpus > 0) {
    if (o.min_gpus > o.gpus)
      return Status::invalid_argument("--min-gpus (" + std::to_string(o.min_gpus) + ") exceeds --gpus (" +
                                      std::to_string(o.gpus) + ")");
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

// The schedules (kind, virtual stages) a pipeline of `pp` stages is tried with.
std::vector<std::pair<ScheduleKind, int>> pipeline_schedules(int pp, const PlanOptions& o, bool has_exits) {
  std::vector<std::pair<ScheduleKind, int>> scheds;
  if (pp == 1) {
    scheds.emplace_back(ScheduleKind::kNoPipelining, 1);
    return scheds;
  }
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
  return scheds;
}

// State of one enumeration: the inputs, the tables it fills, the unit costs per (tp, mbs, sp,
// recompute) and the candidates so far.
struct Walk {
  Walk(const Scenario& b, const PlanOptions& opts, Tables& t) : base(b), o(opts), tables(t) {}
  const Scenario& base;
  const PlanOptions& o;
  Tables& tables;
  bool has_exits = false;
  std::vector<int> q;  // 0-based reading layer of each given exit
  std::map<std::tuple<int, int, bool, int>, UnitCosts> unit_cache;
  // One balanced_partition per unit costs and chunk count, not one per world size and schedule.
  std::map<std::tuple<int, int, bool, int, int>, std::vector<int>> partition_cache;
  std::vector<Cand> out;
  bool stopped = false;  // o.cancelled turned true: the enumeration ends at the next step
};

// Partitions of `nvs` chunks under these unit costs: even (id 0), the balanced one and, when asked,
// its neighbourhood (from index `narrow` on).
std::vector<int32_t> partitions_of(Walk& w, const Cand& c, int nvs, size_t& narrow) {
  narrow = 1;
  const int layers = w.base.model.num_layers;
  std::vector<int32_t> parts{0};
  if (!w.o.search_partition || nvs <= 1 || nvs > layers) return parts;
  auto key = std::make_tuple(static_cast<int>(c.tp), static_cast<int>(c.mbs), c.sp, static_cast<int>(c.recompute));
  auto it = w.unit_cache.find(key);
  if (it == w.unit_cache.end())
    it = w.unit_cache.emplace(key, unit_costs(w.base, c.tp, c.mbs, c.sp, c.recompute)).first;
  if (!it->second.ok) return parts;
  const auto pkey = std::tuple_cat(key, std::make_tuple(nvs));
  auto memo = w.partition_cache.find(pkey);
  if (memo == w.partition_cache.end() && (w.stopped || (w.o.cancelled && w.o.cancelled()))) {
    w.stopped = true;  // the partition is the costly step between two polls of enumerate()
    return parts;
  }
  if (memo == w.partition_cache.end())
    memo = w.partition_cache.emplace(pkey, balanced_partition(layers, nvs, it->second, w.q)).first;
  const std::vector<int>& bal = memo->second;
  const std::vector<int> even = even_parts(layers, nvs);
  if (!bal.empty() && bal != even) parts.push_back(w.tables.partition_id(bal));
  narrow = parts.size();
  // Neighbourhood: one layer moved across one boundary of the balanced split
  // (trades a little time for memory on the early stages, or the reverse).
  if (!bal.empty() && w.o.partition_neighbourhood)
    for (size_t b = 0; b + 1 < bal.size(); ++b)
      for (int delta : {-1, 1}) {
        std::vector<int> q2 = bal;
        q2[b] += delta;
        q2[b + 1] -= delta;
        if (q2[b] < 1 || q2[b + 1] < 1 || q2 == even) continue;
        const int32_t id = w.tables.partition_id(q2);
        if (std::find(parts.begin(), parts.end(), id) == parts.end()) parts.push_back(id);
      }
  return parts;
}

// Exit placements tried with partition `part`: as given (id 0) and, with movable exits, snapped to
// its chunk boundaries as post- and pre-exits.
std::vector<int32_t> exit_variants(Walk& w, int32_t part, int nvs) {
  std::vector<int32_t> exit_vars{0};
  if (!w.o.movable_exits || !w.has_exits || nvs <= 1) return exit_vars;
  const ExitSpec& given = w.base.exits;
  const std::vector<int> pv =
      part == 0 ? even_parts(w.base.model.num_layers, nvs) : w.tables.partitions[static_cast<size_t>(part)];
  if (pv.empty()) return exit_vars;
  for (bool pre : {false, true}) {
    ExitConfig ec = snap_exits(given, pv, pre);
    if (ec.nums.empty()) continue;
    if (ec.nums == given.exit_layer_nums && pre == given.pre_exit) continue;
    exit_vars.push_back(w.tables.exit_id(ec));
  }
  return exit_vars;
}

// Every candidate of one (world, tp, pp, vp, mbs, schedule): recompute × SP × partition × exit
// placement × distributed optimizer.
void add_layouts(Walk& w, Cand c) {
  const int nvs = c.pp * c.vp;
  const int dp = c.world / (c.tp * c.pp);
  for (RecomputeGranularity rc : w.o.recompute) {
    c.recompute = rc;
    for (int sp = 0; sp <= (w.o.search_sequence_parallel && c.tp > 1 ? 1 : 0); ++sp) {
      c.sp = sp == 1;
      size_t narrow = 1;
      const std::vector<int32_t> parts = partitions_of(w, c, nvs, narrow);
      for (size_t pi = 0; pi < parts.size(); ++pi) {
        const int32_t part = parts[pi];
        c.partition = part;
        c.neighbour = pi >= narrow;
        for (int32_t ev : exit_variants(w, part, nvs))
          for (int dopt = 0; dopt <= (w.o.search_distributed_optimizer && dp > 1 ? 1 : 0); ++dopt) {
            c.exits = ev;
            c.dopt = dopt == 1;
            w.out.push_back(c);
          }
      }
    }
  }
}

// The (world, tp, pp) steps of the walk in enumeration order: TP (default: powers of two up to the
// heads) and PP (default: every divisor) dividing each world size of the budget.
std::vector<std::tuple<int, int, int>> walk_steps(const Budget& budget, const ModelSpec& m, const PlanOptions& o) {
  std::vector<std::tuple<int, int, int>> steps;
  for (int world : budget.worlds) {
    std::vector<int> tps = o.tp_values;
    if (tps.empty())
      for (int t = 1; t <= std::min(world, std::max(1, m.num_attention_heads)); t *= 2) tps.push_back(t);
    for (int tp : tps) {
      if (tp <= 0 || world % tp != 0) continue;
      std::vector<int> pps = o.pp_values.empty() ? divisors_up_to(world / tp, world / tp) : o.pp_values;
      for (int pp : pps)
        if (pp > 0 && (world / tp) % pp == 0) steps.emplace_back(world, tp, pp);
    }
  }
  return steps;
}

}  // namespace

Status cancelled_status(const char* phase, int64_t done, int64_t total) {
  return Status::cancelled(std::string("the search was stopped by the caller during ") + phase + " (" +
                           std::to_string(done) + " of " + std::to_string(total) + " done)");
}

StatusOr<std::vector<Cand>> enumerate(const Scenario& base, const PlanOptions& o, Tables& tables) {
  EELLM_ASSIGN_OR_RETURN(Budget budget, check_budget(base, o));
  Walk w(base, o, tables);
  w.has_exits = !base.exits.exit_layer_nums.empty();
  tables.exit_id(ExitConfig{base.exits.exit_layer_nums, base.exits.pre_exit});
  for (int n : base.exits.exit_layer_nums) w.q.push_back(n - 1);
  const std::vector<std::tuple<int, int, int>> steps = walk_steps(budget, base.model, o);
  const int64_t total = static_cast<int64_t>(steps.size());
  for (int64_t k = 0; k < total; ++k) {
    if (o.progress) o.progress("enumerate", k, total);
    w.stopped = w.stopped || (o.cancelled && o.cancelled());
    if (w.stopped) return cancelled_status("enumeration", k, total);
    const auto [world, tp, pp] = steps[static_cast<size_t>(k)];
    for (int mbs : o.micro_batch_values)
      for (auto [kind, vp] : pipeline_schedules(pp, o, w.has_exits)) {
        Cand c;
        c.world = world;
        c.tp = tp;
        c.pp = pp;
        c.vp = vp;
        c.mbs = mbs;
        c.schedule = kind;
        add_layouts(w, c);
      }
  }
  if (w.stopped) return cancelled_status("enumeration", total - 1, total);
  if (o.progress) o.progress("enumerate", total, total);
  return std::move(w.out);
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

}  // namespace eellm::plan_detail
