// `eellm serve` end to end: each test saves a small random-init checkpoint (byte vocabulary, three
// layers, exits at layers 1 and 2), starts the real `eellm serve` binary on a free port (--port 0,
// the port read from its stdout) and talks HTTP to it with cpp-httplib's client. Checked: the
// served tokens equal exec::generate's and `eellm generate`'s for the same options (full model,
// early exit, sampling with a seed), the early-exit statistics, a 400 naming the field for every
// bad request field, malformed JSON, 404/405 for wrong paths and methods, and a clean exit with one
// log line per request on SIGTERM.
#include "exec/generate/serve.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "exec/backend/device.h"
#include "exec/generate/generate.h"
#include "exec/io/checkpoint.h"
#include "exec/io/data.h"
#include "tests/exec/test_util.h"

extern char** environ;

namespace eellm::exec {
namespace {

using nlohmann::json;

constexpr int kContext = 32;

// The checkpoint every test serves: GPT-2 variant, vocab 256 (bytes), context 32, exits at 1 and 2.
// Runs a shell command; its exit status (as pclose gives it) and standard output.
std::pair<int, std::string> run_command(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return {-1, "popen failed: " + cmd};
  char buf[256];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  return {::pclose(f), out};
}

std::string make_checkpoint() {
  Scenario s = testing::small_scenario(testing::Variant::kGpt2);
  s.name = "serve-test";
  s.model.vocab_size = 256;
  s.model.seq_length = kContext;
  s.model.max_position_embeddings = kContext;
  s.inference.early_exit_thres = 0.8;
  auto cfg = make_gpt_config(s);
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().message();
  GptParams p;
  p.allocate(*cfg);
  init_params(p, *cfg, 11);
  const std::string dir = testing::temp_dir("serve_ckpt");
  const Status st = save_checkpoint(dir, s, *cfg, p, nullptr, TrainProgress{});
  EXPECT_TRUE(st.is_ok()) << st.message();
  return dir;
}

// A running `eellm serve`: stdout read through a pipe (the "listening on" line), stderr (the log)
// to a file.
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& ckpt, std::vector<std::string> extra = {}) {
    log_path_ = testing::temp_dir("serve_log") + "/stderr.txt";
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {EELLM_BIN, "serve", ckpt, "--port", "0", "--threads", "1", "--max-batch", "4"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, EELLM_BIN, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_ = ::fdopen(fds[0], "r");
    char line[512] = {0};
    if (std::fgets(line, sizeof line, out_)) banner_ = line;
    const size_t at = banner_.find("http://127.0.0.1:");
    if (at != std::string::npos) port_ = std::stoi(banner_.substr(at + 17));
  }
  ~ServerProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_) std::fclose(out_);
  }
  int port() const { return port_; }
  const std::string& banner() const { return banner_; }
  // Sends `sig` and waits; the wait status.
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return status;
  }
  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  FILE* out_ = nullptr;
  std::string banner_, log_path_;
  int port_ = -1;
};

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ckpt_ = new std::string(make_checkpoint());
    auto m = load_generation_model(*ckpt_);
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    model_ = new GenerationModel(std::move(m).value());
    be_ = make_cpu_backend(1).release();
  }
  static void TearDownTestSuite() {
    delete be_;
    delete model_;
    delete ckpt_;
  }
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(*ckpt_);
    ASSERT_GT(server_->port(), 0) << "no port in the banner '" << server_->banner() << "'; log:\n" << server_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(120, 0);
  }

  // PUT /api; the status and the parsed body.
  std::pair<int, json> put(const std::string& body) {
    auto res = client_->Put("/api", body, "application/json");
    EXPECT_TRUE(res) << "no answer: " << httplib::to_string(res.error());
    if (!res) return {0, json()};
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::pair<int, json> put(const json& body) { return put(body.dump()); }

  GenerateResult reference(const std::vector<std::string>& prompts, const GenerateOptions& g) {
    std::vector<std::vector<int32_t>> toks;
    for (const std::string& p : prompts) toks.push_back(encode_bytes(p));
    auto r = generate(model_->config, model_->params, *be_, toks, g);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? *r : GenerateResult{};
  }

  static std::string* ckpt_;
  static GenerationModel* model_;
  static Backend* be_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<httplib::Client> client_;
};
std::string* ServeTest::ckpt_ = nullptr;
GenerationModel* ServeTest::model_ = nullptr;
Backend* ServeTest::be_ = nullptr;

