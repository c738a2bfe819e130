#pragma once
// The BLAS library libtorch calls (Debian: whatever libblas.so.3 resolves to), and the choice
// of CPU kernels in the numeric libraries under libtorch.
#include <string>

namespace evoopt {

// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64"; it
// names the CPU kernel), or "not OpenBLAS (reference or other)".
std::string blas_identity();

// Threads OpenBLAS may use for one call (libtorch's at::set_num_threads does not reach it);
// a no-op for other BLAS libraries.
void set_blas_threads(int threads);

// The OpenBLAS kernel this CPU should run when OpenBLAS picked a weaker one: OpenBLAS
// 0.3.21 does not recognise newer CPUs (e.g. AVX-512 Xeons reporting a generic model) and
// falls back to an SSE3 kernel ("Prescott"), 4.5x slower at sgemm on the project's machine.
// "SkylakeX" (AVX-512 F/BW/DQ/VL), "Haswell" (AVX2 + FMA), or empty when the kernel in
// use is fine, another BLAS is loaded, or OPENBLAS_CORETYPE is already set. OpenBLAS reads
// OPENBLAS_CORETYPE when it loads, so the CLI sets it and re-executes itself.
std::string better_openblas_coretype();

// Portable mode: every numeric kernel choice pinned to an AVX2 level, so that a seed gives
// the same float rounding, and so the same history, on any x86-64 CPU with AVX2 and FMA.
// Unpinned, each library picks the kernel of the CPU it runs on: OpenBLAS's sgemm
// (SkylakeX, Cooperlake, Haswell, ...), oneDNN's convolutions (AVX-512, AVX2, ...) and, when
// ATEN_CPU_CAPABILITY is set, ATen's vectorised loops; different kernels round differently.
// The pins are environment variables each library reads when it loads:
// (oneDNN reads ONEDNN_MAX_CPU_ISA before DNNL_MAX_CPU_ISA: both are pinned.)
inline constexpr const char* kPortablePins[][2] = {
    {"OPENBLAS_CORETYPE", "Haswell"}, {"DNNL_MAX_CPU_ISA", "AVX2"}, {"ONEDNN_MAX_CPU_ISA", "AVX2"}, {"ATEN_CPU_CAPABILITY", "avx2"}};

// Whether portable mode is asked for: EVOOPT_PORTABLE=1 in the environment.
bool portable_mode();
// "OPENBLAS_CORETYPE=Haswell DNNL_MAX_CPU_ISA=AVX2 ..." (every pin) when portable
// mode is on and each pin holds (what a run's fingerprint records); empty otherwise.
std::string portable_kernels();
// In portable mode with a pin not yet holding: sets every pin and starts this program again
// with `argv` (/proc/self/exe), so the libraries load pinned; returns when nothing had to
// change. Throws evoopt::Error when the CPU lacks AVX2 or FMA, or the restart fails.
void pin_portable_kernels(char** argv);

}  // namespace evoopt
