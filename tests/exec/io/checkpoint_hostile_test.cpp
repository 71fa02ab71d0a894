// Hostile checkpoints (issue [reliability] 23): every malformed header, state file, manifest and
// directory entry is refused with a Status naming the file and field before anything is copied —
// no escaped exception, no out-of-bounds write (these tests also run under AddressSanitizer).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "exec/io/checkpoint.h"
#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"
#include "tests/exec/io/checkpoint_util.h"
#include "tests/exec/test_util.h"

namespace eellm::exec {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Safetensors bytes with header `h` (as given) and `data_bytes` zero bytes of data.
std::string raw_safetensors(const std::string& h, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  return out + h + std::string(data_bytes, '\0');
}

std::string header_error(const std::string& h, size_t data_bytes = 16) {
  auto f = parse_safetensors(raw_safetensors(h, data_bytes), "x.safetensors");
  EXPECT_FALSE(f.is_ok()) << h;
  if (f.is_ok()) return "";
  EXPECT_EQ(f.status().code(), StatusCode::kCorruption) << f.status().to_string();
  EXPECT_NE(f.status().message().find("x.safetensors"), std::string::npos) << f.status().to_string();
  return f.status().message();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(HostileSafetensors, HeaderTypesSizesAndOffsets) {
  EXPECT_TRUE(parse_safetensors(raw_safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16), "x")
                  .is_ok());
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})"), "tensor a.shape"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","data_offsets":[0,16]}})"), "a.shape is missing"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":"0,16"}})"), "a.data_offsets"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4]}})"), "a.data_offsets is missing"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[-4,12]}})"), "a.data_offsets"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})"), "F32 only"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})"), "a.dtype is number"));
  EXPECT_TRUE(has(header_error(R"({"a":[1,2]})"), "tensor a is array"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})"), "dimension -4"));
  // Offsets that overflow size_t arithmetic, past the file, or not 4 × elements.
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[18446744073709551608,8]}})"),
                  "outside the data section"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})"), "outside the data"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})"), "needs 12"));
  EXPECT_TRUE(
      has(header_error(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})"), "dimension"));
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[1048576,1048576,4],"data_offsets":[0,16]}})"),
                  "more than 2^40 elements"));
  // Two tensors sharing bytes.
  EXPECT_TRUE(has(header_error(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"),
                  "overlap"));
  EXPECT_TRUE(has(header_error(R"({"__metadata__":[1]})"), "__metadata__"));
  EXPECT_TRUE(has(header_error(R"({"__metadata__":{"k":1}})"), "__metadata__.k"));
  EXPECT_TRUE(has(header_error(std::string(100000, '[') + std::string(100000, ']')), "nested deeper"));
  EXPECT_TRUE(has(header_error("[1,2]"), "not a JSON object"));
  // A header length past the file, and 2^64 − 1.
  std::string bytes = raw_safetensors("{}", 0);
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_FALSE(parse_safetensors(bytes, "x").is_ok());
}

TEST(HostileSafetensors, NonFiniteValuesNeedTheFlag) {
  Tensor a({3});
  a.data = {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
  const std::string bytes = safetensors_bytes({{"a", &a}});
  auto f = parse_safetensors(bytes, "w.safetensors");
  ASSERT_FALSE(f.is_ok());
  EXPECT_TRUE(has(f.status().message(), "tensor a holds nan at element 1")) << f.status().to_string();
  EXPECT_FALSE(check_safetensors(bytes, "w").is_ok());
  auto g = parse_safetensors(bytes, "w.safetensors", /*allow_nonfinite=*/true);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE(std::isnan(g->tensors.at("a").data[1]));
  a.data[1] = -std::numeric_limits<float>::infinity();
  EXPECT_FALSE(parse_safetensors(safetensors_bytes({{"a", &a}}), "w").is_ok());
}

// A saved single-process checkpoint of the tiny test model, and helpers that damage it and fix up
// the checksums the way an attacker would.
class HostileCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("hostile_ckpt") + "/ckpt";
    s_ = testing::small_scenario(testing::Variant::kGpt2);
    cfg_ = make_gpt_config(s_).value();
    p_.allocate(cfg_);
    init_params(p_, cfg_, 3);
    AdamW opt;
    opt.init(cfg_);
    TrainProgress prog;
    prog.iteration = 7;
    ASSERT_TRUE(save_checkpoint(dir_, s_, cfg_, p_, &opt, prog).is_ok());
    sub_ = resolve_checkpoint_dir(dir_).value();
  }
  json state() const { return json::parse(read_file(sub_ + "/state.json").value()); }
  void write_state(const json& j) const { ASSERT_TRUE(write_file_atomic(sub_ + "/state.json", j.dump()).is_ok()); }
  // Replaces data file `file` and records its new size and checksum in state.json.
  void replace_file(const std::string& file, const std::string& bytes) const {
    ASSERT_TRUE(write_file_atomic(sub_ + "/" + file, bytes).is_ok());
    json st = state();
    st["files"][file] = {{"bytes", bytes.size()}, {"fnv1a64", fnv1a64_hex(bytes)}};
    write_state(st);
  }
  // The load's error (weights only when !with_opt), which must not be ok.
  Status load(bool with_opt, const CheckpointReadOptions& o = {}) const {
    GptParams q;
    q.allocate(cfg_);
    AdamW opt;
    TrainProgress prog;
    return load_checkpoint(dir_, cfg_, q, with_opt ? &opt : nullptr, &prog, o);
  }
  std::string error(bool with_opt = true) const {
    const Status st = load(with_opt);
    EXPECT_FALSE(st.is_ok());
    return st.to_string();
  }
  std::string dir_, sub_;
  Scenario s_;
  GptConfig cfg_;
  GptParams p_;
};

