// Settings that libgomp (OpenMP) and OpenBLAS read from the environment only once, when they are
// loaded (before main()), so a program can change them only by re-executing itself.
//
// Why (measured on this project's 2-core machines, BENCHMARKS.md "Executor vs ONNX Runtime"):
// - OpenBLAS 0.3.21 (Debian 12) does not know recent Xeons (family 6 model 207 under KVM) and
//   falls back to its "Prescott" SSE3 kernels: every float Gemm/MatMul runs 2-3x slower than with
//   its AVX-512 (SkylakeX) kernels (fmnist-mlp batch 32, 1 thread: 59k vs 156k img/s).
// - libgomp's default wait policy spins up to 300,000 iterations at every barrier. On a machine
//   shared with other jobs the thread being waited for is often descheduled, and the spinning
//   thread burns its own slice: 2-thread convnet throughput fell 4-17x (mobilenet_v3_small batch
//   32 at load average ~7: 11-64 img/s spinning vs 175-255 img/s with OMP_WAIT_POLICY=PASSIVE).
//   On an idle machine the opposite holds: passive waiting made the fixtures 2-3x slower at 2
//   threads (a futex sleep and wake per parallel region), so the policy follows the machine's
//   state at start (BENCHMARKS.md "Executor vs ONNX Runtime on the fixtures, quiet machine").
// Variables the user has set are never changed. MIXQ_NO_RUNTIME_ENV=1 turns this off.
#pragma once

namespace mixq {

// The variables reexec_with_runtime_env() set for this process, or would set (NAME=VALUE,
// space-separated; "" when none).
const char* runtime_env_changes();

// Sets OPENBLAS_CORETYPE when OpenBLAS misdetected this CPU as an SSE-only core, and
// OMP_WAIT_POLICY (ACTIVE when fewer than half the cores have another runnable task, else PASSIVE)
// unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, then re-executes
// /proc/self/exe with the same argv (and MIXQ_RUNTIME_ENV_DONE=<the list> so it happens once). Returns
// when nothing needs changing or the re-exec failed. Call first thing in main(), before threads.
void reexec_with_runtime_env(char** argv);

}  // namespace mixq
