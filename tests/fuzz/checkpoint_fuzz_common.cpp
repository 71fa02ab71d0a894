#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "exec/comm/comm.h"
#include "exec/gpt/optimizer.h"
#include "exec/io/checkpoint.h"
#include "exec/io/dist_checkpoint.h"
#include "tests/exec/io/checkpoint_util.h"
#include "tests/exec/test_util.h"
#include "tests/fuzz/checkpoint_fuzz.h"

namespace eellm::exec::fuzz {
namespace fs = std::filesystem;

namespace {
void check(const Status& st, const char* what) {
  if (st.is_ok()) return;
  std::fprintf(stderr, "fuzz harness setup: %s: %s\n", what, st.to_string().c_str());
  std::abort();
}

TinyCheckpoints make() {
  TinyCheckpoints t;
  t.scenario = testing::small_scenario(testing::Variant::kGpt2);
  ModelSpec& m = t.scenario.model;
  m.num_layers = 2, m.hidden_size = 4, m.num_attention_heads = 1, m.ffn_hidden_size = 4, m.seq_length = 4;
  m.vocab_size = 5, m.make_vocab_size_divisible_by = 4;
  t.scenario.exits.exit_layer_nums = {1};
  t.scenario.exits.exit_layer_weight = {0.5};
  auto cfg = make_gpt_config(t.scenario);
  check(cfg.status(), "make_gpt_config");
  t.cfg = *cfg;
  GptParams p;
  p.allocate(t.cfg);
  init_params(p, t.cfg, 1);
  AdamW opt;
  opt.init(t.cfg);
  const fs::path root = fs::temp_directory_path() / ("eellm_fuzz_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(root);
  TrainProgress prog;
  prog.iteration = 3;
  t.single_dir = (root / "single").string();
  check(save_checkpoint(t.single_dir, t.scenario, t.cfg, p, &opt, prog), "save_checkpoint");
  t.dist_dir = (root / "dist").string();
  check(testing::save_self_distributed(t.dist_dir, t.scenario, t.cfg, p, opt, prog), "save_distributed_checkpoint");
  t.single_sub = resolve_checkpoint_dir(t.single_dir).value();
  t.dist_sub = resolve_checkpoint_dir(t.dist_dir).value();
  return t;
}
}  // namespace

// Removes the temporary checkpoints when the process exits normally.
struct Cleanup {
  std::string root;
  ~Cleanup() {
    std::error_code ec;
    if (!root.empty()) fs::remove_all(root, ec);
  }
};

const TinyCheckpoints& tiny_checkpoints() {
  static const TinyCheckpoints t = make();
  static const Cleanup cleanup{fs::path(t.single_dir).parent_path().string()};
  // EELLM_FUZZ_WRITE_SEEDS=DIR: copy the checkpoint's files there (how tests/fuzz/corpus/checkpoint_*
  // were made).
  if (const char* out = std::getenv("EELLM_FUZZ_WRITE_SEEDS"); out != nullptr && !fs::exists(fs::path(out) / "done")) {
    for (const auto& sub : {t.single_sub, t.dist_sub})
      for (const auto& e : fs::directory_iterator(sub))
        fs::copy_file(
            e.path(),
            fs::path(out) / (fs::path(sub).parent_path().filename().string() + "_" + e.path().filename().string()),
            fs::copy_options::overwrite_existing);
    put_file((fs::path(out) / "done").string(), "");
  }
  return t;
}

void put_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace eellm::exec::fuzz