TEST_F(HostileCheckpoint, StateFieldsOfTheWrongTypeOrRange) {
  ASSERT_TRUE(load(true).is_ok()) << load(true).to_string();
  const json good = state();
  auto with = [&](const std::string& key, const json& v) {
    json j = good;
    j[key] = v;
    write_state(j);
    return error();
  };
  const std::string big = with("iteration", json(uint64_t{1} << 40));
  EXPECT_TRUE(has(big, "state.json.iteration is 1099511627776, expected an integer in [0, 2147483647]")) << big;
  EXPECT_TRUE(has(with("iteration", "7"), "iteration is string")) << with("iteration", "7");
  EXPECT_TRUE(has(with("iteration", -1), "iteration is -1"));
  EXPECT_TRUE(has(with("seed", "x"), "seed is string"));
  EXPECT_TRUE(has(with("seed", -3), "seed is -3"));
  EXPECT_TRUE(has(with("data", json::array()), "data is array"));
  EXPECT_TRUE(has(with("files", "model.safetensors"), "files is string"));
  EXPECT_TRUE(has(with("model", 5), "model is number"));
  EXPECT_TRUE(has(with("adam_step", 1.5), "adam_step is number"));
  EXPECT_TRUE(has(with("format", 1), "format is number"));
  json j = good;
  j["files"]["model.safetensors"]["bytes"] = "12";
  write_state(j);
  EXPECT_TRUE(has(error(), "files.model.safetensors.bytes is string"));
  j = good;
  j["files"]["../../state.json"] = good["files"]["model.safetensors"];
  write_state(j);
  EXPECT_TRUE(has(error(), "not a plain file name"));
  j = good;
  j.erase("data");
  write_state(j);
  EXPECT_TRUE(has(error(), "state.json.data is missing"));
  // scenario_yaml of the wrong type: checkpoint_scenario (eval, generate) refuses it by name.
  j = good;
  j["scenario_yaml"] = 42;
  write_state(j);
  auto sc = checkpoint_scenario(dir_);
  ASSERT_FALSE(sc.is_ok());
  EXPECT_TRUE(has(sc.status().message(), "scenario_yaml is number")) << sc.status().to_string();
  ASSERT_TRUE(write_file_atomic(sub_ + "/state.json", std::string(50000, '[')).is_ok());
  EXPECT_TRUE(has(error(), "nested deeper than 16"));
}

TEST_F(HostileCheckpoint, DamagedHeadersWithChecksumsFixedUp) {
  const std::string model = read_file(sub_ + "/model.safetensors").value();
  uint64_t hlen = 0;
  std::memcpy(&hlen, model.data(), 8);
  json h = json::parse(model.substr(8, hlen));
  const std::string data = model.substr(8 + hlen);
  auto with_header = [&](const json& hh) {
    const std::string text = hh.dump();
    std::string out(8, '\0');
    const uint64_t n = text.size();
    std::memcpy(out.data(), &n, 8);
    replace_file("model.safetensors", out + text + data);
    return error();
  };
  json bad = h;
  bad["wte"]["shape"] = "64,32";
  EXPECT_TRUE(has(with_header(bad), "tensor wte.shape is string"));
  bad = h;
  bad["wte"].erase("data_offsets");
  EXPECT_TRUE(has(with_header(bad), "wte.data_offsets is missing"));
  // An extra tensor whose offsets overflow.
  bad = h;
  bad["extra"] = {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {18446744073709551600ull, 0}}};
  EXPECT_TRUE(has(with_header(bad), "tensor extra.data_offsets"));
  // A NaN weight, checksums fixed up: refused, loaded with the flag.
  GptParams q = p_;
  q.wte.data[5] = std::numeric_limits<float>::quiet_NaN();
  replace_file("model.safetensors", safetensors_bytes(std::as_const(q).named(), {{"format", "eellm"}}));
  EXPECT_TRUE(has(error(), "tensor wte holds nan at element 5"));
  CheckpointReadOptions allow;
  allow.allow_nonfinite = true;
  EXPECT_TRUE(load(true, allow).is_ok()) << load(true, allow).to_string();
  // A shape that differs from the model's.
  GptParams r = p_;
  r.wte = Tensor({32, 64});
  replace_file("model.safetensors", safetensors_bytes(std::as_const(r).named(), {{"format", "eellm"}}));
  EXPECT_TRUE(has(error(), "tensor wte has shape (32, 64), the model needs (64, 32)")) << error();
}

