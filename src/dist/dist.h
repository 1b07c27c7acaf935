// The process group of an `mpirun -np N mixq ...` launch (OpenMPI from Debian). Rank 0 owns the
// job: it reads and writes every file, prints every result and holds the plan; the other ranks
// ("workers") take independent units of work from a shared counter, send their results to rank 0
// and leave when the parallel part of the job is over (release_workers). Outside mpirun, in the
// Python module, or in a build without MPI, the group is this one process (rank 0 of 1) and every
// call below is free: the serial code path is the same code with N = 1.
//
// Why a shared counter and not a fixed split: units differ in cost by 100x (a 7x7 stem vs a 1x1
// conv, weight vs activation candidates); each rank takes the next unit when it is free
// (one-sided fetch-and-add on rank 0's window: no thread on rank 0 serves it), so a fast rank
// steals what a static split would have left to a slow one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace mixq::dist {

// Joins the job when this process was started by mpirun (OMPI_COMM_WORLD_SIZE / PMIX_RANK set)
// and the build has MPI; otherwise a group of one. Non-root ranks are made silent (log level
// quiet, warnings off, no progress bars) and may not write files (core/atomic_file.h refuses).
void init(int* argc, char*** argv);
// Waits for every rank without spinning a core (a polled non-blocking barrier), then
// MPI_Finalize. Call once, on the way out of main, from every rank that finished normally.
void finalize();

bool built_with_mpi();  // false: this mixq was built without libopenmpi-dev
int rank();
int size();
inline bool is_root() { return rank() == 0; }
// Threads when --threads is not given: the machine's cores over the ranks on this host while the
// ranks work together, all of them once rank 0 is alone (release_workers).
int default_threads();

// Thrown on a worker by release_workers(): main catches it, finalizes and exits 0 with no output.
// Not a std::exception, so no generic handler turns it into an error.
struct WorkerDone {};

// The end of the job's parallel part: workers throw WorkerDone, rank 0 gets the whole machine's
// threads back (unless the user gave --threads: set_user_threads).
void release_workers();
void set_user_threads(int threads);  // --threads as given (0: default), so release_workers keeps it

// A counter shared by all ranks, for dynamic scheduling: next() returns 0, 1, 2, ... across the
// group, each value to exactly one rank. Collective: every rank constructs and destroys it
// (destruction waits, without spinning, for every rank to be done with it).
class WorkCounter {
 public:
  WorkCounter();
  ~WorkCounter();
  WorkCounter(const WorkCounter&) = delete;
  WorkCounter& operator=(const WorkCounter&) = delete;
  int64_t next();

 private:
  struct Impl;
  Impl* impl_;
};

// Results to rank 0: `tag` separates kinds of messages of one phase.
void send_to_root(int tag, const std::string& bytes);
// On rank 0: hands every message with `tag` that has arrived from the other ranks to on_message,
// and keeps doing so, sleeping between polls and stopping at SIGINT/SIGTERM, until done() holds
// after a poll. With done() true at the call it only takes what has arrived. A group of one has
// no messages: done() must already hold there.
void receive_until(int tag, const std::function<bool()>& done,
                   const std::function<void(const std::string& bytes)>& on_message);
// Rank 0's `bytes` on every rank (collective).
void broadcast(std::string& bytes);
// Every rank reaches this point (collective; polls without spinning a core).
void barrier();

}  // namespace mixq::dist