// The text as the server's JSON carries it (invalid UTF-8 bytes replaced).
std::string as_served(const std::string& text) {
  return json::parse(dump_json(json(text))).get<std::string>();
}

TEST_F(ServeTest, GreedyFullModelEqualsGenerate) {
  const std::vector<std::string> prompts = {"Hello", "ab"};
  auto [status, body] = put(json{{"prompts", prompts}, {"tokens_to_generate", 8}});
  ASSERT_EQ(status, 200) << body.dump();
  GenerateOptions g;  // full model, greedy
  g.max_new_tokens = 8;
  const GenerateResult ref = reference(prompts, g);
  ASSERT_EQ(body["text"].size(), 2u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(body["tokens"][i].get<std::vector<int32_t>>(), ref.sequences[i].tokens) << "prompt " << i;
    EXPECT_EQ(body["text"][i].get<std::string>(), as_served(ref.sequences[i].text));
    EXPECT_EQ(body["segments"][i].size(), 8u);
    EXPECT_EQ(body["exit_layer"][i], json(std::vector<int>(8, 3)));  // every token from the final head
  }
  const json& st = body["stats"];
  EXPECT_EQ(st["method"], "full");
  EXPECT_EQ(st["use_early_exit"], false);
  EXPECT_EQ(st["tokens"], 16);
  EXPECT_EQ(st["batch"], 2);
  EXPECT_EQ(st["exit_histogram"].back()["exit"], "final");
  EXPECT_EQ(st["exit_histogram"].back()["tokens"], 16);
  EXPECT_DOUBLE_EQ(st["avg_exit_layers"].get<double>(), 3.0);
  EXPECT_TRUE(body["logprobs"].is_null());
  EXPECT_GE(body["requst_time"].get<double>(), 0.0);
}

TEST_F(ServeTest, DefaultLengthStopsAtTheContext) {
  // EE-LLM's default tokens_to_generate (64) on a 32-position model: the sequence fills the context.
  auto [status, body] = put(json{{"prompts", "abc"}});
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["tokens"][0].size(), static_cast<size_t>(kContext - 3));
}

TEST_F(ServeTest, SpeculativeServerIsLosslessForGreedy) {
  ServerProcess spec(*ckpt_, {"--method", "speculative", "--draft-exit", "1", "--draft-tokens", "3"});
  ASSERT_GT(spec.port(), 0) << spec.log();
  httplib::Client c("127.0.0.1", spec.port());
  c.set_read_timeout(120, 0);
  const json req = {
      {"prompts", {"The cat", "xyz"}}, {"tokens_to_generate", 10}, {"use_early_exit", true}, {"early_exit_thres", 0.5}};
  auto res = c.Put("/api", req.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  GenerateOptions g;
  g.max_new_tokens = 10;
  const GenerateResult full = reference({"The cat", "xyz"}, g);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(body["tokens"][i].get<std::vector<int32_t>>(), full.sequences[i].tokens) << "prompt " << i;
  EXPECT_EQ(body["stats"]["method"], "speculative");
  EXPECT_GT(body["stats"]["drafted"].get<long>(), 0);
  EXPECT_EQ(WEXITSTATUS(spec.stop(SIGTERM)), 0) << spec.log();
}

TEST_F(ServeTest, SameTokensAsEellmGenerate) {
  auto [status, body] = put(json{{"prompts", "Once"}, {"tokens_to_generate", 6}});
  ASSERT_EQ(status, 200) << body.dump();
  const std::string cmd = std::string(EELLM_BIN) + " generate " + *ckpt_ +
                          " --prompt Once --max-new-tokens 6 --method full --threads 1 --device cpu";
  const auto [rc, out] = run_command(cmd);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "Once" + decode_bytes(body["tokens"][0].get<std::vector<int32_t>>()) + "\n");
}