TEST_F(HostileCheckpoint, UnneededFilesAreStillVerified) {
  // Generation loads weights only; a damaged or missing optimizer file listed in state.json is still reported.
  std::string opt = read_file(sub_ + "/optimizer.safetensors").value();
  opt[opt.size() - 3] ^= 0x40;
  ASSERT_TRUE(write_file_atomic(sub_ + "/optimizer.safetensors", opt).is_ok());
  EXPECT_TRUE(has(error(/*with_opt=*/false), "optimizer.safetensors checksum"));
  replace_file("optimizer.safetensors", opt.substr(0, 8) + "{bad json" + opt.substr(17));
  EXPECT_TRUE(has(error(false), "optimizer.safetensors"));
  fs::remove(sub_ + "/optimizer.safetensors");
  const std::string missing = error(false);
  EXPECT_TRUE(has(missing, "optimizer.safetensors is missing")) << missing;
}

TEST_F(HostileCheckpoint, LatestOrModelFileADirectoryOrSymlink) {
  fs::remove(dir_ + "/latest");
  fs::create_directory(dir_ + "/latest");
  EXPECT_TRUE(has(error(), "latest is a directory"));
  fs::remove(dir_ + "/latest");
  fs::create_symlink(fs::path(sub_).filename().string() + "/state.json", dir_ + "/latest");
  EXPECT_TRUE(has(error(), "latest is a symbolic link"));
  fs::remove(dir_ + "/latest");
  fs::create_symlink("latest", dir_ + "/latest");  // a loop
  EXPECT_TRUE(has(error(), "latest is a symbolic link"));
  fs::remove(dir_ + "/latest");
  ASSERT_TRUE(write_file_atomic(dir_ + "/latest", "../../etc\n").is_ok());
  EXPECT_TRUE(has(error(), "does not name a checkpoint directory"));
  ASSERT_TRUE(write_file_atomic(dir_ + "/latest", fs::path(sub_).filename().string() + "\n").is_ok());
  ASSERT_TRUE(load(true).is_ok()) << load(true).to_string();
  fs::remove(sub_ + "/model.safetensors");
  fs::create_directory(sub_ + "/model.safetensors");
  EXPECT_TRUE(has(error(), "model.safetensors is a directory"));
  fs::remove(sub_ + "/model.safetensors");
  fs::create_symlink(sub_ + "/optimizer.safetensors", sub_ + "/model.safetensors");
  EXPECT_TRUE(has(error(), "model.safetensors is a symbolic link"));
}

// A distributed checkpoint saved by a 1-process world, whose manifest the tests then rewrite.
class HostileManifest : public HostileCheckpoint {
 protected:
  void SetUp() override {
    HostileCheckpoint::SetUp();
    dist_ = testing::temp_dir("hostile_dist") + "/ckpt";
    AdamW opt;
    opt.init(cfg_);
    TrainProgress prog;
    prog.iteration = 4;
    ASSERT_TRUE(testing::save_self_distributed(dist_, s_, cfg_, p_, opt, prog).is_ok());
    msub_ = resolve_checkpoint_dir(dist_).value();
    good_ = json::parse(read_file(msub_ + "/manifest.json").value());
  }
  // Loads with `edit` applied to the manifest; returns the error (for eval/generate, and for resume).
  std::string error_with(const std::function<void(json&)>& edit) {
    json m = good_;
    edit(m);
    EXPECT_TRUE(write_file_atomic(msub_ + "/manifest.json", m.dump()).is_ok());
    GptParams q;
    q.allocate(cfg_);
    const Status weights = load_checkpoint(dist_, cfg_, q, nullptr, nullptr);
    AdamW opt;
    TrainProgress prog;
    const Status resume = load_checkpoint(dist_, cfg_, q, &opt, &prog);
    EXPECT_FALSE(resume.is_ok()) << m.dump();
    EXPECT_EQ(weights.to_string(), resume.to_string());
    return resume.to_string();
  }
  std::string dist_, msub_;
  json good_;
};

