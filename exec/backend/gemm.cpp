// Loading the run-time GEMM libraries (OpenBLAS, oneDNN, BLIS) and calling them (see gemm.h).
#include "exec/backend/gemm.h"

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

namespace eellm::exec {
namespace {

// cblas_sgemm's signature with the CBLAS enums as ints (CblasRowMajor 101, NoTrans 111, Trans 112).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
// dnnl_sgemm (row-major; dnnl_dim_t is int64_t; returns dnnl_status_t).
using DnnlSgemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                            float, float*, int64_t);
// dnnl_gemm_bf16bf16f32 (dnnl_bfloat16_t is a 16-bit bit pattern).
using DnnlBf16GemmFn = int (*)(char, char, int64_t, int64_t, int64_t, float, const uint16_t*, int64_t, const uint16_t*,
                               int64_t, float, float*, int64_t);
using SetThreadsFn = void (*)(int);
using BliSetThreadsFn = void (*)(long);
using CorenameFn = char* (*)();
using IntFn = int (*)();
using ArchStringFn = const char* (*)(int);

struct BlasLib {
  GemmLibInfo info;
  SgemmFn cblas = nullptr;     // OpenBLAS, BLIS
  DnnlSgemmFn dnnl = nullptr;  // oneDNN
  DnnlBf16GemmFn dnnl_bf16 = nullptr;
};

// Debian's oneDNN threads its GEMMs with OpenMP, omp_get_max_threads() of the calling thread (all
// the CPUs by default), so each of the backend's slices ran a team of its own: 2 busy threads per
// slice, and under several ranks per core libgomp's spinning teams oversubscribed the cores (a 1-s
// plan took 10 s). The contract is one thread per call: nthreads-var is per thread, set once on each
// thread that calls oneDNN.
void one_openmp_thread_here() {
  thread_local const bool single = (omp_set_num_threads(1), true);
  (void)single;
}

bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// The OpenBLAS kernel family for this CPU, as a current OpenBLAS would pick it ("" → let it detect).
const char* best_coretype() {
  __builtin_cpu_init();
  if (has_avx512()) return "SkylakeX";
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
  // "NAME=value" when this scope set it, else "".
  std::string what_set() const { return set_.empty() ? "" : std::string(name_) + "=" + set_; }

 private:
  const char* name_;
  std::string set_, old_;
  bool had_old_ = false;
};

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// An inherited OPENBLAS_CORETYPE stays when it names the best family or an AVX-512 one; an older
// family (e.g. a machine-wide "Haswell" set against Debian 12's Prescott fallback) is replaced.
bool keep_coretype(const char* cur) {
  const std::string c = lower(cur);
  return c == lower(best_coretype()) || c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
}

// dlopen + the named symbols, or info.error saying which package to install / what is missing.
void* open_lib(const char* soname, const char* package, GemmLibInfo& info) {
  void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    info.error = std::string(soname) + " not loadable (install " + package + "): " + (e ? e : "unknown");
  }
  return h;
}

