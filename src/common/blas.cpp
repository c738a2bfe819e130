#include "evoopt/common/blas.hpp"

#include <dlfcn.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "evoopt/common/error.hpp"

namespace evoopt {

std::string blas_identity() {
  using ConfigFn = const char* (*)();
  const auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const char* c = config == nullptr ? nullptr : config();
  return c == nullptr ? std::string("not OpenBLAS (reference or other)") : std::string(c);
}

void set_blas_threads(int threads) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  static const auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  static const auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set != nullptr && threads > 0 && (get == nullptr || get() != threads)) set(threads);
}

std::string better_openblas_coretype() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  const std::string id = blas_identity();
  if (id.rfind("OpenBLAS", 0) != 0) return "";
  auto running = [&](std::initializer_list<const char*> cores) {
    for (const char* c : cores)
      if (id.find(std::string(" ") + c + " ") != std::string::npos) return true;
    return false;
  };
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && !running({"SkylakeX", "Cooperlake", "SapphireRapids"})) return "SkylakeX";
  if (avx2 && !avx512 && !running({"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})) return "Haswell";
#endif
  return "";
}

bool portable_mode() {
  const char* v = std::getenv("EVOOPT_PORTABLE");
  return v != nullptr && std::string(v) == "1";
}

namespace {
bool pins_hold() {
  for (const auto& pin : kPortablePins) {
    const char* v = std::getenv(pin[0]);
    if (v == nullptr || std::string(v) != pin[1]) return false;
  }
  return true;
}
}  // namespace

std::string portable_kernels() {
  if (!portable_mode() || !pins_hold()) return "";
  std::string out;
  for (const auto& pin : kPortablePins) out += (out.empty() ? "" : " ") + std::string(pin[0]) + "=" + pin[1];
  return out;
}

void pin_portable_kernels(char** argv) {
  if (!portable_mode() || pins_hold()) return;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    throw Error("portable mode pins the kernels to AVX2, which this CPU lacks (it needs AVX2 and FMA)");
#else
  throw Error("portable mode pins x86-64 kernels (AVX2); this is not an x86-64 build");
#endif
  for (const auto& pin : kPortablePins) {
    const char* was = std::getenv(pin[0]);
    if (was != nullptr && std::string(was) != pin[1]) std::fprintf(stderr, "evoopt: portable mode: %s=%s replaced by %s\n", pin[0], was, pin[1]);
    if (setenv(pin[0], pin[1], 1) != 0) throw Error(std::string("portable mode: could not set ") + pin[0] + ": " + std::strerror(errno));
  }
  execv("/proc/self/exe", argv);
  throw Error(std::string("portable mode: could not restart evoopt with the kernels pinned: ") + std::strerror(errno));
}

}  // namespace evoopt
