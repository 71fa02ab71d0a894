// Dependency graph, deadlock cycles, critical path and bubble attribution (see graph.h).
#include "sim/graph.h"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>

namespace eellm {
namespace {

using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
using Vertex = boost::graph_traits<Graph>::vertex_descriptor;
using EdgeDesc = boost::graph_traits<Graph>::edge_descriptor;

struct CycleFound {
  Vertex from, to;  // the back edge from → to closes the cycle
};

// Records tree-edge parents and stops at the first back edge.
class CycleVisitor : public boost::default_dfs_visitor {
 public:
  explicit CycleVisitor(std::vector<Vertex>* parent) : parent_(parent) {}
  void tree_edge(EdgeDesc e, const Graph& g) const { (*parent_)[boost::target(e, g)] = boost::source(e, g); }
  void back_edge(EdgeDesc e, const Graph& g) const { throw CycleFound{boost::source(e, g), boost::target(e, g)}; }

 private:
  std::vector<Vertex>* parent_;
};

}  // namespace

Status find_deadlock(const Schedule& s) {
  EELLM_ASSIGN_OR_RETURN(MessageMap mm, match_messages(s));
  std::vector<size_t> base(s.ranks.size() + 1, 0);
  for (size_t r = 0; r < s.ranks.size(); ++r) base[r + 1] = base[r] + s.ranks[r].size();
  Graph g(base.back());
  std::vector<std::pair<int, int>> where(base.back());
  std::vector<size_t> emb_posts, opts;
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    for (size_t i = 0; i < s.ranks[r].size(); ++i) {
      where[base[r] + i] = {static_cast<int>(r), static_cast<int>(i)};
      if (i + 1 < s.ranks[r].size()) boost::add_edge(base[r] + i, base[r] + i + 1, g);
      const Instr& in = s.ranks[r][i];
      if (in.kind == InstrKind::kAllReduceEmbedding) emb_posts.push_back(base[r] + i);
      if (in.kind == InstrKind::kOptimizerStep) opts.push_back(base[r] + i);
    }
  }
  for (const auto& m : mm.messages)
    boost::add_edge(base[static_cast<size_t>(m.src_rank)] + static_cast<size_t>(m.src_index),
                    base[static_cast<size_t>(m.dst_rank)] + static_cast<size_t>(m.dst_index), g);
  if (emb_posts.size() >= 2)
    for (size_t p : emb_posts)
      for (size_t o : opts)
        if (where[o].first != where[p].first) boost::add_edge(p, o, g);

  std::vector<Vertex> parent(base.back());
  for (size_t v = 0; v < parent.size(); ++v) parent[v] = v;
  try {
    boost::depth_first_search(g, boost::visitor(CycleVisitor(&parent)));
  } catch (const CycleFound& c) {
    std::vector<Vertex> cycle{c.from};
    for (Vertex v = c.from; v != c.to && parent[v] != v;) {
      v = parent[v];
      cycle.push_back(v);
    }
    std::reverse(cycle.begin(), cycle.end());
    std::string msg = "deadlock: the instructions wait for each other in a cycle:";
    for (Vertex v : cycle) {
      const auto [r, i] = where[v];
      msg += "\n  rank " + std::to_string(r) + " instruction " + std::to_string(i) + " (" +
             to_string(s.ranks[static_cast<size_t>(r)][static_cast<size_t>(i)]) + ")";
    }
    msg += "\n  → back to rank " + std::to_string(where[c.to].first) + " instruction " +
           std::to_string(where[c.to].second);
    return Status::failed_precondition(msg);
  }
  return Status::ok();
}

std::vector<CriticalStep> critical_path(const Schedule& s, const EngineResult& res) {
  std::vector<CriticalStep> path;
  if (s.ranks.empty()) return path;
  // Start at the compute step that finishes last.
  int r = -1, i = -1;
  TimeNs best = -1;
  for (size_t rr = 0; rr < s.ranks.size(); ++rr)
    for (size_t ii = 0; ii < s.ranks[rr].size(); ++ii)
      if (s.ranks[rr][ii].is_compute() && res.timing[rr][ii].end > best) {
        best = res.timing[rr][ii].end;
        r = static_cast<int>(rr);
        i = static_cast<int>(ii);
      }
  while (r >= 0 && i >= 0) {
    const auto& list = s.ranks[static_cast<size_t>(r)];
    const auto& timing = res.timing[static_cast<size_t>(r)];
    const InstrTiming ti = timing[static_cast<size_t>(i)];
    path.push_back({CriticalStep::Kind::kCompute, r, i, ti.start, ti.end});
    // Previous compute step on this rank and the latest wait in between.
    int prev = -1;
    int cause_msg = -1;
    TimeNs cause_t = -1;
    for (int j = i - 1; j >= 0; --j) {
      const Instr& in = list[static_cast<size_t>(j)];
      if (in.is_compute()) {
        prev = j;
        break;
      }
      if (in.is_recv()) {
        const int id = res.messages->message_of[static_cast<size_t>(r)][static_cast<size_t>(j)];
        if (res.msg_arrival[static_cast<size_t>(id)] > cause_t) {
          cause_t = res.msg_arrival[static_cast<size_t>(id)];
          cause_msg = id;
        }
      }
    }
    const TimeNs prev_end = prev >= 0 ? timing[static_cast<size_t>(prev)].end : 0;
    if (ti.start > prev_end && cause_msg >= 0 && cause_t == ti.start) {
      const auto& m = res.messages->messages[static_cast<size_t>(cause_msg)];
      path.push_back({CriticalStep::Kind::kTransfer, m.src_rank, m.src_index,
                      res.msg_posted[static_cast<size_t>(cause_msg)], cause_t});
      // Continue at the sender's compute step that preceded the send.
      r = m.src_rank;
      i = -1;
      for (int j = m.src_index - 1; j >= 0; --j)
        if (s.ranks[static_cast<size_t>(r)][static_cast<size_t>(j)].is_compute()) {
          i = j;
          break;
        }
      continue;
    }
    if (ti.start > prev_end && list[static_cast<size_t>(i)].kind == InstrKind::kOptimizerStep)
      path.push_back({CriticalStep::Kind::kCollective, r, i, prev_end, ti.start});
    i = prev;
  }
  std::reverse(path.begin(), path.end());
  return path;
}