BlasLib load_openblas() {
  BlasLib ob;
  // OpenBLAS reads both at load time: the kernel family, and no thread pool (calls are single-threaded).
  ScopedEnvDefault core("OPENBLAS_CORETYPE", best_coretype(), keep_coretype);
  ScopedEnvDefault threads("OPENBLAS_NUM_THREADS", "1");
  void* h = open_lib("libopenblas.so.0", "libopenblas0", ob.info);
  if (!h) return ob;
  ob.cblas = reinterpret_cast<SgemmFn>(::dlsym(h, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<SetThreadsFn>(::dlsym(h, "openblas_set_num_threads"));
  auto corename = reinterpret_cast<CorenameFn>(::dlsym(h, "openblas_get_corename"));
  if (!ob.cblas || !set_threads || !corename) {
    ob.info.error = "libopenblas.so.0 lacks cblas_sgemm/openblas_set_num_threads/openblas_get_corename";
    ob.cblas = nullptr;
    return ob;
  }
  set_threads(1);  // also when the library was already loaded with a pool
  ob.info.available = true;
  ob.info.kernel = corename();
  ob.info.kernel_set = core.what_set();
  return ob;
}

// oneDNN 2.x's dnnl_cpu_isa_t values → names.
std::string dnnl_isa_name(int isa) {
  static const std::map<int, const char*> names = {{0x1, "sse41"},
                                                   {0x3, "avx"},
                                                   {0x7, "avx2"},
                                                   {0x407, "avx2_vnni"},
                                                   {0x27, "avx512_core"},
                                                   {0x67, "avx512_core_vnni"},
                                                   {0xe7, "avx512_core_bf16"},
                                                   {0x3e7, "avx512_core_amx"}};
  auto it = names.find(isa);
  if (it != names.end()) return it->second;
  char buf[32];
  std::snprintf(buf, sizeof buf, "isa 0x%x", static_cast<unsigned>(isa));
  return buf;
}

BlasLib load_onednn() {
  BlasLib dn;
  void* h = open_lib("libdnnl.so.2", "libdnnl2", dn.info);
  if (!h) return dn;
  dn.dnnl = reinterpret_cast<DnnlSgemmFn>(::dlsym(h, "dnnl_sgemm"));
  dn.dnnl_bf16 = reinterpret_cast<DnnlBf16GemmFn>(::dlsym(h, "dnnl_gemm_bf16bf16f32"));
  auto isa = reinterpret_cast<IntFn>(::dlsym(h, "dnnl_get_effective_cpu_isa"));
  if (!dn.dnnl || !isa) {
    dn.info.error = "libdnnl.so.2 lacks dnnl_sgemm/dnnl_get_effective_cpu_isa";
    dn.dnnl = nullptr;
    return dn;
  }
  dn.info.available = true;
  dn.info.kernel = dnnl_isa_name(isa());
  return dn;
}

BlasLib load_blis() {
  BlasLib bl;
  // BLIS reads BLIS_ARCH_TYPE when it first queries the architecture (forced below, in the scope).
  ScopedEnvDefault arch("BLIS_ARCH_TYPE", has_avx512() ? "skx" : "");
  void* h = open_lib("libblis.so.4", "libblis4-pthread", bl.info);
  if (!h) return bl;
  bl.cblas = reinterpret_cast<SgemmFn>(::dlsym(h, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<BliSetThreadsFn>(::dlsym(h, "bli_thread_set_num_threads"));
  auto arch_id = reinterpret_cast<IntFn>(::dlsym(h, "bli_arch_query_id"));
  auto arch_name = reinterpret_cast<ArchStringFn>(::dlsym(h, "bli_arch_string"));
  if (!bl.cblas || !set_threads || !arch_id || !arch_name) {
    bl.info.error = "libblis.so.4 lacks cblas_sgemm/bli_thread_set_num_threads/bli_arch_query_id/bli_arch_string";
    bl.cblas = nullptr;
    return bl;
  }
  set_threads(1);
  bl.info.available = true;
  bl.info.kernel = arch_name(arch_id());
  bl.info.kernel_set = arch.what_set();
  return bl;
}

const BlasLib& blas_lib(CpuGemm g) {
  static const BlasLib eigen{{true, "", "", ""}, nullptr, nullptr};
  static const BlasLib ob = load_openblas();  // each loaded on first use, thread-safe
  switch (g) {
    case CpuGemm::kOpenBLAS:
      return ob;
    case CpuGemm::kOneDNN: {
      static const BlasLib dn = load_onednn();
      return dn;
    }
    case CpuGemm::kBLIS: {
      static const BlasLib bl = load_blis();
      return bl;
    }
    case CpuGemm::kEigen:
      break;
  }
  return eigen;
}

// oneDNN's gemm_bf16bf16f32 with its error, after a probe: a 16×16×16 product of values exact in
// bf16 must equal the fp32 one (oneDNN 2.x answers "unimplemented" without AVX-512).
BlasLib load_bf16() {
  BlasLib b = blas_lib(CpuGemm::kOneDNN);
  if (!b.info.available) return b;
  if (!b.dnnl_bf16) {
    b.info = {false, "", "", "libdnnl.so.2 lacks dnnl_gemm_bf16bf16f32"};
    return b;
  }
  constexpr int n = 16;
  uint16_t a[n * n], w[n * n];
  float c[n * n], want = 0;
  for (int i = 0; i < n * n; ++i) {
    const float x = static_cast<float>(i % 7 - 3) * 0.5f;  // exact in bf16
    to_bf16(&x, &a[i], 1);
    w[i] = a[i];
  }
  for (int k = 0; k < n; ++k) want += from_bf16(a[k]) * from_bf16(w[k * n]);
  one_openmp_thread_here();
  const int st = b.dnnl_bf16('N', 'N', n, n, n, 1.0f, a, n, w, n, 0.0f, c, n);
  if (st != 0 || c[0] != want) {
    b.info.available = false;
    b.info.error = "oneDNN's bf16 GEMM does not run on this CPU (" + b.info.kernel + ", status " + std::to_string(st) +
                   "): bf16 GEMM math needs AVX-512; use execution.gemm_math fp32";
    return b;
  }
  if (b.info.kernel.find("bf16") == std::string::npos && b.info.kernel.find("amx") == std::string::npos)
    b.info.kernel += ", bf16 emulated: no AVX512_BF16";
  return b;
}

const BlasLib& bf16_lib() {
  static const BlasLib b = load_bf16();
  return b;
}

}  // namespace

const std::vector<CpuGemm>& all_cpu_gemms() {
  static const std::vector<CpuGemm> all = {CpuGemm::kEigen, CpuGemm::kOpenBLAS, CpuGemm::kOneDNN, CpuGemm::kBLIS};
  return all;
}

const char* cpu_gemm_name(CpuGemm g) {
  switch (g) {
    case CpuGemm::kOpenBLAS:
      return "openblas";
    case CpuGemm::kOneDNN:
      return "onednn";
    case CpuGemm::kBLIS:
      return "blis";
    case CpuGemm::kEigen:
      break;
  }
  return "eigen";
}

StatusOr<CpuGemm> parse_cpu_gemm(const std::string& s, const std::string& field) {
  for (CpuGemm g : all_cpu_gemms())
    if (s == cpu_gemm_name(g)) return g;
  return Status::invalid_argument(field + ": unknown CPU GEMM '" + s +
                                  "' (expected auto, eigen, openblas, onednn or blis)");
}

const GemmLibInfo& cpu_gemm_info(CpuGemm g) {
  return blas_lib(g).info;
}

const GemmLibInfo& openblas_info() {
  return cpu_gemm_info(CpuGemm::kOpenBLAS);
}

void blas_sgemm(CpuGemm g, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc) {
  const BlasLib& lib = blas_lib(g);
  if (lib.dnnl) {
    one_openmp_thread_here();
    (void)lib.dnnl(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  lib.cblas(101, trans_a ? 112 : 111, trans_b ? 112 : 111, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

StatusOr<GemmMath> parse_gemm_math(const std::string& s, const std::string& field) {
  if (s == "fp32") return GemmMath::kFp32;
  if (s == "tf32") return GemmMath::kTf32;
  if (s == "bf16") return GemmMath::kBf16;
  return Status::invalid_argument(field + ": GEMM math '" + s + "' is not one of fp32, tf32, bf16");
}

const char* to_string(GemmMath m) {
  switch (m) {
    case GemmMath::kFp32:
      return "fp32";
    case GemmMath::kTf32:
      return "tf32";
    case GemmMath::kBf16:
      return "bf16";
  }
  return "?";
}

const GemmLibInfo& bf16_gemm_info() {
  return bf16_lib().info;
}

void bf16_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A, int lda,
                const uint16_t* B, int ldb, float beta, float* C, int ldc) {
  one_openmp_thread_here();
  (void)bf16_lib().dnnl_bf16(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {
uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays quiet NaN
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;  // denormals → ±0, as the AVX512_BF16 instruction does
  u += 0x7fffu + ((u >> 16) & 1u);  // to nearest, ties to even (Inf stays Inf; the largest finite rounds to Inf)
  return static_cast<uint16_t>(u >> 16);
}
}  // namespace

void to_bf16(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
#ifdef __AVX512BF16__
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(v));
  }
#endif
  for (; i < n; ++i) dst[i] = bf16_bits(src[i]);
}

float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::string cpu_gemm_label(CpuGemm g) {
  if (g == CpuGemm::kEigen) return "eigen";
  return std::string(cpu_gemm_name(g)) + " (" + cpu_gemm_info(g).kernel + ")";
}

}  // namespace eellm::exec
