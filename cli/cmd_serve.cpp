// `eellm serve CHECKPOINT`: early-exit generation behind HTTP, with EE-LLM's request fields
// (PUT /api, JSON; exec/generate/serve.h parses and answers) and GET /health. cpp-httplib parses
// HTTP; the connection loop is ours (BoundedServer): each connection on its own thread, at most
// --connections of them; while all are taken, 16 overflow threads answer GET /health and give the
// rest 503 with Retry-After, and beyond those the accept thread answers 503 itself (it never waits).
// A request's header must arrive within --header-timeout in all and its body within --body-timeout
// (408 and close: a client trickling a byte a second holds its thread no longer), each read within
// --read-timeout; headers are bounded (64 KiB: 431), bodies too (--max-body: 413) and must not be
// compressed (415: no inflation bombs), URIs too (414); generation runs one request at a time
// (GenerationService's mutex). SIGINT/SIGTERM stop
// the server gracefully: the listening socket closes, requests in flight finish and are answered,
// then the command exits 0. Signals are blocked in every thread and taken by one waiter thread with
// sigwait, so no work happens in a signal handler. One log line per request on stderr; stdout
// carries only the "listening on" line (with the bound port, useful with --port 0).
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "cli/commands.h"
#include "cli/option_checks.h"
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
  double header_timeout_s = 10, body_timeout_s = 30;
  size_t max_body = size_t{1} << 20;
  bool allow_nonfinite = false;
};

using Clock = std::chrono::steady_clock;

// What a connection thread serves: a regular one (up to --connections at once), an overflow one
// (up to kOverflowThreads more while the bound is reached: /health only, other requests 503), or a
// refused one (beyond both: the accept thread writes a 503 and closes, never blocking).
enum class ConnectionKind { kRegular, kOverflow, kRefused };
constexpr size_t kOverflowThreads = 16;
constexpr double kOverflowHeaderS = 2.0;      // an overflow connection's header deadline (at most)
constexpr size_t kMaxHeaderBytes = 64 << 10;  // request line and header fields of one request
thread_local ConnectionKind connection_kind = ConnectionKind::kRegular;

// A connection's socket as httplib reads it, with a total deadline on the request being read: each
// read waits at most the read timeout (silence) and never past the deadline, so a client trickling
// one byte a second is cut when its header (or body) time is up. The header is also bounded in
// bytes. Writes wait at most the write timeout.
class DeadlineStream : public httplib::Stream {
 public:
  DeadlineStream(socket_t sock, time_t read_timeout_s, time_t write_timeout_s)
      : sock_(sock),
        read_ms_(static_cast<int>(read_timeout_s * 1000)),
        write_ms_(static_cast<int>(write_timeout_s * 1000)) {}
  // A new request: its header must arrive within `seconds`.
  void begin_header(double seconds) { start_phase(seconds, true); }
  // The header is read: the body must arrive within `seconds`.
  void begin_body(double seconds) { start_phase(seconds, false); }
  bool expired() const { return expired_; }
  bool header_too_large() const { return header_too_large_; }
  bool buffered() const { return pos_ < len_; }
  size_t written() const { return written_; }

