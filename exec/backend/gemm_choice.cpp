#include "exec/backend/gemm_choice.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "exec/backend/backend.h"

namespace eellm::exec {
namespace {

// Rows measured per shape at most: the backend hands the libraries slices of ≤ a few hundred rows,
// so more rows only make the measurement longer.
constexpr int kMaxMeasuredRows = 2048;
constexpr int kRounds = 3;  // after one warm-up round

struct ShapeBuffers {
  GemmShape s;
  std::vector<float> x, w, y, dx, dw;
};

std::vector<ShapeBuffers> make_buffers(const std::vector<GemmShape>& shapes) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<ShapeBuffers> out;
  for (GemmShape s : shapes) {
    s.N = std::min(s.N, kMaxMeasuredRows);
    const size_t nx = static_cast<size_t>(s.N) * s.C, nw = static_cast<size_t>(s.OC) * s.C;
    ShapeBuffers b{s,
                   std::vector<float>(nx),
                   std::vector<float>(nw),
                   std::vector<float>(static_cast<size_t>(s.N) * s.OC),
                   std::vector<float>(nx),
                   std::vector<float>(nw)};
    for (float& v : b.x) v = d(rng);
    for (float& v : b.w) v = d(rng);
    for (float& v : b.y) v = d(rng);
    out.push_back(std::move(b));
  }
  return out;
}

// Seconds of forward + dinp + dweight over all shapes on backend `be`.
double time_all(Backend& be, std::vector<ShapeBuffers>& bufs) {
  const auto t0 = std::chrono::steady_clock::now();
  for (ShapeBuffers& b : bufs) {
    be.matmul_forward(b.y.data(), b.x.data(), b.w.data(), nullptr, b.s.N, b.s.C, b.s.OC);
    be.matmul_backward(b.dx.data(), b.dw.data(), nullptr, b.y.data(), b.x.data(), b.w.data(), b.s.N, b.s.C, b.s.OC);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What makes a measurement valid elsewhere: the CPU, its cores, the threads, the shapes and the
// libraries loadable here with their kernels.
std::string choice_key(int threads, const std::vector<GemmShape>& shapes) {
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.starts_with("model name")) {
      cpu = line.substr(std::min(line.size(), line.find(':') + 2));
      break;
    }
  std::ostringstream k;
  // "v2": entries from before oneDNN was held to one thread per call (gemm.cpp) compared a 2-thread
  // oneDNN with the single-threaded others; they no longer match and are measured again.
  k << "v2 | " << cpu << " (" << omp_get_num_procs() << " cores) | " << threads << " threads |";
  for (const GemmShape& s : shapes) k << " " << std::min(s.N, kMaxMeasuredRows) << "x" << s.C << "x" << s.OC;
  k << " |";
  for (CpuGemm g : all_cpu_gemms())
    if (cpu_gemm_info(g).available) k << " " << cpu_gemm_label(g);
  return k.str();
}

// An exclusive flock on `path` for the life of the object (none if it cannot be opened).
class FileLock {
 public:
  explicit FileLock(const std::string& path) {
    if (path.empty()) return;
    fd_ = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd_ >= 0) (void)::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// The cache file's entries (an object keyed by choice_key), {} when absent; a warning naming the
// file and the reason when it is unreadable (it is then rewritten).
nlohmann::json read_cache(const std::string& file) {
  std::ifstream in(file);
  if (!in) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::fprintf(stderr, "eellm: %s: not a JSON object of GEMM choices; measuring again and rewriting it\n",
                 file.c_str());
    return nlohmann::json::object();
  }
  return j;
}

// The cached choice for `key`, if the entry names an available library and its figures.
bool from_cache(const nlohmann::json& cache, const std::string& key, const std::string& file, GemmChoice& c) {
  auto it = cache.find(key);
  if (it == cache.end() || !it->is_object() || !it->contains("gemm") || !(*it)["gemm"].is_string()) return false;
  auto g = parse_cpu_gemm((*it)["gemm"].get<std::string>(), file + ": gemm");
  if (!g.is_ok() || !cpu_gemm_info(*g).available) return false;
  c.gemm = *g;
  for (CpuGemm lib : all_cpu_gemms()) {
    const auto& f = it->value("gflops", nlohmann::json::object());
    if (f.contains(cpu_gemm_name(lib)) && f[cpu_gemm_name(lib)].is_number())
      c.gflops.emplace_back(lib, f[cpu_gemm_name(lib)].get<double>());
  }
  c.source = "cached in " + file;
  return true;
}

// Adds `c` under `key` and writes the file (a temporary file renamed over it); false if it cannot.
bool write_cache(nlohmann::json cache, const std::string& key, const std::string& file, const GemmChoice& c) {
  nlohmann::json entry{{"gemm", cpu_gemm_name(c.gemm)}, {"gflops", nlohmann::json::object()}};
  for (const auto& [g, v] : c.gflops) entry["gflops"][cpu_gemm_name(g)] = v;
  cache[key] = entry;
  const std::string tmp = file + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp);
    if (!(out << cache.dump(2) << "\n")) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  return !ec;
}

std::mutex g_mu;
GemmChoice g_last;

}  // namespace

