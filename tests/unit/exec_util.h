// Test helper: an Executor built with its inference fusion on or off.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "exec/executor.h"

namespace mixq::test {

// MIXQ_NO_FUSION is read by the Executor's constructor: set for the build, then restored.
inline std::unique_ptr<Executor> make_executor(Graph g, bool fuse) {
  const char* old = std::getenv("MIXQ_NO_FUSION");
  std::string saved = old ? old : "";
  if (fuse) unsetenv("MIXQ_NO_FUSION");
  else setenv("MIXQ_NO_FUSION", "1", 1);
  auto ex = std::make_unique<Executor>(std::move(g));
  if (old) setenv("MIXQ_NO_FUSION", saved.c_str(), 1);
  else unsetenv("MIXQ_NO_FUSION");
  return ex;
}

}  // namespace mixq::test