TEST_F(ServeTest, EarlyExitTokensAndStats) {
  // Threshold 0: every token leaves at the first enabled exit.
  auto [status, body] = put(json{
      {"prompts", {"The cat", "xyz"}}, {"tokens_to_generate", 6}, {"use_early_exit", true}, {"early_exit_thres", 0.0}});
  ASSERT_EQ(status, 200) << body.dump();
  GenerateOptions g;
  g.method = InferenceMethod::kRecompute;
  g.threshold = 0.0;
  g.max_new_tokens = 6;
  const GenerateResult ref = reference({"The cat", "xyz"}, g);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(body["tokens"][i].get<std::vector<int32_t>>(), ref.sequences[i].tokens);
    EXPECT_EQ(body["exit_layer"][i], json(std::vector<int>(6, 1)));
  }
  const json& st = body["stats"];
  EXPECT_EQ(st["method"], "recompute");
  EXPECT_DOUBLE_EQ(st["early_exit_thres"].get<double>(), 0.0);
  EXPECT_EQ(st["exit_histogram"][0]["exit"], "exit@1");
  EXPECT_EQ(st["exit_histogram"][0]["tokens"], 12);
  EXPECT_DOUBLE_EQ(st["exit_histogram"][0]["rate"].get<double>(), 1.0);
  EXPECT_EQ(st["exit_histogram"][2]["tokens"], 0);
  EXPECT_DOUBLE_EQ(st["avg_exit_layers"].get<double>(), ref.stats.avg_exit_layers);
  EXPECT_LT(st["layers_per_token"].get<double>(), 3.0);

  // exit_layers [2]: only the exit at layer 2 may fire.
  auto [s2, b2] = put(json{{"prompts", "The cat"},
                           {"tokens_to_generate", 5},
                           {"use_early_exit", true},
                           {"early_exit_thres", 0.0},
                           {"exit_layers", {2}}});
  ASSERT_EQ(s2, 200) << b2.dump();
  EXPECT_EQ(b2["exit_layer"][0], json(std::vector<int>(5, 2)));
  EXPECT_EQ(b2["stats"]["exit_histogram"][1]["tokens"], 5);

  // The scenario's threshold (0.8) when early_exit_thres is absent; same tokens as generate().
  auto [s3, b3] = put(json{{"prompts", "The cat"}, {"tokens_to_generate", 8}, {"use_early_exit", true}});
  ASSERT_EQ(s3, 200) << b3.dump();
  g.threshold = 0.8;
  g.max_new_tokens = 8;
  EXPECT_EQ(b3["tokens"][0].get<std::vector<int32_t>>(), reference({"The cat"}, g).sequences[0].tokens);
  EXPECT_DOUBLE_EQ(b3["stats"]["early_exit_thres"].get<double>(), 0.8);
}

TEST_F(ServeTest, SamplingWithSeedEchoAndStop) {
  auto [status, body] = put(json{{"prompts", {"abc"}},
                                 {"tokens_to_generate", 10},
                                 {"temperature", 1.0},
                                 {"top_k", 5},
                                 {"random_seed", 7},
                                 {"echo_prompts", true}});
  ASSERT_EQ(status, 200) << body.dump();
  GenerateOptions g;
  g.max_new_tokens = 10;
  g.sampling = {1.0f, 5, 1.0f};
  g.seed = 7;
  const GenerateResult ref = reference({"abc"}, g);
  EXPECT_EQ(body["tokens"][0].get<std::vector<int32_t>>(), ref.sequences[0].tokens);
  EXPECT_EQ(body["text"][0].get<std::string>(), as_served("abc" + ref.sequences[0].text));
  EXPECT_EQ(body["segments"][0].size(), 13u);  // prompt bytes, then the generated tokens

  // A stop sequence: the first printable ASCII byte (a JSON string must be UTF-8) of a greedy
  // continuation that does not occur earlier in it; the text ends right before it.
  GenerateOptions greedy;
  greedy.max_new_tokens = 12;
  bool found = false;
  for (const std::string prompt : {"abc", "hello", "The cat", "0123", "xyz", "Once upon"}) {
    const std::vector<int32_t> full = reference({prompt}, greedy).sequences[0].tokens;
    for (size_t k = 1; k < full.size() && !found; ++k) {
      if (full[k] < 32 || full[k] >= 127 ||
          std::find(full.begin(), full.begin() + static_cast<long>(k), full[k]) != full.begin() + static_cast<long>(k))
        continue;
      found = true;
      const std::string stop = decode_bytes({full[k]});
      auto [s2, b2] = put(json{{"prompts", prompt}, {"tokens_to_generate", 12}, {"stop_sequences", {stop}}});
      ASSERT_EQ(s2, 200) << b2.dump();
      EXPECT_EQ(b2["tokens"][0].get<std::vector<int32_t>>(),
                std::vector<int32_t>(full.begin(), full.begin() + static_cast<long>(k)))
          << "stop '" << stop << "'";
    }
    if (found) break;
  }
  EXPECT_TRUE(found) << "no greedy continuation holds a printable ASCII byte to stop on";
}

