// The group of one: a build without MPI (see dist.h). Every call is what N = 1 means.
#include <algorithm>
#include <thread>

#include "dist/dist.h"
#include "mixq/error.h"

namespace mixq::dist {

void init(int*, char***) {}
void finalize() {}
bool built_with_mpi() { return false; }
int rank() { return 0; }
int size() { return 1; }
int default_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }
void release_workers() {}
void set_user_threads(int) {}

struct WorkCounter::Impl {
  int64_t n = 0;
};
WorkCounter::WorkCounter() : impl_(new Impl) {}
WorkCounter::~WorkCounter() { delete impl_; }
int64_t WorkCounter::next() { return impl_->n++; }

void send_to_root(int, const std::string&) {}
void receive_until(int, const std::function<bool()>& done, const std::function<void(const std::string&)>&) {
  MIXQ_CHECK(done(), ErrorKind::kInternal, "waiting for messages from other ranks in a group of one");
}
void broadcast(std::string&) {}
void barrier() {}

}  // namespace mixq::dist
