// The process's peak resident memory so far (getrusage's ru_maxrss), for every `--json` result:
// what a job needed at most, the number a user sizes a machine by.
#pragma once

#include <cstdint>

namespace mixq {

int64_t peak_rss_bytes();  // 0 where the system does not say

}  // namespace mixq