TEST_F(ServeTest, EveryBadFieldIsA400NamingIt) {
  const std::string too_long(kContext, 'x');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "prompts: required"},
      {R"({"prompts": []})", "prompts: is empty"},
      {R"({"prompts": 5})", "prompts: must be a string or a list of strings"},
      {R"({"prompts": ["a", 3]})", "prompts[1]: must be a string"},
      {R"({"prompts": ["a", ""]})", "prompts[1]: is empty"},
      {R"({"prompts": [")" + too_long + R"("]})", "prompts[0]: 32 tokens; the context (max_position_embeddings 32)"},
      {R"({"prompts": ["a","b","c","d","e"]})", "prompts: 5 prompts; at most 4"},
      {R"({"prompts": "a", "tokens_to_generate": "8"})", "tokens_to_generate: must be an integer in [1, "},
      {R"({"prompts": "a", "tokens_to_generate": 0})", "tokens_to_generate: must be an integer in [1, "},
      {R"({"prompts": "a", "tokens_to_generate": 2.5})", "tokens_to_generate: must be an integer"},
      {R"({"prompts": "a", "use_early_exit": 1})", "use_early_exit: must be true or false"},
      {R"({"prompts": "a", "early_exit_thres": 1.5})", "early_exit_thres: must be a number in [0, 1]"},
      {R"({"prompts": "a", "early_exit_thres": "0.5"})", "early_exit_thres: must be a number"},
      {R"({"prompts": "a", "exit_layers": [3]})",
       "exit_layers[0]: no exit at layer 3; the model's exits are at layers [1, 2]"},
      {R"({"prompts": "a", "exit_layers": [1, 9]})", "exit_layers[1]: must be a layer number in [1, 3]"},
      {R"({"prompts": "a", "exit_layers": 1})", "exit_layers: must be a list of layer numbers"},
      {R"({"prompts": "a", "top_k": 1001})", "top_k: must be an integer in [0, 1000]"},
      {R"({"prompts": "a", "top_k": -1})", "top_k: must be an integer in [0, 1000]"},
      {R"({"prompts": "a", "top_p": 1.5})", "top_p: must be a number in [0, 1]"},
      {R"({"prompts": "a", "top_k": 5, "top_p": 0.5})", "top_k, top_p: cannot set both"},
      {R"({"prompts": "a", "temperature": 101})", "temperature: must be a number in [0, 100]"},
      {R"({"prompts": "a", "temperature": "hot"})", "temperature: must be a number"},
      {R"({"prompts": "a", "random_seed": -1})", "random_seed: must be an integer in [0, "},
      {R"({"prompts": "a", "random_seed": 1.5})", "random_seed: must be an integer"},
      {R"({"prompts": "a", "echo_prompts": "yes"})", "echo_prompts: must be true or false"},
      {R"({"prompts": "a", "stop_sequences": "x"})", "stop_sequences: must be a list of strings"},
      {R"({"prompts": "a", "stop_sequences": [""]})", "stop_sequences[0]: must be a non-empty string"},
      {R"({"prompts": "a", "logprobs": true})", "logprobs: not supported"},
      {R"({"prompts": "a", "add_BOS": true})", "add_BOS: not supported"},
      {R"({"prompts": "a", "beam_width": 2})", "beam_width: beam search is not supported"},
      {R"({"prompts": "a", "early_exit_thresh": 0.5})", "early_exit_thresh: unknown field"},
      {R"({"prompts": "a", "max_len": 5})", "max_len: no longer used; replace it with tokens_to_generate"},
      {R"({"prompts"})", "request body is not valid JSON"},
      {R"([1, 2])", "request body: must be a JSON object"},
      {"", "request body is not valid JSON"},
  };
  for (const auto& [body, want] : cases) {
    auto [status, reply] = put(body);
    EXPECT_EQ(status, 400) << body;
    ASSERT_TRUE(reply.is_object() && reply.contains("error")) << body << " -> " << reply.dump();
    EXPECT_NE(reply["error"].get<std::string>().find(want), std::string::npos)
        << body << " -> " << reply["error"] << ", wanted '" << want << "'";
  }
  // The server is still serving after all of them.
  EXPECT_EQ(put(json{{"prompts", "ok"}, {"tokens_to_generate", 1}}).first, 200);
}

