// `eellm serve CHECKPOINT`: early-exit generation behind HTTP, with EE-LLM's request fields
// (PUT /api, JSON; exec/generate/serve.h parses and answers) and GET /health. cpp-httplib serves
// each connection on its own thread (up to --connections at once, more wait in order), so slow
// clients hold only their own thread, never /health's; every read has a timeout (--read-timeout),
// bodies are bounded (--max-body: 413) and must not be compressed (415: no inflation bombs), URIs
// too (414); generation runs one request at a time (GenerationService's mutex). SIGINT/SIGTERM stop
// the server gracefully: the listening socket closes, requests in flight finish and are answered,
// then the command exits 0. Signals are blocked in every thread and taken by one waiter thread with
// sigwait, so no work happens in a signal handler. One log line per request on stderr; stdout
// carries only the "listening on" line (with the bound port, useful with --port 0).
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "cli/commands.h"
#include "exec/generate/serve.h"
#include "model/yaml_reader.h"

namespace eellm::cli {
namespace {

// The one failure path (cli/commands.h): main prints "eellm serve: <status>" and exits 1.
int fail(const Status& st) {
  finish("serve", st);
  return 1;
}

std::mutex log_mu;
// Set by a handler that logged its request itself (with the generation's figures); the logger
// (called on the same worker thread right after) then skips it.
thread_local bool logged_by_handler = false;

void log_line(const httplib::Request& req, int status, const std::string& detail) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::lock_guard<std::mutex> lock(log_mu);
  std::cerr << stamp << " " << req.remote_addr << " " << req.method << " " << req.path << " " << status
            << (detail.empty() ? "" : " " + detail) << "\n"
            << std::flush;
}

void json_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(exec::error_body(message), "application/json");
}

struct ServeCliOptions {
  std::string checkpoint, host = "127.0.0.1", device, method = "recompute", confidence = "max_prob";
  int port = 5000, threads = 0, max_batch = 128, max_pending = 8, draft_exit = -1, draft_tokens = 4;
  int connections = 64, read_timeout_s = 5;
  size_t max_body = size_t{1} << 20;
  bool allow_nonfinite = false;
};

// One thread per connection, at most `max` at once; further connections wait in arrival order and
// run on the first thread that frees up. A connection that sends slowly (slowloris) holds only its
// own thread, and only until a read times out.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t max) : max_(max) {}
  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (running_ >= max_) {
      pending_.push_back(std::move(fn));
      return;
    }
    try {
      std::thread([this, f = std::move(fn)]() mutable { run(std::move(f)); }).detach();
      ++running_;
    } catch (const std::system_error&) {  // no thread to be had: wait for one to free up
      pending_.push_back(std::move(fn));
    }
  }
  // Called by httplib once the listening socket is closed: waits for the connections in flight.
  void shutdown() override {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return running_ == 0; });
  }

 private:
  void run(std::function<void()> fn) {
    for (;;) {
      fn();
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_.empty()) {
        --running_;
        idle_.notify_all();
        return;
      }
      fn = std::move(pending_.front());
      pending_.pop_front();
    }
  }
  const size_t max_;
  std::mutex mu_;
  std::condition_variable idle_;
  size_t running_ = 0;
  std::deque<std::function<void()>> pending_;
};

