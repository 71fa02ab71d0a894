// Chrome trace writer and reader (see trace.h for the layout).
#include "sim/trace.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/parse.h"
#include "model/scenario_io.h"

namespace eellm {
namespace {

// Nanoseconds as microseconds with exactly three decimals ("12.345").
std::string us(TimeNs ns) {
  char buf[40];
  const TimeNs a = ns < 0 ? -ns : ns;
  std::snprintf(buf, sizeof buf, "%s%lld.%03lld", ns < 0 ? "-" : "", static_cast<long long>(a / 1000),
                static_cast<long long>(a % 1000));
  return buf;
}

std::string quoted(const std::string& s) {
  return nlohmann::json(s).dump();
}

// A trace is at most 1 GiB of JSON and has at most 65,536 pipeline ranks (pids); its times are finite,
// non-negative and under 10^12 µs (11.6 days), so nanoseconds fit in 64 bits with room to add.
constexpr uint64_t kMaxTraceBytes = uint64_t{1} << 30;
constexpr int64_t kMaxTraceRanks = 65536;
constexpr double kMaxTraceUs = 1e12;
constexpr int kMaxTraceDepth = 32;

// A ts or dur (µs, a JSON number) in nanoseconds; refuses what is not a finite, non-negative time.
StatusOr<TimeNs> trace_time(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number())
    return Status::corruption(where + ": a time is a number of microseconds, got " + std::string(v.type_name()));
  const double us = v.get<double>();
  if (!std::isfinite(us) || us < 0 || us > kMaxTraceUs)
    return Status::corruption(where + ": time " + v.dump() + " µs is " + (us < 0 ? "negative" : "out of range") +
                              " (times are 0.." + std::to_string(static_cast<int64_t>(kMaxTraceUs)) + " µs)");
  return static_cast<TimeNs>(std::llround(us * 1000.0));
}

bool op_from_string(const std::string& s, InstrKind* out) {
  for (int k = 0; k < kNumInstrKinds; ++k)
    if (s == to_string(static_cast<InstrKind>(k))) {
      *out = static_cast<InstrKind>(k);
      return true;
    }
  return false;
}

bool category_from_string(const std::string& s, Category* out) {
  for (int k = 0; k < kNumCategories; ++k)
    if (s == to_string(static_cast<Category>(k))) {
      *out = static_cast<Category>(k);
      return true;
    }
  return false;
}

// Fallback for slices without args: "FILL-EXIT-F3.c1" → op, exit, microbatch, chunk.
void parse_name(std::string name, TimelineEvent* e) {
  if (name.rfind("FILL-", 0) == 0) name = name.substr(5);
  if (name.rfind("EXIT-", 0) == 0) {
    e->exit_part = true;
    name = name.substr(5);
  }
  static const std::pair<const char*, InstrKind> kPrefixes[] = {
      {"SEND-ACT", InstrKind::kSendAct},  {"SEND-GRAD", InstrKind::kSendGrad},
      {"RECV-ACT", InstrKind::kRecvAct},  {"RECV-GRAD", InstrKind::kRecvGrad},
      {"AR-DP", InstrKind::kAllReduceDP}, {"AR-EMB", InstrKind::kAllReduceEmbedding},
      {"OPT", InstrKind::kOptimizerStep}, {"BI", InstrKind::kBackwardInput},
      {"F", InstrKind::kForward},         {"B", InstrKind::kBackward},
      {"W", InstrKind::kBackwardWeight}};
  for (const auto& [prefix, kind] : kPrefixes) {
    const std::string p = prefix;
    if (name.rfind(p, 0) != 0) continue;
    e->op = kind;
    const std::string rest = name.substr(p.size());
    int mb = -1, chunk = 0;
    if (std::sscanf(rest.c_str(), "%d.c%d", &mb, &chunk) >= 1) {
      e->microbatch = mb;
      e->chunk = static_cast<int16_t>(chunk);
    }
    return;
  }
}

}  // namespace

