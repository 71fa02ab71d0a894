// OpenBLAS loading, and the Eigen-vs-OpenBLAS measurement (see gemm.h).
#include "exec/backend/gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <utility>

namespace eellm::exec {
namespace {

// cblas_sgemm's signature with the CBLAS enums as ints (CblasRowMajor 101, NoTrans 111, Trans 112).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using SetThreadsFn = void (*)(int);
using CorenameFn = char* (*)();

struct OpenBlas {
  OpenBlasInfo info;
  SgemmFn sgemm = nullptr;
};

// The OpenBLAS kernel family for this CPU, as a current OpenBLAS would pick it ("" → let it detect).
const char* best_coretype() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

// Sets name=value for the duration of a scope unless the environment already sets it, or unless
// `keep(current value)` says the inherited value stays; restores the environment at the end.
class ScopedEnvDefault {
 public:
  ScopedEnvDefault(const char* name, const std::string& value, bool (*keep)(const char*) = nullptr) : name_(name) {
    const char* cur = std::getenv(name);
    if (value.empty() || (cur && (!keep || keep(cur)))) return;
    if (cur) old_ = cur, had_old_ = true;
    ::setenv(name, value.c_str(), 1);
    set_ = value;
  }
  ~ScopedEnvDefault() {
    if (set_.empty()) return;
    if (had_old_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnvDefault(const ScopedEnvDefault&) = delete;
  ScopedEnvDefault& operator=(const ScopedEnvDefault&) = delete;
  const std::string& value_set() const { return set_; }

 private:
  const char* name_;
  std::string set_, old_;
  bool had_old_ = false;
};

// An inherited OPENBLAS_CORETYPE stays when it names the best family or an AVX-512 one; an older
// family (e.g. a machine-wide "Haswell" set against Debian 12's Prescott fallback) is replaced.
bool keep_coretype(const char* cur) {
  std::string c(cur);
  for (char& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string best(best_coretype());
  for (char& ch : best) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return c == best || c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
}

OpenBlas load_openblas() {
  OpenBlas ob;
  // OpenBLAS reads both at load time: the kernel family, and no thread pool (calls are single-threaded).
  ScopedEnvDefault core("OPENBLAS_CORETYPE", best_coretype(), keep_coretype);
  ScopedEnvDefault threads("OPENBLAS_NUM_THREADS", "1");
  void* h = ::dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    ob.info.error = std::string("libopenblas.so.0 not loadable (install libopenblas0): ") + (e ? e : "unknown");
    return ob;
  }
  ob.sgemm = reinterpret_cast<SgemmFn>(::dlsym(h, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<SetThreadsFn>(::dlsym(h, "openblas_set_num_threads"));
  auto corename = reinterpret_cast<CorenameFn>(::dlsym(h, "openblas_get_corename"));
  if (!ob.sgemm || !set_threads || !corename) {
    ob.info.error = "libopenblas.so.0 lacks cblas_sgemm/openblas_set_num_threads/openblas_get_corename";
    ob.sgemm = nullptr;
    return ob;
  }
  set_threads(1);  // also when the library was already loaded with a pool
  ob.info.available = true;
  ob.info.corename = corename();
  ob.info.coretype_set = core.value_set();
  return ob;
}

const OpenBlas& openblas() {
  static const OpenBlas ob = load_openblas();
  return ob;
}

}  // namespace

const char* cpu_gemm_name(CpuGemm g) {
  return g == CpuGemm::kOpenBLAS ? "openblas" : "eigen";
}

StatusOr<CpuGemm> parse_cpu_gemm(const std::string& s, const std::string& field) {
  if (s == "eigen") return CpuGemm::kEigen;
  if (s == "openblas") return CpuGemm::kOpenBLAS;
  return Status::invalid_argument(field + ": unknown CPU GEMM '" + s + "' (expected eigen, openblas or auto)");
}

const OpenBlasInfo& openblas_info() {
  return openblas().info;
}

void openblas_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) {
  openblas().sgemm(101, trans_a ? 112 : 111, trans_b ? 112 : 111, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

std::string cpu_gemm_label(CpuGemm g) {
  if (g == CpuGemm::kOpenBLAS) return std::string("openblas (") + openblas_info().corename + ")";
  return "eigen";
}

}  // namespace eellm::exec