// The text of an error status httplib produced itself (before any handler ran).
std::string http_error_text(const httplib::Request& req, int status, size_t max_body) {
  switch (status) {
    case 400:
      return "malformed HTTP request";
    case 404:
      return req.method + " " + req.path + ": no such endpoint (PUT /api, GET /health)";
    case 408:
      return "request timed out (the client sent too slowly)";
    case 413:
      return "request body larger than the limit of " + std::to_string(max_body) + " bytes (eellm serve --max-body)";
    case 414:
      return "request URI too long";
    case 415:
      return "compressed request bodies are not accepted; send the JSON uncompressed";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

// Blocks the stop signals before any thread exists (backend pools, connection threads inherit
// the mask), so only the waiter of listen_until_stopped receives them.
sigset_t block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // the main thread's "listen ended, stop waiting"
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// The server's decoding settings from the flags, before the checkpoint is opened (the draft exit,
// a layer number, is resolved against the model afterwards).
StatusOr<exec::ServeConfig> serve_config(const ServeCliOptions& o) {
  exec::ServeConfig sc;
  EELLM_ASSIGN_OR_RETURN(sc.decode.method, parse_enum_value<InferenceMethod>("--method", o.method));
  EELLM_ASSIGN_OR_RETURN(sc.decode.confidence, parse_enum_value<Confidence>("--confidence", o.confidence));
  sc.max_batch = o.max_batch;
  sc.decode.max_pending = o.max_pending;
  sc.decode.draft_tokens = o.draft_tokens;
  return sc;
}

// PUT/POST /api generates, GET /health reports; other methods get 405 with Allow, unrouted requests
// a JSON 404, handler exceptions a JSON 500. One log line per request.
void add_routes(httplib::Server& svr, exec::GenerationService& service, size_t max_body) {
  auto api = [&service](const httplib::Request& req, httplib::Response& res) {
    exec::GenerationService::Reply reply = service.generate(req.body);
    res.status = reply.status;
    res.set_content(reply.body, "application/json");
    logged_by_handler = true;
    if (!reply.log.empty()) log_line(req, reply.status, reply.log);
  };
  svr.Put("/api", api);
  svr.Post("/api", api);
  auto not_allowed = [](const std::string& allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      json_error(res, 405, req.method + " " + req.path + ": method not allowed; use " + allow);
    };
  };
  svr.Get("/api", not_allowed("PUT, POST"));
  svr.Delete("/api", not_allowed("PUT, POST"));
  svr.Patch("/api", not_allowed("PUT, POST"));
  svr.Get("/health", [&service](const httplib::Request&, httplib::Response& res) {
    res.set_content(service.health(), "application/json");
  });
  svr.Put("/health", not_allowed("GET"));
  svr.Post("/health", not_allowed("GET"));
  svr.Delete("/health", not_allowed("GET"));
  svr.Patch("/health", not_allowed("GET"));
  // Refused before the body is read: compressed bodies (their inflated size is unbounded). Bodies over
  // --max-body are httplib's 413: it reads and discards them (the client gets its answer), keeping none.
  svr.set_pre_routing_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    const std::string enc = req.get_header_value("Content-Encoding");
    if (enc.empty() || enc == "identity") return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("Connection", "close");
    json_error(res, 415, http_error_text(req, 415, max_body));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Unrouted requests (and httplib's own 4xx: 400, 413, 414) get a JSON body naming the fault;
  // handler errors keep theirs.
  svr.set_error_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) json_error(res, res.status, http_error_text(req, res.status, max_body));
  });
  svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    json_error(res, 500, req.method + " " + req.path + ": internal error: " + what);
  });
  svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (!logged_by_handler) log_line(req, res.status, "");
    logged_by_handler = false;
  });
}

// Binds --host:--port (port 0: any free port); returns the bound port.
StatusOr<int> bind_port(httplib::Server& svr, const ServeCliOptions& o) {
  int port = o.port;
  if (port == 0) {
    port = svr.bind_to_any_port(o.host);
    if (port < 0) return Status::io_error("cannot listen on " + o.host + " (any port)");
  } else if (!svr.bind_to_port(o.host, port)) {
    return Status::io_error("cannot listen on " + o.host + ":" + std::to_string(port) +
                            " (in use, or not an address of this machine)");
  }
  return port;
}

