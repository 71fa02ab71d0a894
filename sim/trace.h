// Chrome / Perfetto trace files (DESIGN.md "trace.json") written from a Timeline and read back
// into one, so measured traces (exec/) and predicted ones compare with compare() in timeline.h.
//
// Layout: one process (pid) per pipeline rank, one thread (tid) per stream (0 compute, 1 p2p,
// 2 collective), process_name / thread_name metadata, ph:"X" slices named like F3, B3, W3,
// EXIT-F3 with cat fwd/bwd/exit/comm/fill/optimizer, flow events (ph:"s" → ph:"f") from each send
// to the receiving rank, ph:"C" counters "memory" in GiB. ts/dur are microseconds with three
// decimals, so nanosecond times round-trip exactly. Slices carry args {op, mb, chunk, exit,
// bytes, flops} that read_trace uses; one event per line, deterministic order (golden files diff).
// Thread-compatible free functions.
#pragma once

#include <string>

#include "model/status.h"
#include "sim/timeline.h"

namespace eellm {

struct TraceOptions {
  std::string title;     // stored in otherData.title
  bool flows = true;     // send → receive arrows
  bool counters = true;  // memory counters (when the timeline has samples)
};

std::string trace_to_json(const Timeline& timeline, const TraceOptions& options = {});
Status write_trace(const Timeline& timeline, const std::string& path, const TraceOptions& options = {});

// Parses a trace written by trace_to_json (or any Chrome trace whose slices carry the same args;
// slices without args are matched by their name, e.g. "B3"). Errors name the file and event index.
StatusOr<Timeline> parse_trace(const std::string& json_text, const std::string& source = "<string>");
StatusOr<Timeline> read_trace(const std::string& path);

}  // namespace eellm
