// `eellm serve CHECKPOINT`: early-exit generation behind HTTP, with EE-LLM's request fields
// (PUT /api, JSON; exec/generate/serve.h parses and answers) and GET /health. cpp-httplib serves the
// connections on a small thread pool; generation runs one request at a time (GenerationService's
// mutex). SIGINT/SIGTERM stop the server gracefully: the listening socket closes, requests in
// flight finish and are answered, then the command exits 0. Signals are blocked in every thread and
// taken by one waiter thread with sigwait, so no work happens in a signal handler. One log line per
// request on stderr; stdout carries only the "listening on" line (with the bound port, useful with
// --port 0).
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
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
  int connections = 4;
};

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
void add_routes(httplib::Server& svr, exec::GenerationService& service) {
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
  // Unrouted requests (and httplib's own 4xx) get a JSON body; handler errors keep theirs.
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty())
      json_error(res, res.status, req.method + " " + req.path + ": no such endpoint (PUT /api, GET /health)");
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
  auto session = exec::open_generation(o.checkpoint, o.device, o.threads);
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
  svr.new_task_queue = [connections] { return new httplib::ThreadPool(connections); };
  svr.set_payload_max_length(size_t{16} << 20);
  add_routes(svr, service);
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
  cmd->add_option("--connections", o->connections, "Connection threads (requests still generate one at a time)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->callback([o] { exit_code() = run_serve(*o); });
}

}  // namespace eellm::cli
