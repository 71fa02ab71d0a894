// Fuzz harness: the scenario reader, the one validation (check_scenario), describe, and simulate of
// what validates when its work is small. Any error Status is a fine answer; an exception, a signal
// or an absurd figure (non-finite or negative time, MFU above 100 %, a bubble outside [0, 1]) is a
// crash (abort, so the driver or libFuzzer keeps the input).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "model/describe.h"
#include "model/layout.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"
#include "tests/fuzz/harness.h"

namespace {

[[noreturn]] void crash(const std::string& why) {
  eellm::fuzz::crash("fuzz_scenario", why);
}

// Simulating is bounded: at most 64 layers and 4,096 schedule steps per input.
bool small_enough(const eellm::Layout& L, const eellm::Scenario& s) {
  return s.model.num_layers <= 64 && int64_t{L.pp} * L.vp * L.num_microbatches <= 4096;
}

void check_summary(const eellm::SimulationSummary& m) {
  if (!std::isfinite(m.iteration_time_s) || m.iteration_time_s <= 0)
    crash("iteration time " + std::to_string(m.iteration_time_s) + " s");
  if (!std::isfinite(m.mfu) || m.mfu < 0 || m.mfu > 1) crash("MFU " + std::to_string(m.mfu));
  if (!std::isfinite(m.bubble_fraction) || m.bubble_fraction < -1e-9 || m.bubble_fraction > 1 + 1e-9)
    crash("bubble fraction " + std::to_string(m.bubble_fraction));
  if (!std::isfinite(m.tokens_per_s) || m.tokens_per_s <= 0) crash("tokens/s " + std::to_string(m.tokens_per_s));
  if (!std::isfinite(m.peak_memory_GiB) || m.peak_memory_GiB < 0)
    crash("peak memory " + std::to_string(m.peak_memory_GiB));
}

void run(const std::string& text) {
  auto s = eellm::parse_scenario(text, "fuzz.yaml", eellm::scenarios_dir());
  if (!s.is_ok() || !eellm::check_scenario(*s).is_ok()) return;
  auto report = eellm::describe_scenario(*s);
  if (report.is_ok()) {
    (void)eellm::describe_to_text(*report);
    (void)eellm::describe_to_json(*report);
  }
  (void)eellm::scenario_to_yaml(*s);
  auto layout = eellm::derive_layout(*s);
  if (!layout.is_ok()) crash("validated, but derive_layout fails: " + layout.status().message());
  if (!small_enough(*layout, *s)) return;
  auto r = eellm::simulate(*s);
  if (r.is_ok()) check_summary(r->summary);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return eellm::fuzz::run_guarded("fuzz_scenario", data, size, run);
}