std::string trace_to_json(const Timeline& t, const TraceOptions& opt) {
  std::ostringstream os;
  // The viewer's unit suits the trace's length (Chrome traces know "ms" and "ns" only): a trace of a
  // millisecond or more reads in ms, not as millions of ns.
  const char* unit = t.end_time() >= 1'000'000 ? "ms" : "ns";
  os << "{\"displayTimeUnit\":\"" << unit << "\",\"otherData\":{\"title\":" << quoted(opt.title)
     << ",\"num_ranks\":" << t.num_ranks << "},\n\"traceEvents\":[\n";
  bool first = true;
  auto sep = [&] {
    if (!first) os << ",\n";
    first = false;
  };
  for (int r = 0; r < t.num_ranks; ++r) {
    sep();
    os << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << r << ",\"args\":{\"name\":\"rank " << r << "\"}}";
    sep();
    os << "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":" << r << ",\"args\":{\"sort_index\":" << r << "}}";
    for (int s = 0; s < kNumStreams; ++s) {
      sep();
      os << "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" << r << ",\"tid\":" << s << ",\"args\":{\"name\":\""
         << to_string(static_cast<Stream>(s)) << "\"}}";
    }
  }
  int flow_id = 0;
  for (const TimelineEvent& e : t.events) {
    sep();
    char flops[64];
    std::snprintf(flops, sizeof flops, "%.17g", e.flops);  // exact round trip
    os << "{\"ph\":\"X\",\"name\":" << quoted(event_name(e)) << ",\"cat\":\"" << to_string(e.category)
       << "\",\"pid\":" << e.rank << ",\"tid\":" << static_cast<int>(e.stream) << ",\"ts\":" << us(e.t0)
       << ",\"dur\":" << us(e.t1 - e.t0) << ",\"args\":{\"op\":\"" << to_string(e.op) << "\",\"mb\":" << e.microbatch
       << ",\"chunk\":" << e.chunk << ",\"exit\":" << (e.exit_part ? "true" : "false") << ",\"bytes\":" << e.bytes
       << ",\"flops\":" << flops << ",\"instr\":" << e.instr << ",\"peer\":" << e.peer << "}}";
    if (opt.flows && (e.op == InstrKind::kSendAct || e.op == InstrKind::kSendGrad) && e.peer >= 0) {
      sep();
      os << "{\"ph\":\"s\",\"name\":\"p2p\",\"cat\":\"flow\",\"id\":" << flow_id << ",\"pid\":" << e.rank
         << ",\"tid\":" << static_cast<int>(Stream::kSend) << ",\"ts\":" << us(e.t0) << "}";
      sep();
      os << "{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"p2p\",\"cat\":\"flow\",\"id\":" << flow_id << ",\"pid\":" << e.peer
         << ",\"tid\":" << static_cast<int>(Stream::kCompute) << ",\"ts\":" << us(e.t1) << "}";
      ++flow_id;
    }
  }
  if (opt.counters) {
    for (const MemorySample& m : t.memory) {
      sep();
      char gib[64];
      std::snprintf(gib, sizeof gib, "%.12f", static_cast<double>(m.bytes) / (1024.0 * 1024.0 * 1024.0));
      os << "{\"ph\":\"C\",\"name\":\"memory\",\"pid\":" << m.rank << ",\"ts\":" << us(m.t)
         << ",\"args\":{\"GiB\":" << gib << "}}";
    }
  }
  os << "\n]}\n";
  return os.str();
}

Status write_trace(const Timeline& t, const std::string& path, const TraceOptions& opt) {
  std::ofstream f(path, std::ios::binary);
  if (!f) return Status::io_error("cannot open " + path + " for writing");
  f << trace_to_json(t, opt);
  if (!f) return Status::io_error("failed writing " + path);
  return Status::ok();
}

// A slice's args {op, mb, chunk, exit, bytes, flops, instr, peer}, each within what a run has.
Status read_slice_args(const nlohmann::json& a, TimelineEvent& e, const std::string& where) {
  InstrKind op;
  if (a.contains("op") && a["op"].is_string() && op_from_string(a["op"].get<std::string>(), &op)) e.op = op;
  const int64_t mb = a.value("mb", int64_t{e.microbatch});
  const int64_t chunk = a.value("chunk", int64_t{e.chunk});
  const int64_t instr = a.value("instr", int64_t{-1});
  const int64_t peer = a.value("peer", int64_t{-1});
  e.exit_part = a.value("exit", e.exit_part);
  e.bytes = a.value("bytes", int64_t{0});
  e.flops = a.value("flops", 0.0);
  if (mb < -1 || mb >= (int64_t{1} << 30) || chunk < 0 || chunk >= 1024 || instr < -1 || instr >= (int64_t{1} << 30) ||
      peer < -1 || peer >= kMaxTraceRanks || e.bytes < 0 || !(e.flops >= 0 && e.flops <= 1e30))
    return Status::corruption(where + ": args out of range (mb " + std::to_string(mb) + ", chunk " +
                              std::to_string(chunk) + ", instr " + std::to_string(instr) + ", peer " +
                              std::to_string(peer) + ", bytes " + std::to_string(e.bytes) + ")");
  e.microbatch = static_cast<int32_t>(mb);
  e.chunk = static_cast<int16_t>(chunk);
  e.instr = static_cast<int32_t>(instr);
  e.peer = static_cast<int32_t>(peer);
  return Status::ok();
}