TEST_F(ServeTest, WrongMethodOrPathAndHealth) {
  auto get_api = client_->Get("/api");
  ASSERT_TRUE(get_api);
  EXPECT_EQ(get_api->status, 405);
  EXPECT_EQ(get_api->get_header_value("Allow"), "PUT, POST");
  auto del = client_->Delete("/api");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  auto nowhere = client_->Get("/v1/completions");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_NE(nowhere->body.find("no such endpoint"), std::string::npos) << nowhere->body;
  auto post_health = client_->Post("/health", "{}", "application/json");
  ASSERT_TRUE(post_health);
  EXPECT_EQ(post_health->status, 405);

  auto post_api = client_->Post("/api", R"({"prompts": "hi", "tokens_to_generate": 2})", "application/json");
  ASSERT_TRUE(post_api);
  EXPECT_EQ(post_api->status, 200) << post_api->body;

  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  ASSERT_EQ(health->status, 200);
  const json h = json::parse(health->body);
  EXPECT_EQ(h["model"], "serve-test");
  EXPECT_EQ(h["config"]["num_layers"], 3);
  EXPECT_EQ(h["config"]["vocab_size"], 256);
  EXPECT_EQ(h["config"]["max_position_embeddings"], kContext);
  EXPECT_EQ(h["config"]["exit_layers"], json({1, 2}));
  EXPECT_EQ(h["server"]["device"], "cpu");
  EXPECT_EQ(h["server"]["method"], "recompute");
  EXPECT_EQ(h["server"]["requests_served"], 1);
}

TEST_F(ServeTest, StopsCleanlyOnSigtermWithOneLogLinePerRequest) {
  EXPECT_EQ(put(json{{"prompts", "a"}, {"tokens_to_generate", 2}}).first, 200);
  EXPECT_EQ(put(json{{"prompts", "b"}, {"tokens_to_generate", 2}, {"no_log", true}}).first, 200);
  EXPECT_EQ(put(json{{"prompts", ""}}).first, 400);
  EXPECT_EQ(client_->Get("/nope")->status, 404);
  client_.reset();
  const int status = server_->stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "not a clean exit; log:\n" << server_->log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << server_->log();
  const std::string log = server_->log();
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t at = log.find(s); at != std::string::npos; at = log.find(s, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("PUT /api 200 1 prompt(s), 2 tokens"), 1u) << log;  // no_log request not logged
  EXPECT_EQ(count("PUT /api 400 prompts[0]: is empty"), 1u) << log;
  EXPECT_EQ(count("GET /nope 404"), 1u) << log;
  EXPECT_EQ(count("SIGTERM: stopping"), 1u) << log;
  EXPECT_EQ(count("eellm serve: stopped"), 1u) << log;
}

TEST_F(ServeTest, SigintStopsTooAndBadStartupIsAnError) {
  EXPECT_EQ(WEXITSTATUS(server_->stop(SIGINT)), 0) << server_->log();
  // The port is taken by nobody now, but an unknown method or missing checkpoint fails at start.
  ServerProcess bad(*ckpt_, {"--method", "pipeline"});
  EXPECT_EQ(bad.port(), -1);
  EXPECT_EQ(WEXITSTATUS(bad.stop(0)), 1);
  EXPECT_NE(bad.log().find("method pipeline is not served"), std::string::npos) << bad.log();
  ServerProcess missing("/nonexistent/eellm/ckpt");
  EXPECT_EQ(WEXITSTATUS(missing.stop(0)), 1);
  EXPECT_NE(missing.log().find("/nonexistent/eellm/ckpt"), std::string::npos) << missing.log();
}

