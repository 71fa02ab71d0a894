// Fuzz harness: the Chrome trace reader (sim/trace.cpp) and what compare-trace does with two traces
// (compare against itself). Any error Status is fine; an exception, a signal, or a timeline with a
// negative time, an event that ends before it starts, or a rank outside num_ranks is a crash (abort).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "sim/timeline.h"
#include "sim/trace.h"
#include "tests/fuzz/harness.h"

namespace {

[[noreturn]] void crash(const std::string& why) {
  eellm::fuzz::crash("fuzz_trace", why);
}

void run(const std::string& text) {
  auto t = eellm::parse_trace(text, "fuzz.json");
  if (!t.is_ok()) return;
  for (const eellm::TimelineEvent& e : t->events) {
    if (e.t0 < 0 || e.t1 < e.t0) crash("event [" + std::to_string(e.t0) + ", " + std::to_string(e.t1) + ")");
    if (e.rank < 0 || e.rank >= t->num_ranks) crash("rank " + std::to_string(e.rank));
  }
  if (t->events.empty()) return;
  (void)eellm::compare(*t, *t).to_string();
  (void)eellm::trace_to_json(*t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return eellm::fuzz::run_guarded("fuzz_trace", data, size, run);
}
