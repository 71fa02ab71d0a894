// Fuzz harness: checkpoint JSON. An input naming the distributed format ("eellm-dist-checkpoint-1")
// becomes manifest.json of a tiny distributed checkpoint, any other input state.json of a tiny
// single-process one; each is then loaded as eval/generate (weights only) and resume (weights,
// moments, progress) do, its layout and scenario read. Any error Status is fine; an escaped
// exception or an out-of-range progress abort()s (a crash the driver records).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"
#include "tests/fuzz/checkpoint_fuzz.h"
#include "tests/fuzz/harness.h"

namespace {
using eellm::exec::fuzz::put_file;
using eellm::exec::fuzz::tiny_checkpoints;

void run(const std::string& bytes) {
  namespace ex = eellm::exec;
  const auto& tiny = tiny_checkpoints();
  const bool dist = bytes.find("eellm-dist-checkpoint-1") != std::string::npos;
  const std::string dir = dist ? tiny.dist_dir : tiny.single_dir;
  put_file((dist ? tiny.dist_sub + "/manifest.json" : tiny.single_sub + "/state.json"), bytes);
  ex::GptParams p;
  p.allocate(tiny.cfg);
  (void)ex::load_checkpoint(dir, tiny.cfg, p, nullptr, nullptr);
  ex::AdamW opt;
  ex::TrainProgress prog;
  if (ex::load_checkpoint(dir, tiny.cfg, p, &opt, &prog).is_ok() && prog.iteration < 0)
    eellm::fuzz::crash("checkpoint_manifest", "accepted a negative iteration " + std::to_string(prog.iteration));
  (void)ex::distributed_checkpoint_layout(dir);
  (void)ex::checkpoint_scenario(dir);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return eellm::fuzz::run_guarded("checkpoint_manifest", data, size, run);
}
