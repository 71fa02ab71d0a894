// [reliability] Hostile input at the model boundary: every number checked for range and overflow with
// the field named, files refused by type, hostile YAML and Megatron lines answered with errors in
// bounded time and memory. One test per class of the issue's examples (docs/reliability.md).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/megatron.h"
#include "model/parse.h"
#include "model/scenario_io.h"
#include "model/validate.h"

namespace eellm {
namespace {

namespace fs = std::filesystem;

// EXPECT_CONTAINS(text, part): `part` occurs in `text` (the message is printed when it does not).
#define EXPECT_CONTAINS(text, part)                                                                                    \
  do {                                                                                                                 \
    const std::string eellm_text_ = (text), eellm_part_ = (part);                                                      \
    EXPECT_NE(eellm_text_.find(eellm_part_), std::string::npos) << "'" << eellm_part_ << "' not in:\n" << eellm_text_; \
  } while (0)

// tiny-ee as shipped; each test changes one field.
Scenario tiny() {
  auto s = load_scenario("tiny-ee");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return *s;
}

// The messages of the errors of validate_scenario, one per line.
std::string errors_of(const Scenario& s) {
  const Status st = check_scenario(s);
  return st.is_ok() ? std::string() : st.message();
}

TEST(Reliability, ShippedScenariosPassTheBounds) {
  for (const auto& e : fs::directory_iterator(scenarios_dir())) {
    if (e.path().extension() != ".yaml") continue;
    auto s = load_scenario(e.path().string());
    EXPECT_TRUE(s.is_ok()) << e.path() << ": " << s.status().to_string();
  }
}

TEST(Reliability, ProductsAreCheckedIn64Bits) {
  Scenario s = tiny();
  s.parallel.tensor_model_parallel_size = 65536;
  s.parallel.pipeline_model_parallel_size = 65536;
  EXPECT_CONTAINS(errors_of(s), ("tensor_model_parallel_size × pipeline_model_parallel_size (65536 × 65536)"));
  s = tiny();
  s.parallel.pipeline_model_parallel_size = 65536;
  s.parallel.virtual_pipeline_model_parallel_size = 64;
  s.parallel.world_size = 65536;
  s.cluster.num_nodes = 1024;
  s.cluster.gpus_per_node = 64;
  EXPECT_CONTAINS(errors_of(s), ("pipeline_model_parallel_size × virtual_pipeline_model_parallel_size (65536 × 64)"));
  s = tiny();
  s.model.make_vocab_size_divisible_by = 65536;
  s.parallel.tensor_model_parallel_size = 4096;
  EXPECT_CONTAINS(errors_of(s), ("make_vocab_size_divisible_by × tensor_model_parallel_size (65536 × 4096)"));
  s = tiny();
  s.cluster.num_nodes = 1 << 20;
  s.cluster.gpus_per_node = 1024;
  EXPECT_CONTAINS(errors_of(s), ("cluster.num_nodes × gpus_per_node (1048576 × 1024) is larger than 1048576"));
  s = tiny();
  s.training.micro_batch_size = 1 << 24;
  s.parallel.data_parallel_size = 4096;
  s.parallel.world_size = 4096;
  s.cluster.num_nodes = 4096;
  EXPECT_CONTAINS(errors_of(s), ("micro_batch_size × data_parallel_size (16777216 × 4096)"));
}

TEST(Reliability, WorkThatWouldExplodeIsRefusedWithItsSize) {
  Scenario s = tiny();
  s.training.global_batch_size = 1 << 30;
  EXPECT_CONTAINS(errors_of(s), ("training.global_batch_size (1073741824) is larger than 16777216"));
  s.training.global_batch_size = 1 << 22;
  s.training.micro_batch_size = 1;
  EXPECT_CONTAINS(errors_of(s), ("makes 4194304 microbatches per iteration, more than 1048576"));
  s = tiny();
  s.model.num_layers = 1000000;
  EXPECT_CONTAINS(errors_of(s), ("model.num_layers (1000000) is larger than 4096 layers"));
  s = tiny();
  s.parallel.pipeline_model_parallel_size = 4096;
  s.parallel.layer_partition.assign(4096, 0);
  s.parallel.layer_partition[0] = 6;
  s.parallel.world_size = 4096;
  s.cluster.num_nodes = 4096;
  s.parallel.schedule = ScheduleKind::k1F1B;
  s.training.global_batch_size = 1 << 20;
  s.training.micro_batch_size = 1;
  EXPECT_CONTAINS(errors_of(s), ("the schedule's steps: pipeline stages × virtual stages × microbatches"));
}

TEST(Reliability, SizesBeyondAnyRealSystemAreNamed) {
  Scenario s = tiny();
  s.model.vocab_size = 2147483647;
  s.model.seq_length = 2147483647;
  const std::string e = errors_of(s);
  EXPECT_CONTAINS(e, ("model.vocab_size (2147483647) is larger than 16777216"));
  EXPECT_CONTAINS(e, ("model.seq_length (2147483647) is larger than 1048576"));
}

TEST(Reliability, FloatsAreFiniteAndPhysical) {
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* field;
    void (*set)(Scenario&, double);
    double value;
  };
  const Case cases[] = {
      {"cluster.device.memory_bandwidth_GBps",
       [](Scenario& s, double v) { s.cluster.device.memory_bandwidth_GBps = v; }, 5e-324},
      {"cluster.device.memory_bandwidth_GBps",
       [](Scenario& s, double v) { s.cluster.device.memory_bandwidth_GBps = v; }, -0.0},
      {"cluster.device.kernel_launch_us", [](Scenario& s, double v) { s.cluster.device.kernel_launch_us = v; }, 1e30},
      {"cluster.device.peak_tflops_fp32", [](Scenario& s, double v) { s.cluster.device.peak_tflops_fp32 = v; }, -312},
      {"cluster.device.memory_GiB", [](Scenario& s, double v) { s.cluster.device.memory_GiB = v; }, -1},
      {"cluster.device.gemm_max_efficiency", [](Scenario& s, double v) { s.cluster.device.gemm_max_efficiency = v; },
       1.5},
      {"cluster.device.collective_efficiency",
       [](Scenario& s, double v) { s.cluster.device.collective_efficiency = v; }, inf},
      {"training.lr", [](Scenario& s, double v) { s.training.lr = v; }, -5},
      {"training.lr", [](Scenario& s, double v) { s.training.lr = v; }, inf},
      {"training.adam_beta1", [](Scenario& s, double v) { s.training.adam_beta1 = v; }, 7},
      {"training.adam_beta2", [](Scenario& s, double v) { s.training.adam_beta2 = v; }, 1},
      {"inference.early_exit_thres", [](Scenario& s, double v) { s.inference.early_exit_thres = v; }, 2},
      {"execution.recv_timeout_s", [](Scenario& s, double v) { s.execution.recv_timeout_s = v; }, inf},
  };
  for (const Case& c : cases) {
    Scenario s = tiny();
    c.set(s, c.value);
    EXPECT_CONTAINS(errors_of(s), std::string(c.field) + " (");  // the field is named
  }
  Scenario s = tiny();
  s.cluster.gpus_per_node = 2;
  s.cluster.intra_node.bandwidth_GBps = -5;
  EXPECT_CONTAINS(errors_of(s), ("cluster.intra_node.bandwidth_GBps (-5) must be in [0.001, 1e+06]"));
}

TEST(Reliability, NoClusterSectionIsAnError) {
  for (const char* yaml : {"name: x\nmodel: {num_layers: 2}\n", "name: x\ncluster: {num_nodes: 2}\n"}) {
    auto s = parse_scenario(yaml, "nocluster.yaml");
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    const std::string e = errors_of(*s);
    EXPECT_CONTAINS(e, "cluster: no device (the scenario has no cluster section");
    EXPECT_EQ(e.find("device_GiB"), std::string::npos);
    EXPECT_EQ(e.find("memory_GiB"), std::string::npos);  // not every device figure reported as 0
  }
}

TEST(Reliability, InvalidUtf8StringsAreRefused) {
  size_t at = 0;
  EXPECT_TRUE(valid_utf8("tiny-ee \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(valid_utf8("tiny\xc3\x28", &at));
  EXPECT_EQ(at, 4u);
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe2\x82"));          // cut short
  auto s = parse_scenario("name: tiny\xc3\x28\ncluster: {profile: local-cpu}\n", "utf8.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.status().message(), ("not valid UTF-8"));
}

// 100,000 keys: 20 errors and a count (the duplicate check is a hash set, linear in the keys).
TEST(Reliability, HundredThousandKeysGiveTwentyErrorsAndACount) {
  std::string yaml = "cluster: {profile: local-cpu}\nmodel:\n";
  for (int i = 0; i < 100000; ++i) yaml += "  k" + std::to_string(i % 50000) + ": 1\n";
  auto s = parse_scenario(yaml, "keys.yaml");
  ASSERT_FALSE(s.is_ok());
  const std::string& m = s.status().message();
  EXPECT_CONTAINS(m, ("unknown key 'k0'"));
  EXPECT_CONTAINS(m, ("... and 99980 more error(s)"));
  EXPECT_EQ(std::count(m.begin(), m.end(), '\n'), 20);
  auto dup = parse_scenario("cluster: {profile: local-cpu}\nmodel:\n  num_layers: 2\n  num_layers: 3\n", "d.yaml");
  ASSERT_FALSE(dup.is_ok());
  EXPECT_CONTAINS(dup.status().message(), ("duplicate key 'num_layers' (first given on line 3)"));
}

class SpecialFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("eellm_rel_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string scenario_naming(const std::string& profile) {
    const fs::path p = dir_ / "s.yaml";
    std::ofstream(p) << "name: s\ncluster:\n  profile: " << profile << "\n";
    return p.string();
  }
  fs::path dir_;
};

TEST_F(SpecialFiles, ProfilesAreRefusedByTypeWithTheirName) {
  fs::create_symlink("loop.yaml", dir_ / "loop.yaml");
  auto s = load_scenario(scenario_naming("./loop.yaml"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.status().message(), ("Too many levels of symbolic links"));
  s = load_scenario(scenario_naming("./" + std::string(300, 'p') + ".yaml"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.status().message(), ("File name too long"));
  ASSERT_EQ(::mkfifo((dir_ / "fifo.yaml").c_str(), 0600), 0);
  s = load_scenario(scenario_naming("./fifo.yaml"));  // never blocks waiting for a writer
  ASSERT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.status().message(), ("is a FIFO (named pipe), not a regular file"));
  fs::create_directories(dir_ / "dir.yaml");
  s = load_scenario(scenario_naming("./dir.yaml"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.status().message(), ("is a directory, not a regular file"));
  auto d = load_device_profile("/dev/zero");
  ASSERT_FALSE(d.is_ok());
  EXPECT_CONTAINS(d.status().message(), ("device profile '/dev/zero' is a character device"));
  auto z = load_scenario("/dev/zero");
  ASSERT_FALSE(z.is_ok());
  EXPECT_CONTAINS(z.status().message(), ("is a character device"));
}

TEST_F(SpecialFiles, ReadsAreBounded) {
  const fs::path big = dir_ / "big.txt";
  std::ofstream(big) << std::string(4096, 'x');
  auto r = read_regular_file(big.string(), "trace", 1024);
  ASSERT_FALSE(r.is_ok());
  EXPECT_CONTAINS(r.status().message(), ("is 4096 bytes, more than the 1024 a trace may have"));
  auto ok = read_regular_file(big.string(), "trace", 4096);
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->size(), 4096u);
}

TEST_F(SpecialFiles, InjectedReaderFaultThrows) {
  ::setenv("EELLM_FAULT_INJECT", "reader", 1);
  EXPECT_THROW((void)read_regular_file("x", "scenario", 10), std::runtime_error);
  ::unsetenv("EELLM_FAULT_INJECT");
}

TEST(Reliability, JsonNestingDepthStopsEarly) {
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": "[[[[["}]})", 64), 3);
  EXPECT_EQ(json_nesting_depth(std::string(100000, '['), 8), 9);  // stops one past the limit
}

// Megatron lines: arithmetic that traps, nesting that recurses, variables that double.
TEST(Reliability, MegatronArithmeticNeverTraps) {
  auto run = [](const std::string& expr) {
    return expand_launch_command("L=$(( " + expr + " ))\npython pretrain_gpt.py --num-layers $L\n");
  };
  auto div = run("(-9223372036854775807 - 1) / -1");
  ASSERT_FALSE(div.is_ok());
  EXPECT_CONTAINS(div.status().message(), ("the result overflows a 64-bit integer"));
  auto mod = run("(-9223372036854775807 - 1) % -1");
  ASSERT_TRUE(mod.is_ok()) << mod.status().to_string();
  EXPECT_EQ(mod->back(), "0");
  for (const char* e : {"9223372036854775807 + 1", "-9223372036854775807 - 2", "4294967296 * 4294967296",
                        "-(-9223372036854775807 - 1)", "99999999999999999999"}) {
    auto r = run(e);
    EXPECT_FALSE(r.is_ok()) << e;
  }
  auto ok = run("(2 + 3) * 4 % 7 - -1");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->back(), "7");
  EXPECT_FALSE(run("1 / 0").is_ok());
}

TEST(Reliability, MegatronNestingAndExpansionAreBounded) {
  const std::string deep = "L=$((" + std::string(50000, '(') + "1" + std::string(50000, ')') + "))\n";
  auto r = expand_launch_command(deep + "python p.py --num-layers $L\n");
  ASSERT_FALSE(r.is_ok());
  EXPECT_CONTAINS(r.status().message(), ("nested deeper than 64 levels"));
  auto minus = expand_launch_command("L=$((" + std::string(50000, '-') + "1))\npython p.py --num-layers $L\n");
  ASSERT_FALSE(minus.is_ok());
  std::string doubling = "A=xxxxxxxxxxxxxxxx\n";
  for (int i = 0; i < 40; ++i) doubling += "A=$A$A\n";
  auto d = expand_launch_command(doubling + "python p.py --num-layers 2 --x \"$A\"\n");
  ASSERT_FALSE(d.is_ok());
  EXPECT_CONTAINS(d.status().message(), ("the variable expansions exceed 4 MiB"));
  auto fine = expand_launch_command("A=ab\nA=$A$A\npython p.py --num-layers 2 --x $A\n");
  ASSERT_TRUE(fine.is_ok());
  EXPECT_EQ(fine->back(), "abab");
}

}  // namespace
}  // namespace eellm
