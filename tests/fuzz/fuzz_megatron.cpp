// Fuzz harness: the Megatron/EE-LLM command-line importer (shell expansion, flag parsing, the
// scenario it builds and its validation). Any error Status is fine; an exception or a signal is a
// crash (abort).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "model/megatron.h"
#include "model/scenario_io.h"
#include "model/validate.h"
#include "tests/fuzz/harness.h"

namespace {

void run(const std::string& text) {
  auto imp = eellm::scenario_from_megatron(text);
  if (!imp.is_ok()) return;
  const eellm::Diagnostics d = eellm::validate_scenario(imp->scenario);
  (void)d.to_string();
  (void)eellm::scenario_to_yaml(imp->scenario);
  if (!d.has_errors()) (void)eellm::scenario_to_megatron(imp->scenario);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return eellm::fuzz::run_guarded("fuzz_megatron", data, size, run);
}