// Serves until the listen loop ends or a stop signal arrives (taken by a waiter thread with
// sigwait); returns whether listening ended cleanly.
bool listen_until_stopped(httplib::Server& svr, sigset_t& stop_signals) {
  std::atomic<bool> listen_done{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == SIGUSR1) return;  // listen ended on its own
    {
      std::lock_guard<std::mutex> lock(log_mu);
      std::cerr << "eellm serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << ": stopping (requests in flight finish)\n"
                << std::flush;
    }
    // stop() only acts on a running server; a signal right after bind waits for listen to start.
    while (!svr.is_running() && !listen_done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    svr.stop();
  });
  const bool clean = svr.listen_after_bind();
  listen_done = true;
  pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  std::cerr << "eellm serve: stopped\n";
  return clean;
}

int run_serve(const ServeCliOptions& o) {
  sigset_t stop_signals = block_stop_signals();
  auto sc = serve_config(o);
  if (!sc.is_ok()) return fail(sc.status());
  auto session = exec::open_generation(o.checkpoint, o.device, o.threads, {o.allow_nonfinite});
  if (!session.is_ok()) return fail(session.status());
  const exec::GptConfig& cfg = session->model.config;
  if (o.draft_exit >= 0) {
    auto e = exec::exit_index_at_layer(cfg, o.draft_exit);
    if (!e.is_ok()) return fail(e.status().with_context("--draft-exit"));
    sc->decode.draft_exit = *e;
  }
  if (Status st = exec::check_serve_config(cfg, *sc); !st.is_ok()) return fail(st);
  const std::string device = to_string(session->device);
  exec::GenerationService service(std::move(session).value(), *sc);

  httplib::Server svr;
  const size_t connections = static_cast<size_t>(o.connections);
  svr.new_task_queue = [connections] { return new ConnectionThreads(connections); };
  svr.set_payload_max_length(o.max_body);
  svr.set_read_timeout(o.read_timeout_s, 0);
  svr.set_keep_alive_timeout(o.read_timeout_s);
  add_routes(svr, service, o.max_body);
  auto port = bind_port(svr, o);
  if (!port.is_ok()) return fail(port.status());
  std::printf("eellm serve: listening on http://%s:%d (model %s, %s, %s)\n", o.host.c_str(), *port,
              service.model().scenario.name.c_str(), device.c_str(), to_string(sc->decode.method));
  std::fflush(stdout);
  if (!listen_until_stopped(svr, stop_signals))
    return fail(Status::io_error("the server on port " + std::to_string(*port) + " stopped with an error"));
  return 0;
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeCliOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "HTTP text generation server (EE-LLM's PUT /api request fields)");
  cmd->add_option("checkpoint", o->checkpoint, "Checkpoint directory (from eellm train --save)")->required();
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port to listen on (0: any free port, printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Backend CPU threads (default: all cores)");
  cmd->add_option("--device", o->device, "cpu | cuda (default: the checkpoint scenario's execution.device)");
  cmd->add_option("--method", o->method,
                  "Decoding of use_early_exit requests: recompute (EE-LLM KV recomputation) | speculative | full")
      ->capture_default_str();
  cmd->add_option("--confidence", o->confidence, "max_prob | margin | entropy")->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Most prompts in one request (decoded as one batch)")
      ->capture_default_str();
  cmd->add_option("--max-pending", o->max_pending, "recompute: pending tokens that force a full pass")
      ->capture_default_str();
  cmd->add_option("--draft-exit", o->draft_exit, "speculative: drafting exit as a layer number (default: the first)");
  cmd->add_option("--draft-tokens", o->draft_tokens, "speculative: tokens drafted per round")->capture_default_str();
  cmd->add_option("--connections", o->connections,
                  "Connections served at once, one thread each; more wait in order (requests still generate one at "
                  "a time)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--read-timeout", o->read_timeout_s,
                  "Seconds a connection may stay silent while sending a request (and idle between requests)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--max-body", o->max_body, "Largest request body in bytes (larger: 413)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  cmd->add_flag("--allow-nonfinite-weights", o->allow_nonfinite, "Load a checkpoint whose weights hold NaN or Inf");
  cmd->callback([o] { exit_code() = run_serve(*o); });
}

}  // namespace eellm::cli