  bool is_readable() const override { return buffered() || wait(POLLIN, read_wait_ms()); }
  bool is_writable() const override { return wait(POLLOUT, write_ms_); }
  ssize_t read(char* ptr, size_t size) override {
    if (in_header_ && read_ > kMaxHeaderBytes) {
      header_too_large_ = true;
      return -1;
    }
    if (!buffered()) {
      if (!is_readable()) return -1;
      ssize_t n = 0;
      do n = ::recv(sock_, buf_, sizeof buf_, 0);
      while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t k = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, k);
    pos_ += k;
    read_ += k;
    return static_cast<ssize_t>(k);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n = 0;
    do n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n > 0) written_ += static_cast<size_t>(n);
    return n;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  void start_phase(double seconds, bool header) {
    deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    in_header_ = header;
    read_ = 0;
  }
  // How long the next read may wait: the read timeout, cut to what is left of the deadline.
  int read_wait_ms() const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) {
      expired_ = true;
      return -1;
    }
    return static_cast<int>(std::min<int64_t>(left, read_ms_));
  }
  bool wait(short events, int ms) const {
    if (ms < 0) return false;
    pollfd p{sock_, events, 0};
    int r = 0;
    do r = ::poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r == 0 && events == POLLIN && ms < read_ms_) expired_ = true;  // the deadline, not the read timeout, ran out
    return r > 0;
  }
  void address(bool peer, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    auto* sa = reinterpret_cast<sockaddr*>(&a);
    if ((peer ? ::getpeername(sock_, sa, &n) : ::getsockname(sock_, sa, &n)) != 0) return;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (::getnameinfo(sa, n, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) return;
    ip = host;
    port = std::atoi(serv);
  }

  const socket_t sock_;
  const int read_ms_, write_ms_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool in_header_ = true, header_too_large_ = false;
  mutable bool expired_ = false;
  size_t read_ = 0, written_ = 0, pos_ = 0, len_ = 0;
  char buf_[4096];
};
thread_local DeadlineStream* current_stream = nullptr;

// An answer written straight to the socket (no request read), then the connection is closed by the caller.
void send_raw(socket_t sock, int status, const char* reason, const std::string& message) {
  const std::string body = exec::error_body(message);
  const std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n" + (status == 503 ? "Retry-After: 1\r\n" : "") + "\r\n" + body;
  (void)::send(sock, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// httplib's server with its connection loop replaced: every request read through a DeadlineStream
// (header deadline from the first byte's wait, body deadline set by the pre-routing handler),
// overflow connections one request each, refused connections a 503.
class BoundedServer : public httplib::Server {
 public:
  explicit BoundedServer(double header_s) : header_s_(header_s) {}
  // httplib listens with a backlog of 5: a burst of connections would wait in SYN retries (seconds)
  // before the accept thread even sees them. Called after bind.
  bool widen_backlog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }

 private:
  bool process_and_close_socket(socket_t sock) override {
    bool ok = true;
    if (connection_kind == ConnectionKind::kRefused)
      send_raw(sock, 503, "Service Unavailable", "the server is at its connection limit (eellm serve --connections)");
    else
      ok = serve_connection(sock);
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }
  bool serve_connection(socket_t sock) {
    DeadlineStream strm(sock, read_timeout_sec_, write_timeout_sec_);
    current_stream = &strm;
    const bool overflow = connection_kind == ConnectionKind::kOverflow;
    size_t count = overflow ? 1 : keep_alive_max_count_;
    bool ok = false;
    // The first request's header deadline counts from the accept (a client that sends nothing holds its
    // thread no longer than one that trickles); later ones wait for their first byte up to the keep-alive timeout.
    bool first = true;
    while (svr_sock_ != INVALID_SOCKET && count > 0 && (first || strm.buffered() || request_arrives(sock))) {
      first = false;
      strm.begin_header(overflow ? std::min(header_s_, kOverflowHeaderS) : header_s_);
      const size_t written = strm.written();
      bool closed = false;
      ok = process_request(strm, count == 1, closed, nullptr);
      if (strm.expired() && strm.written() == written)  // cut before httplib had a request line to answer
        send_raw(sock, 408, "Request Timeout", "request timed out: its header did not arrive in time");
      if (!ok || closed || strm.expired() || strm.header_too_large()) break;
      --count;
    }
    current_stream = nullptr;
    return ok;
  }
  // Waits (up to the keep-alive timeout, while the server runs) for the next request's first byte.
  bool request_arrives(socket_t sock) const {
    const auto until = Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
    while (svr_sock_ != INVALID_SOCKET && Clock::now() < until) {
      pollfd p{sock, POLLIN, 0};
      const int r = ::poll(&p, 1, 50);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
    return false;
  }
  const double header_s_;
};

// One thread per connection: up to `regular` serve everything; while they are all taken, up to
// kOverflowThreads more answer /health (and 503 to the rest) with a short header deadline; beyond
// those, the accept thread answers 503 itself and closes. Accepting never waits.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(size_t regular) : max_regular_(regular) {}
  void enqueue(std::function<void()> fn) override {
    ConnectionKind kind = ConnectionKind::kRefused;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (regular_ < max_regular_) {
        kind = ConnectionKind::kRegular;
        ++regular_;
      } else if (overflow_ < kOverflowThreads) {
        kind = ConnectionKind::kOverflow;
        ++overflow_;
      }
    }
    if (kind != ConnectionKind::kRefused) {
      try {
        std::thread([this, kind, fn] {
          connection_kind = kind;
          fn();
          finished(kind);
        }).detach();
        return;
      } catch (const std::system_error&) {  // no thread to be had: refuse this one
        finished(kind);
      }
    }
    connection_kind = ConnectionKind::kRefused;
    fn();
    connection_kind = ConnectionKind::kRegular;
  }
  // Called by httplib once the listening socket is closed: waits for the connections in flight.
  void shutdown() override {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return regular_ + overflow_ == 0; });
  }

 private:
  void finished(ConnectionKind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    --(kind == ConnectionKind::kRegular ? regular_ : overflow_);
    idle_.notify_all();
  }
  const size_t max_regular_;
  std::mutex mu_;
  std::condition_variable idle_;
  size_t regular_ = 0, overflow_ = 0;
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
    case 431:
      return "request header larger than " + std::to_string(kMaxHeaderBytes) + " bytes";
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