TEST_F(HostileManifest, PieceRangesOutsideTheTensor) {
  GptParams q;
  q.allocate(cfg_);
  ASSERT_TRUE(load_checkpoint(dist_, cfg_, q, nullptr, nullptr).is_ok());
  ASSERT_EQ(good_["tensors"]["lnf_w"]["shape"], json({32}));
  auto piece = [](json& m) -> json& { return m["tensors"]["lnf_w"]["params"][0]; };
  // The out-of-bounds write of the issue: dim 0, a range far past the tensor's 32 elements.
  std::string e = error_with([&](json& m) { piece(m)["dim"] = 0, piece(m)["ranges"] = {{1000000, 1000032}}; });
  EXPECT_TRUE(has(e, "tensors.lnf_w.params[0].ranges has [1000000,1000032]")) << e;
  e = error_with([&](json& m) { piece(m)["dim"] = 0, piece(m)["ranges"] = {{20, 52}}; });
  EXPECT_TRUE(has(e, "ranges has [20,52]")) << e;
  e = error_with([&](json& m) { piece(m)["dim"] = 0, piece(m)["ranges"] = {{-16, 16}}; });
  EXPECT_TRUE(has(e, "ranges has [-16,16]")) << e;
  e = error_with([&](json& m) { piece(m)["dim"] = 0, piece(m)["ranges"] = {{0, 16}}; });
  EXPECT_TRUE(has(e, "local_shape is (32), its ranges give (16)")) << e;
  e = error_with([&](json& m) { piece(m)["dim"] = 3; });
  EXPECT_TRUE(has(e, "params[0].dim is 3")) << e;
  e = error_with([&](json& m) { piece(m)["dim"] = "0"; });
  EXPECT_TRUE(has(e, "params[0].dim is string")) << e;
  e = error_with([&](json& m) { piece(m)["ranges"] = "0:32"; });
  EXPECT_TRUE(has(e, "params[0].ranges is string")) << e;
  e = error_with([&](json& m) { piece(m)["file"] = "rank_00009.safetensors"; });
  EXPECT_TRUE(has(e, "is not listed in files")) << e;
  // Two halves of which one is stored twice: covered count right, tiling wrong.
  e = error_with([&](json& m) {
    json half = piece(m);
    half["dim"] = 0, half["ranges"] = {{0, 16}}, half["local_shape"] = {16};
    m["tensors"]["lnf_w"]["params"] = {half, half};
  });
  EXPECT_TRUE(has(e, "pieces overlap at 0")) << e;
}

TEST_F(HostileManifest, ShapesMomentsLayoutAndFields) {
  auto moment = [](json& m) -> json& { return m["tensors"]["lnf_w"]["moments"][0]; };
  std::string e = error_with([&](json& m) { moment(m)["end"] = 1000000; });
  EXPECT_TRUE(has(e, "moments[0].end is 1000000, expected an integer in [0, 32]")) << e;
  e = error_with([&](json& m) { moment(m)["begin"] = -5; });
  EXPECT_TRUE(has(e, "moments[0].begin is -5")) << e;
  e = error_with([&](json& m) { moment(m)["begin"] = 8; });
  EXPECT_TRUE(has(e, "moment slices overlap or leave a gap at 8")) << e;
  e = error_with([&](json& m) { m["tensors"]["lnf_w"]["shape"] = {1 << 20, 1 << 20, 1 << 20}; });
  EXPECT_TRUE(has(e, "more than 2^40 elements")) << e;
  e = error_with([&](json& m) {
    m["tensors"]["lnf_w"]["shape"] = {64};
    m["tensors"]["lnf_w"]["params"][0]["local_shape"] = {64};
    moment(m)["local_shape"] = {64};
    moment(m)["end"] = 64;
  });
  EXPECT_TRUE(has(e, "tensor lnf_w has shape (64), the model needs (32)")) << e;
  e = error_with([&](json& m) { m["layout"]["tp"] = "2"; });
  EXPECT_TRUE(has(e, "layout.tp is string")) << e;
  e = error_with([&](json& m) { m["layout"] = 1; });
  EXPECT_TRUE(has(e, "layout is number")) << e;
  e = error_with([&](json& m) { m["iteration"] = uint64_t{1} << 40; });
  EXPECT_TRUE(has(e, "iteration is 1099511627776")) << e;
  e = error_with([&](json& m) { m["tensors"] = json::array(); });
  EXPECT_TRUE(has(e, "tensors is array")) << e;
  e = error_with([&](json& m) { m["tensors"]["lnf_w"]["params"] = json::array(); });
  EXPECT_TRUE(has(e, "tensors.lnf_w.params has no pieces")) << e;
  e = error_with([&](json& m) { m["files"]["rank_00000.safetensors"]["fnv1a64"] = 5; });
  EXPECT_TRUE(has(e, "fnv1a64 is number")) << e;
  auto layout = distributed_checkpoint_layout(dist_);
  ASSERT_FALSE(layout.is_ok());
}

}  // namespace
}  // namespace eellm::exec