TEST_F(ServeTest, DeviceCudaWithoutGpuIsAClearError) {
  const std::string cmd =
      std::string(EELLM_BIN) + " generate " + *ckpt_ + " --prompt hi --max-new-tokens 2 --device cuda 2>&1";
  const auto [rc, out] = run_command(cmd);
  if (!cuda_compiled()) {
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("built without CUDA"), std::string::npos) << out;
  } else if (rc != 0) {  // a CUDA build on a machine without a usable GPU
    EXPECT_NE(out.find("execution.device: cuda"), std::string::npos) << out;
  }
}

// A raw TCP connection to the server (for clients httplib's would not be: slow or malformed).
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool send_text(const std::string& s) {
    return connected_ && ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // True while the server has neither answered nor closed the connection (nothing to read yet).
  bool waiting() const {
    char c = 0;
    const ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  // Everything the server sends until it closes the connection (waiting at most 60 s per read).
  std::string read_until_closed() {
    timeval tv{60, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd_, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Slowloris: 6 clients each send a request line and then one header line every 2 s, never ending
// their headers. /health is answered while every one of them is still connected and waiting (the
// order is what is checked; each slow client holds only its own connection thread).
TEST_F(ServeTest, SlowClientsDoNotStarveHealth) {
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 6; ++i) {
    slow.push_back(std::make_unique<RawClient>(server_->port()));
    ASSERT_TRUE(slow.back()->send_text("PUT /api HTTP/1.1\r\nHost: x\r\n"));
  }
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (auto& c : slow) ASSERT_TRUE(c->send_text("X-Slow-" + std::to_string(round) + ": 1\r\n"));
  }
  httplib::Client health_client("127.0.0.1", server_->port());
  health_client.set_read_timeout(30, 0);
  auto health = health_client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  for (auto& c : slow) {
    EXPECT_TRUE(c->waiting()) << "a slow client was answered or dropped before /health was";
    EXPECT_TRUE(c->send_text("X-Slow-after: 1\r\n"));
  }
}

// Bodies nested 100,000 deep (the whole body, and one field) are a 400 naming the depth; oversized
// bodies a 413 and long URIs a 414, each saying so; a compressed body a 415. The server still serves.
TEST_F(ServeTest, HostileBodiesAndUris) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto [status, body] = put(deep);
  EXPECT_EQ(status, 400);
  EXPECT_NE(body["error"].get<std::string>().find("nested deeper than 64 levels"), std::string::npos) << body;
  std::tie(status, body) = put(R"({"prompts": "a", "tokens_to_generate": )" + deep + "}");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body["error"].get<std::string>().find("nested deeper than 64"), std::string::npos) << body;
  std::tie(status, body) = put(json{{"prompts", std::string(2 << 20, 'a')}});
  EXPECT_EQ(status, 413);
  EXPECT_NE(body["error"].get<std::string>().find("request body larger than the limit of 1048576 bytes"),
            std::string::npos)
      << body;
  std::tie(status, body) = put(std::string("1e999"));  // a number JSON cannot hold: was an escaped exception (500)
  EXPECT_EQ(status, 400);
  EXPECT_NE(body["error"].get<std::string>().find("not valid JSON"), std::string::npos) << body;
  // Framing that could be read two ways, or none (an empty Content-Length is none): was read to the end of
  // the connection and answered 200.
  for (const char* framing : {"Content-Length: \r\n", "Content-Length: 17\r\nContent-Length: 18\r\n",
                              "Content-Length: -1\r\n", "Content-Length: 17\r\nTransfer-Encoding: chunked\r\n"}) {
    RawClient raw(server_->port());
    ASSERT_TRUE(raw.send_text("PUT /api HTTP/1.1\r\nHost: x\r\n" + std::string(framing) + "\r\n{\"prompts\": \"ab\"}"));
    ::shutdown(raw.fd(), SHUT_WR);
    const std::string answer = raw.read_until_closed();
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << framing << answer;
    EXPECT_NE(answer.find("Content-Length"), std::string::npos) << framing << answer;
  }
  auto uri = client_->Get("/health?" + std::string(20000, 'q'));
  ASSERT_TRUE(uri);
  EXPECT_EQ(uri->status, 414);
  EXPECT_NE(uri->body.find("URI too long"), std::string::npos) << uri->body;
  httplib::Headers gz = {{"Content-Encoding", "gzip"}};
  auto compressed = client_->Put("/api", gz, std::string(64, '\x1f'), "application/json");
  ASSERT_TRUE(compressed);
  EXPECT_EQ(compressed->status, 415);
  EXPECT_NE(compressed->body.find("not accepted"), std::string::npos) << compressed->body;
  httplib::Client fresh("127.0.0.1", server_->port());
  auto ok = fresh.Put("/api", R"({"prompts": "ok", "tokens_to_generate": 1})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

// Trickles `text` one byte per 100 ms while the server neither answered nor closed; the number of
// bytes sent when it did (text.size() if it never did).
size_t trickle(RawClient& c, const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (!c.waiting()) return i;
    if (!c.send_text(text.substr(i, 1))) return i;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return text.size();
}

// A client trickling its header (or its body) a byte every 100 ms is cut at --header-timeout
// (--body-timeout) with a 408 naming the timeout, long before its 600-byte trickle ends; the server
// then answers the next client.
TEST(ServeLimits, TricklersAreCutAtTheirHeaderAndBodyDeadlines) {
  const std::string ckpt = make_checkpoint();
  ServerProcess server(ckpt, {"--header-timeout", "1", "--body-timeout", "1"});
  ASSERT_GT(server.port(), 0) << server.log();
  RawClient header(server.port());
  const size_t sent = trickle(header, "PUT /api HTTP/1.1\r\nX-Trickle: " + std::string(600, 'a'));
  EXPECT_LT(sent, 600u) << "the header trickle was never cut";
  const std::string cut = header.read_until_closed();
  EXPECT_EQ(cut.rfind("HTTP/1.1 408", 0), 0u) << cut;
  EXPECT_NE(cut.find("timed out"), std::string::npos) << cut;
  RawClient body(server.port());
  ASSERT_TRUE(
      body.send_text("PUT /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 700\r\n\r\n"));
  const size_t body_sent = trickle(body, std::string(700, ' '));
  EXPECT_LT(body_sent, 700u) << "the body trickle was never cut";
  const std::string body_cut = body.read_until_closed();
  EXPECT_EQ(body_cut.rfind("HTTP/1.1 408", 0), 0u) << body_cut;
  httplib::Client next("127.0.0.1", server.port());
  auto health = next.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
}

// --connections 2 and 4 trickling clients (2 hold the regular threads, 2 overflow threads): /health
// is answered while they are all connected, a generation request gets 503 with Retry-After naming the
// limit, and the two regular tricklers are still waiting. With 16 more tricklers every overflow thread
// is taken too: the next connection gets a 503 at once from the accept thread.
TEST(ServeLimits, BeyondTheConnectionBoundHealthIsAnsweredAndTheRestIs503) {
  const std::string ckpt = make_checkpoint();
  ServerProcess server(ckpt, {"--connections", "2", "--header-timeout", "120", "--read-timeout", "120"});
  ASSERT_GT(server.port(), 0) << server.log();
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<RawClient>(server.port()));
    ASSERT_TRUE(slow.back()->send_text("PUT /api HTTP/1.1\r\nHost: x\r\n"));
  }
  httplib::Client client("127.0.0.1", server.port());
  auto health = client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200) << health->body;
  auto api = client.Put("/api", R"({"prompts": "a", "tokens_to_generate": 1})", "application/json");
  ASSERT_TRUE(api) << httplib::to_string(api.error());
  EXPECT_EQ(api->status, 503);
  EXPECT_EQ(api->get_header_value("Retry-After"), "1");
  EXPECT_NE(api->body.find("connection limit of 2"), std::string::npos) << api->body;
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(slow[static_cast<size_t>(i)]->waiting()) << "regular trickler " << i;
  for (int i = 0; i < 16; ++i) {
    slow.push_back(std::make_unique<RawClient>(server.port()));
    ASSERT_TRUE(slow.back()->send_text("GET /health HTTP/1.1\r\n"));
  }
  RawClient refused(server.port());
  const std::string answer = refused.read_until_closed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_TRUE(slow[0]->waiting());
}

}  // namespace
}  // namespace eellm::exec