// One element of traceEvents into t: a slice ("X"), a memory counter ("C") or metadata ("M").
Status read_event(const nlohmann::json& ev, const std::string& where, Timeline& t) {
  try {
    if (!ev.is_object()) return Status::corruption(where + ": an event is an object");
    const std::string ph = ev.value("ph", "");
    const int64_t pid = ev.value("pid", int64_t{0});
    if (pid < 0 || pid >= kMaxTraceRanks)
      return Status::corruption(where + ": pid " + std::to_string(pid) + " is not a pipeline rank (0.." +
                                std::to_string(kMaxTraceRanks - 1) + ")");
    if (ph == "X") {
      TimelineEvent e;
      e.rank = static_cast<int32_t>(pid);
      const int tid = ev.value("tid", 0);
      e.stream = tid >= 0 && tid < kNumStreams ? static_cast<Stream>(tid) : Stream::kCompute;
      if (!ev.contains("ts")) return Status::corruption(where + ": slice without \"ts\"");
      EELLM_ASSIGN_OR_RETURN(e.t0, trace_time(ev["ts"], where + ".ts"));
      EELLM_ASSIGN_OR_RETURN(const TimeNs dur,
                             ev.contains("dur") ? trace_time(ev["dur"], where + ".dur") : StatusOr<TimeNs>(0));
      e.t1 = e.t0 + dur;
      parse_name(ev.value("name", ""), &e);
      Category cat;
      if (category_from_string(ev.value("cat", ""), &cat))
        e.category = cat;
      else
        e.category = e.stream == Stream::kCompute ? Category::kFwd : Category::kComm;
      if (ev.contains("args") && ev["args"].is_object()) EELLM_RETURN_IF_ERROR(read_slice_args(ev["args"], e, where));
      t.events.push_back(e);
      t.num_ranks = std::max(t.num_ranks, static_cast<int>(pid) + 1);
    } else if (ph == "C" && ev.value("name", "") == "memory") {
      MemorySample m;
      m.rank = static_cast<int32_t>(pid);
      EELLM_ASSIGN_OR_RETURN(m.t, trace_time(ev.at("ts"), where + ".ts"));
      const double gib = ev.at("args").value("GiB", 0.0);
      if (!(gib >= 0 && gib <= 1e6)) return Status::corruption(where + ": memory " + std::to_string(gib) + " GiB");
      m.bytes = static_cast<int64_t>(std::llround(gib * 1024.0 * 1024.0 * 1024.0));
      t.memory.push_back(m);
      t.num_ranks = std::max(t.num_ranks, static_cast<int>(pid) + 1);
    } else if (ph == "M") {
      t.num_ranks = std::max(t.num_ranks, static_cast<int>(pid) + 1);
    }
  } catch (const std::exception& ex) {
    return Status::corruption(where + ": " + ex.what());
  }
  return Status::ok();
}

StatusOr<Timeline> parse_trace(const std::string& text, const std::string& source) {
  if (json_nesting_depth(text, kMaxTraceDepth) > kMaxTraceDepth)
    return Status::corruption(source + ": JSON nested deeper than " + std::to_string(kMaxTraceDepth) +
                              " levels; a trace is {\"traceEvents\": [{...}, ...]}");
  // Each event is read as soon as the parser has it and then dropped from the document: a 10^6-event
  // trace held whole as a JSON tree took ~900 MiB and seconds of allocation (the GUI's campaign).
  using Event = nlohmann::json::parse_event_t;
  Timeline t;
  Status status = Status::ok();
  size_t index = 0;
  bool top_array = false, events_key = false, in_events = false;  // [ev, ...] or {"traceEvents": [ev, ...]}
  const auto element = [&](int depth, Event event, nlohmann::json& parsed) {
    if (depth == 0 && event == Event::array_start) top_array = true;
    if (depth == 1 && event == Event::key) {
      events_key = parsed == "traceEvents";
      in_events = false;
    }
    if (depth == 1 && event == Event::array_start) in_events = events_key && !top_array;
    const bool element_end = event == Event::object_end || event == Event::array_end || event == Event::value;
    if (!element_end || depth != (top_array ? 1 : 2) || !(top_array || in_events)) return true;
    if (status.is_ok()) status = read_event(parsed, source + ": traceEvents[" + std::to_string(index) + "]", t);
    ++index;
    return false;  // not kept in the document
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, element);
  } catch (const std::exception& ex) {
    return Status::corruption(source + ": not valid JSON: " + ex.what());
  }
  if (j.is_object()) {
    if (!j.contains("traceEvents") || !j["traceEvents"].is_array())
      return Status::corruption(source + ": no \"traceEvents\" array");
  } else if (!j.is_array()) {
    return Status::corruption(source + ": a trace is an object with \"traceEvents\" or an array of events");
  }
  EELLM_RETURN_IF_ERROR(status);
  t.sort_events();
  return t;
}

StatusOr<Timeline> read_trace(const std::string& path) {
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, "trace", kMaxTraceBytes));
  return parse_trace(text, path);
}

}  // namespace eellm
