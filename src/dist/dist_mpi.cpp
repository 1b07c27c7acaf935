// The MPI group (see dist.h), on OpenMPI's C API. Every wait polls a non-blocking call and sleeps
// between polls: OpenMPI's blocking calls spin a core, and on a machine with as many ranks as
// cores a rank that waits (for its peers at the end, for rank 0 to reach a broadcast) would take
// that core from the one that still works.
#include <mpi.h>
#include <unistd.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <thread>

#include "core/atomic_file.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "dist/dist.h"
#include "mixq/error.h"

namespace mixq::dist {

namespace {

bool g_on = false;        // MPI_Init called
bool g_released = false;  // release_workers() ran: rank 0 alone from here on
int g_rank = 0, g_size = 1, g_local = 1, g_user_threads = 0;

struct Pending {
  std::string bytes;
  MPI_Request req;
};
std::list<Pending> g_sends;  // Isends not yet known complete (their buffers live here)

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

// Calls ready() until it holds, sleeping between calls (50 us doubling to 2 ms) and checking for
// SIGINT/SIGTERM: a job stopped by mpirun because a peer died must not wait here for ever.
void poll_lazily(const std::function<bool()>& ready) {
  for (useconds_t nap = 50; !ready(); nap = std::min<useconds_t>(nap * 2, 2000)) {
    throw_if_interrupted();
    usleep(nap);
  }
}

void wait_lazily(MPI_Request& req) {
  poll_lazily([&req]() {
    int done = 0;
    MPI_Test(&req, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
}

void reap_sends() {
  for (auto it = g_sends.begin(); it != g_sends.end();) {
    int done = 0;
    MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
    it = done ? g_sends.erase(it) : std::next(it);
  }
}

}  // namespace

void init(int* argc, char*** argv) {
  if (g_on || !launched_by_mpirun()) return;
  int provided = 0;
  // FUNNELED: only the job's main thread calls MPI (OpenMP workers never do).
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  g_on = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &g_local);
  MPI_Comm_free(&node);
  if (g_rank != 0) {
    // Rank 0 says everything once; a worker's error still reaches stderr through the CLI.
    log::set_level(log::Level::kQuiet);
    log::set_warnings(false);
    forbid_file_writes("MPI rank " + std::to_string(g_rank) + " (only rank 0 writes files)");
  }
}

void finalize() {
  if (!g_on) return;
  for (auto& p : g_sends) wait_lazily(p.req);
  g_sends.clear();
  barrier();
  MPI_Finalize();
  g_on = false;
}

bool built_with_mpi() { return true; }
int rank() { return g_rank; }
int size() { return g_size; }

int default_threads() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return g_released ? cores : std::max(1, cores / std::max(1, g_local));
}

void set_user_threads(int threads) { g_user_threads = threads; }

void release_workers() {
  if (g_size == 1) return;
  if (g_rank != 0) throw WorkerDone{};
  g_released = true;
  if (g_user_threads == 0) at::set_num_threads(default_threads());
}

struct WorkCounter::Impl {
  MPI_Win win = MPI_WIN_NULL;
  int64_t* base = nullptr;
  int64_t local = 0;  // the group of one: no window
};

WorkCounter::WorkCounter() : impl_(new Impl) {
  if (!g_on) return;
  MPI_Win_allocate(g_rank == 0 ? sizeof(int64_t) : 0, sizeof(int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &impl_->base,
                   &impl_->win);
  if (g_rank == 0) {
    MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, impl_->win);
    *impl_->base = 0;
    MPI_Win_unlock(0, impl_->win);
  }
  barrier();  // nobody takes a unit before the counter is 0
}

WorkCounter::~WorkCounter() {
  if (impl_->win != MPI_WIN_NULL) {
    try {
      barrier();  // MPI_Win_free is collective and spins: arrive together
    } catch (...) {
      // Interrupted while waiting: the process is on its way out; MPI_Win_free would wait for
      // peers that may be gone, so the window is left to MPI_Finalize / process exit.
      delete impl_;
      return;
    }
    MPI_Win_free(&impl_->win);
  }
  delete impl_;
}

int64_t WorkCounter::next() {
  if (impl_->win == MPI_WIN_NULL) return impl_->local++;
  const int64_t one = 1;
  int64_t got = 0;
  MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, impl_->win);
  MPI_Fetch_and_op(&one, &got, MPI_INT64_T, 0, 0, MPI_SUM, impl_->win);
  MPI_Win_unlock(0, impl_->win);
  return got;
}

void send_to_root(int tag, const std::string& bytes) {
  if (!g_on) return;
  MIXQ_CHECK(bytes.size() < (1u << 31), ErrorKind::kInternal, "MPI message of ", bytes.size(), " bytes");
  reap_sends();
  g_sends.push_back({bytes, MPI_REQUEST_NULL});
  Pending& p = g_sends.back();
  MPI_Isend(p.bytes.data(), static_cast<int>(p.bytes.size()), MPI_BYTE, 0, tag, MPI_COMM_WORLD, &p.req);
}

void receive_until(int tag, const std::function<bool()>& done,
                   const std::function<void(const std::string&)>& on_message) {
  if (!g_on) {  // a group of one: nothing can arrive
    MIXQ_CHECK(done(), ErrorKind::kInternal, "waiting for messages from other ranks in a group of one");
    return;
  }
  std::string bytes;
  poll_lazily([&]() {
    for (int flag = 1; flag;) {
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st);
      if (!flag) break;
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      bytes.resize(static_cast<size_t>(n));
      MPI_Recv(bytes.data(), n, MPI_BYTE, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      on_message(bytes);
    }
    return done();
  });
}

void broadcast(std::string& bytes) {
  if (!g_on) return;
  int64_t n = static_cast<int64_t>(bytes.size());
  MPI_Request req;
  MPI_Ibcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD, &req);
  wait_lazily(req);
  MIXQ_CHECK(n < (int64_t(1) << 31), ErrorKind::kInternal, "MPI broadcast of ", n, " bytes");
  bytes.resize(static_cast<size_t>(n));
  MPI_Ibcast(bytes.data(), static_cast<int>(n), MPI_BYTE, 0, MPI_COMM_WORLD, &req);
  wait_lazily(req);
}

void barrier() {
  if (!g_on) return;
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  wait_lazily(req);
}

}  // namespace mixq::dist