// What is wrong with the request's framing, or "": every Content-Length a decimal number, all equal,
// and not beside Transfer-Encoding (a request that could be read two ways is refused, RFC 9112 6.3);
// a PUT or POST has one of them (httplib would read a body without either until the connection closes).
std::string framing_fault(const httplib::Request& req) {
  const size_t n = req.get_header_value_count("Content-Length");
  if (n == 0 && (req.method == "PUT" || req.method == "POST") && !req.has_header("Transfer-Encoding"))
    return "Content-Length: required (or Transfer-Encoding: chunked)";
  std::string first;
  for (size_t i = 0; i < n; ++i) {
    const std::string v = req.get_header_value("Content-Length", i);
    uint64_t len = 0;
    if (v.empty() || v[0] == '+' || !parse_number(v, len)) return "Content-Length: not a number, got '" + v + "'";
    if (i > 0 && v != first) return "Content-Length: given twice with different values";
    first = v;
  }
  if (n > 0 && req.has_header("Transfer-Encoding")) return "Content-Length and Transfer-Encoding: send only one";
  return "";
}

// PUT/POST /api generates, GET /health reports; other methods get 405 with Allow, unrouted requests
// a JSON 404, handler exceptions a JSON 500. One log line per request.
void add_routes(httplib::Server& svr, exec::GenerationService& service, const ServeCliOptions& o) {
  const size_t max_body = o.max_body;
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
  // Called once the header is read, before the body: the body's deadline starts; an overflow connection
  // (all --connections taken) gets only /health, others a 503 with Retry-After. Refused before the body
  // is read: compressed bodies (their inflated size is unbounded). Bodies over --max-body are httplib's
  // 413: it reads and discards them (the client gets its answer), keeping none.
  svr.set_pre_routing_handler([max_body, &o](const httplib::Request& req, httplib::Response& res) {
    if (current_stream != nullptr) current_stream->begin_body(o.body_timeout_s);
    if (connection_kind == ConnectionKind::kOverflow && !(req.method == "GET" && req.path == "/health")) {
      res.set_header("Retry-After", "1");
      res.set_header("Connection", "close");
      json_error(res, 503,
                 "the server is at its connection limit of " + std::to_string(o.connections) +
                     " (eellm serve --connections); only GET /health is answered now, retry later");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (const std::string fault = framing_fault(req); !fault.empty()) {
      res.set_header("Connection", "close");
      json_error(res, 400, fault);
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string enc = req.get_header_value("Content-Encoding");
    if (enc.empty() || enc == "identity") return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("Connection", "close");
    json_error(res, 415, http_error_text(req, 415, max_body));
    return httplib::Server::HandlerResponse::Handled;
  });
  // Unrouted requests (and httplib's own 4xx: 400, 413, 414) get a JSON body naming the fault;
  // handler errors keep theirs.
  // A request cut by its deadline or header size is answered 408 or 431 (httplib says 400).
  svr.set_error_handler([max_body](const httplib::Request& req, httplib::Response& res) {
    if (current_stream != nullptr && res.body.empty()) {
      if (current_stream->expired()) res.status = 408;
      if (current_stream->header_too_large()) res.status = 431;
      if (res.status == 408 || res.status == 431) res.set_header("Connection", "close");
    }
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

  BoundedServer svr(o.header_timeout_s);
  const size_t connections = static_cast<size_t>(o.connections);
  svr.new_task_queue = [connections] { return new ConnectionThreads(connections); };
  svr.set_payload_max_length(o.max_body);
  svr.set_read_timeout(o.read_timeout_s, 0);
  svr.set_keep_alive_timeout(o.read_timeout_s);
  add_routes(svr, service, o);
  auto port = bind_port(svr, o);
  if (!port.is_ok()) return fail(port.status());
  if (!svr.widen_backlog()) return fail(Status::io_error("cannot listen on port " + std::to_string(*port)));
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
      ->check(int_in(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Backend CPU threads (default: all cores)")->check(int_in(1, kMaxThreads));
  cmd->add_option("--device", o->device, "cpu | cuda (default: the checkpoint scenario's execution.device)");
  cmd->add_option("--method", o->method,
                  "Decoding of use_early_exit requests: recompute (EE-LLM KV recomputation) | speculative | full")
      ->capture_default_str();
  cmd->add_option("--confidence", o->confidence, "max_prob | margin | entropy")->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Most prompts in one request (decoded as one batch)")
      ->check(int_in(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-pending", o->max_pending, "recompute: pending tokens that force a full pass")
      ->check(int_in(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--draft-exit", o->draft_exit, "speculative: drafting exit as a layer number (default: the first)");
  cmd->add_option("--draft-tokens", o->draft_tokens, "speculative: tokens drafted per round")
      ->check(int_in(1, 1024))
      ->capture_default_str();
  cmd->add_option("--connections", o->connections,
                  "Connections served at once, one thread each; beyond them only GET /health is answered, other "
                  "requests get 503 (requests still generate one at a time)")
      ->check(int_in(1, 4096))
      ->capture_default_str();
  cmd->add_option("--header-timeout", o->header_timeout_s,
                  "Seconds a request's line and header fields may take to arrive in all (then 408 and close)")
      ->check(number_in(0.1, 3600))
      ->capture_default_str();
  cmd->add_option("--body-timeout", o->body_timeout_s,
                  "Seconds a request's body may take to arrive in all, counted from the end of its header")
      ->check(number_in(0.1, 3600))
      ->capture_default_str();
  cmd->add_option("--read-timeout", o->read_timeout_s,
                  "Seconds a connection may stay silent while sending a request (and idle between requests)")
      ->check(int_in(1, 3600))
      ->capture_default_str();
  cmd->add_option("--max-body", o->max_body, "Largest request body in bytes (larger: 413)")
      ->check(int_in(1024, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_flag("--allow-nonfinite-weights", o->allow_nonfinite, "Load a checkpoint whose weights hold NaN or Inf");
  cmd->callback([o] { exit_code() = run_serve(*o); });
}

}  // namespace eellm::cli