double GemmChoice::gflops_of(CpuGemm g) const {
  for (const auto& [lib, v] : gflops)
    if (lib == g) return v;
  return 0;
}

std::string GemmChoice::summary() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, " %.1f", gflops_of(gemm));
  std::string s = cpu_gemm_label(gemm) + buf;
  std::string sep = " vs ";
  for (const auto& [lib, v] : gflops) {
    if (lib == gemm) continue;
    std::snprintf(buf, sizeof buf, " %.1f", v);
    s += sep + cpu_gemm_label(lib) + buf;
    sep = ", ";
  }
  s += " GFLOP/s";
  if (gflops.size() <= 1) s += " (no BLAS library loadable)";
  return s;
}

std::string GemmChoice::log_line() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, ", %d thread%s, measured", threads, threads == 1 ? "" : "s");
  std::string rest = summary().substr(cpu_gemm_label(gemm).size());  // " 28.3 vs eigen 17.2 GFLOP/s"
  std::string s = "gemm: " + cpu_gemm_label(gemm) + buf + rest;
  if (source != "measured" && !source.empty()) s += " (" + source + ")";
  return s;
}

GemmChoice measure_cpu_gemm(int threads, const std::vector<GemmShape>& shapes) {
  std::vector<ShapeBuffers> bufs = make_buffers(shapes);
  double flops = 0;
  for (const ShapeBuffers& b : bufs) flops += 3 * 2.0 * b.s.N * b.s.C * b.s.OC;
  std::vector<std::pair<CpuGemm, std::unique_ptr<Backend>>> libs;
  for (CpuGemm g : all_cpu_gemms())
    if (cpu_gemm_info(g).available) libs.emplace_back(g, make_cpu_backend(threads, g));
  std::vector<double> best(libs.size(), 1e30);
  for (int r = 0; r <= kRounds; ++r)  // the libraries alternate, so a busy moment hits them alike
    for (size_t i = 0; i < libs.size(); ++i) {
      const double t = time_all(*libs[i].second, bufs);
      if (r > 0) best[i] = std::min(best[i], t);
    }
  GemmChoice c;
  c.threads = libs.front().second->num_threads();
  c.source = "measured";
  for (size_t i = 0; i < libs.size(); ++i) {
    c.gflops.emplace_back(libs[i].first, flops / std::max(best[i], 1e-12) / 1e9);
    if (c.gflops.back().second > c.gflops_of(c.gemm)) c.gemm = libs[i].first;
  }
  return c;
}

std::string default_cpu_gemm_cache_file() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg) return std::string(xdg) + "/eellm/cpu_gemm.json";
  if (home && *home) return std::string(home) + "/.cache/eellm/cpu_gemm.json";
  return "";
}

GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes, const std::string& cache_file) {
  const std::string key = choice_key(threads, shapes);
  std::error_code ec;
  if (!cache_file.empty()) std::filesystem::create_directories(std::filesystem::path(cache_file).parent_path(), ec);
  FileLock lock(cache_file.empty() ? "" : cache_file + ".lock");
  const nlohmann::json cache = cache_file.empty() ? nlohmann::json::object() : read_cache(cache_file);
  GemmChoice c;
  if (!from_cache(cache, key, cache_file, c)) {
    c = measure_cpu_gemm(threads, shapes);
    if (!cache_file.empty() && !write_cache(cache, key, cache_file, c))
      std::fprintf(stderr, "eellm: %s: cannot write the GEMM choice (kept for this process only)\n",
                   cache_file.c_str());
  }
  c.threads = threads > 0 ? threads : omp_get_num_procs();
  std::lock_guard<std::mutex> l(g_mu);
  g_last = c;
  return c;
}

GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes) {
  static std::mutex mu;
  static std::map<std::string, GemmChoice> cache;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = choice_key(threads, shapes);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, choose_cpu_gemm(threads, shapes, default_cpu_gemm_cache_file())).first;
  std::lock_guard<std::mutex> l(g_mu);
  g_last = it->second;
  return it->second;
}

GemmChoice last_cpu_gemm_choice() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_last;
}

std::string gemm_run_note(const std::string& gemm_name) {
  const GemmChoice c = last_cpu_gemm_choice();
  if (c.threads > 0 && cpu_gemm_label(c.gemm) == gemm_name) return c.log_line();
  return "gemm: " + gemm_name;
}

std::vector<GemmShape> gpt_gemm_shapes(int tokens, int C, int qkv, int fc, int F) {
  return {{tokens, C, qkv}, {tokens, C, C}, {tokens, C, fc}, {tokens, F, C}};
}

}  // namespace eellm::exec
