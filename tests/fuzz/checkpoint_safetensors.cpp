// Fuzz harness: safetensors bytes. Parsed directly (parse_safetensors, check_safetensors), then
// stored as the model file of a tiny single-process checkpoint with its size and checksum recorded
// (as an attacker who fixes up checksums would) and loaded. Any error Status is fine; an escaped
// exception or a wrong-sized tensor abort()s (a crash the driver records).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
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
  auto f = ex::parse_safetensors(bytes, "fuzz.safetensors");
  if (f.is_ok())
    for (const auto& [name, t] : f->tensors) {
      size_t n = 1;
      for (int64_t d : t.shape) n *= static_cast<size_t>(d);
      if (n != t.data.size())
        eellm::fuzz::crash("checkpoint_safetensors", "tensor " + name + " has a wrong-sized buffer");
    }
  if (ex::check_safetensors(bytes, "fuzz.safetensors").is_ok() != f.is_ok())
    eellm::fuzz::crash("checkpoint_safetensors", "check_safetensors and parse_safetensors disagree");
  const auto& tiny = tiny_checkpoints();
  const std::string state_path = tiny.single_sub + "/state.json";
  static const std::string good_state = ex::read_file(state_path).value();
  nlohmann::json st = nlohmann::json::parse(good_state);
  st["files"]["model.safetensors"] = {{"bytes", bytes.size()}, {"fnv1a64", ex::fnv1a64_hex(bytes)}};
  put_file(tiny.single_sub + "/model.safetensors", bytes);
  put_file(state_path, st.dump());
  ex::GptParams p;
  p.allocate(tiny.cfg);
  ex::AdamW opt;
  ex::TrainProgress prog;
  (void)ex::load_checkpoint(tiny.single_dir, tiny.cfg, p, &opt, &prog);
  (void)ex::load_checkpoint(tiny.single_dir, tiny.cfg, p, nullptr, nullptr, {true});
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return eellm::fuzz::run_guarded("checkpoint_safetensors", data, size, run);
}