std::string format_critical_path(const Schedule& s, const std::vector<CriticalStep>& path) {
  std::string out;
  const char* sep = " → ";
  for (const CriticalStep& c : path) {
    if (c.kind == CriticalStep::Kind::kTransfer) {
      sep = " ~> ";  // the next step waited for this transfer
      continue;
    }
    if (c.kind == CriticalStep::Kind::kCollective) {
      sep = " =collective=> ";
      continue;
    }
    if (!out.empty()) out += sep;
    sep = " → ";
    out += to_string(s.ranks[static_cast<size_t>(c.rank)][static_cast<size_t>(c.instr)]);
    out += '@';
    out += std::to_string(c.rank);
  }
  return out;
}

std::vector<BubbleAttribution> attribute_bubbles(const Schedule& s, const EngineResult& res, const SimCosts& costs) {
  const size_t pp = s.ranks.size();
  std::vector<BubbleAttribution> out(pp);
  const TimeNs T = res.iteration_ns;
  for (size_t r = 0; r < pp; ++r) {
    BubbleAttribution& b = out[r];
    const auto& list = s.ranks[r];
    TimeNs prev_end = 0;
    TimeNs latest_arrival = -1, latest_transfer = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const Instr& in = list[i];
      const InstrTiming ti = res.timing[r][i];
      if (in.is_recv()) {
        const int id = res.messages->message_of[r][i];
        const TimeNs arr = res.msg_arrival[static_cast<size_t>(id)];
        if (arr > latest_arrival) {
          latest_arrival = arr;
          const auto& m = res.messages->messages[static_cast<size_t>(id)];
          // Transfer time proper: from the send's start on the link to the arrival.
          TimeNs posted = res.msg_posted[static_cast<size_t>(id)];
          (void)m;
          latest_transfer = arr - posted;
        }
        continue;
      }
      if (!in.is_compute()) continue;
      const TimeNs gap = ti.start - prev_end;
      if (gap > 0) {
        b.idle += gap;
        if (in.kind == InstrKind::kOptimizerStep && latest_arrival < ti.start) {
          b.exposed_comm += gap;  // waiting for DP / embedding collectives
        } else {
          const TimeNs comm = std::min(gap, latest_transfer);
          b.exposed_comm += comm;
          b.dependency += gap - comm;
        }
      }
      latest_arrival = -1;
      latest_transfer = 0;
      const TimeNs d = ti.end - ti.start;
      b.busy += d;
      if (in.kind != InstrKind::kOptimizerStep) {
        const ChunkTimes& c = costs.chunks[static_cast<size_t>(s.virtual_stage(static_cast<int>(r), in.chunk))];
        const TimeNs ex = exit_duration(in, c);
        b.exit_busy += std::min(ex, d);
      }
      prev_end = ti.end;
    }
    if (T > prev_end) {  // drain: the rank waits for the others to finish
      b.idle += T - prev_end;
      b.dependency += T - prev_end;
    }
  }
  // Carve stage imbalance and exit work out of the dependency waits.
  TimeNs max_busy = 0, max_backbone = 0;
  for (const auto& b : out) {
    max_busy = std::max(max_busy, b.busy);
    max_backbone = std::max(max_backbone, b.busy - b.exit_busy);
  }
  for (auto& b : out) {
    const TimeNs excess = max_busy - b.busy;
    const TimeNs backbone_excess = std::max<TimeNs>(0, max_backbone - (b.busy - b.exit_busy));
    b.imbalance = std::min({b.dependency, backbone_excess, excess});
    b.exit = std::min(b.dependency - b.imbalance, std::max<TimeNs>(0, excess - b.imbalance));
    b.dependency -= b.imbalance + b.exit;
  }
  return out;
}

}  // namespace eellm
