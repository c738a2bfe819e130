#pragma once
// The BLAS library libtorch calls (Debian: whatever libblas.so.3 resolves to).
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

}  // namespace evoopt
