// Interrupted jobs (issue 21, item 3; docs/reliability.md): a BRECQ run and a pareto run are
// killed at random points (SIGINT, SIGTERM and SIGKILL, delays from a seeded generator), then the
// same command is run again until it finishes. After a handled signal no output file may exist
// (only the resume files: the reconstruction checkpoint, the sensitivity table); after SIGKILL
// any output that exists must be complete; the finished run's outputs must equal an
// uninterrupted run's: the same plan, the same accuracy, the same model bytes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "test_util.h"

namespace mixq::test {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int exit_code = -1;  // -1: ended by a signal
  int signal = 0;      // the signal that ended it
  double seconds = 0;
};

// Runs the CLI with `args` (stdout and stderr to `log`), sends `sig` after `delay` seconds (or, with
// `ready`, as soon as ready() is true) unless it has ended by then (sig 0: never), and waits for it.
Outcome run_and_kill(const std::vector<std::string>& args, double delay, int sig, const std::string& log,
                     const std::function<bool()>& ready = nullptr) {
  const char* cli = std::getenv("MIXQ_CLI");
  const std::string exe = cli ? cli : MIXQ_BINARY_DIR "/mixq";
  std::vector<std::string> all = {exe};
  all.insert(all.end(), args.begin(), args.end());
  const auto t0 = std::chrono::steady_clock::now();
  std::fflush(stdout);  // else the child's freopen writes our buffered lines a second time
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    dup2(fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  Outcome o;
  int status = 0;
  bool sent = false;
  for (;;) {
    const pid_t r = waitpid(pid, &status, sig && !sent ? WNOHANG : 0);
    if (r == pid) break;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!sent && (ready ? ready() : s >= delay)) {
      kill(pid, sig);
      sent = true;
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  return o;
}

// The report without what legitimately differs between runs (times; where the table came from).
nlohmann::json stable(nlohmann::json j) {
  for (const char* k : {"seconds", "seconds_search", "seconds_total", "sensitivity_seconds", "allocation", "table",
                        "method_report"})
    j.erase(k);
  return j;
}

// Outputs equal to the uninterrupted run's: ONNX bytes; JSON less what differs between runs.
void expect_same_output(const std::string& got, const std::string& want) {
  SCOPED_TRACE(got);
  if (got.size() > 5 && got.compare(got.size() - 5, 5, ".json") == 0)
    EXPECT_EQ(stable(nlohmann::json::parse(read_file(got))), stable(nlohmann::json::parse(read_file(want))));
  else
    EXPECT_EQ(read_file(got), read_file(want));
}

// The per-unit losses of a reconstruction report (what the optimisation reached, unit by unit).
std::vector<double> unit_losses(const nlohmann::json& rep) {
  std::vector<double> v;
  for (const char* phase : {"units", "activation_units"})
    for (const auto& u : rep["method_report"][phase]) v.push_back(u["loss_learned"].get<double>());
  return v;
}

// Kills `args` at random points until a run finishes; returns how many runs were killed by a signal
// or stopped by one. After a SIGINT / SIGTERM that mixq handled (exit 130 / 143) none of `outputs`
// may exist. SIGKILL cannot be handled: it may land after some outputs were written, and then each
// one that exists must be complete and correct (`check_output(path)`, against the uninterrupted
// run's); they are removed before the next run so every check starts clean.
// `check_resume_files` runs after every kill.
int kill_until_done(const std::vector<std::string>& args, const std::vector<std::string>& outputs,
                    double uninterrupted_seconds, uint32_t seed, const std::string& log,
                    const std::function<void()>& check_resume_files,
                    const std::function<void(const std::string&)>& check_output) {
  std::mt19937 rng(seed);
  const int sigs[] = {SIGINT, SIGKILL, SIGTERM, SIGINT, SIGKILL};
  int stopped = 0;
  for (int k = 0; k < 5; ++k) {
    // Anywhere in the run past the first ~30% (about the time the libraries take to load, twice:
    // mixq re-executes itself; a signal then only meets the default action). A resumed run has
    // less left to do and may finish first: see below.
    const double delay = std::uniform_real_distribution<double>(0.3, 0.95)(rng) * uninterrupted_seconds;
    const int sig = sigs[k];
    Outcome o = run_and_kill(args, delay, sig, log);
    std::printf("kill %d: signal %d after %.2f s -> %s %d\n", k, sig, delay, o.exit_code >= 0 ? "exit" : "signal",
                o.exit_code >= 0 ? o.exit_code : o.signal);
    SCOPED_TRACE("kill " + std::to_string(k) + ": signal " + std::to_string(sig) + " after " + std::to_string(delay) +
                 " s; log: " + read_file(log));
    if (o.exit_code == 0) {
      // Finished before the signal (a resumed run, when one was stopped before): its outputs must
      // be the uninterrupted run's. Removed, so the next run starts over (its checkpoint is gone).
      for (const auto& p : outputs) {
        EXPECT_TRUE(fs::exists(p)) << p;
        if (fs::exists(p)) check_output(p);
        fs::remove(p);
      }
      continue;
    }
    ++stopped;
    if (sig == SIGKILL) {
      EXPECT_EQ(o.signal, SIGKILL);
      for (const auto& p : outputs)
        if (fs::exists(p)) {
          check_output(p);
          fs::remove(p);
        }
    } else if (o.exit_code == -1) {
      // Only before mixq installs its handler (while it re-executes itself) does the default action run.
      EXPECT_EQ(o.signal, sig);
    } else {
      EXPECT_EQ(o.exit_code, 128 + sig);
      const std::string err = read_file(log);
      EXPECT_NE(err.find("interrupted ("), std::string::npos) << err;
      EXPECT_NE(err.find("no output written"), std::string::npos) << err;
    }
    for (const auto& p : outputs) EXPECT_FALSE(fs::exists(p)) << p << " exists after a kill";
    check_resume_files();
  }
  Outcome o = run_and_kill(args, 0, 0, log);
  EXPECT_EQ(o.exit_code, 0) << read_file(log);
  return stopped;
}

TEST(Resume, BrecqKilledAtRandomPointsEqualsUninterruptedRun) {
  TempDir ref, cut;
  auto args = [](const TempDir& d) {
    return std::vector<std::string>{"quantize", fixture("fmnist-resnet"), "--method", "brecq", "--iters", "60",
                                    "--wbits", "2", "--abits", "4", "--calib", "fmnist:train:128", "--eval",
                                    "fmnist:test:200", "--recon-precision", "fp32", "--seed", "7", "--threads", "2",
                                    "-q", "-o", d.file("q.onnx"), "--plan-out", d.file("plan.json"), "--report",
                                    d.file("rep.json")};
  };
  Outcome base = run_and_kill(args(ref), 0, 0, ref.file("log"));
  ASSERT_EQ(base.exit_code, 0) << read_file(ref.file("log"));
  EXPECT_FALSE(fs::exists(ref.file("q.onnx.ckpt"))) << "a finished job removes its checkpoint";

  const std::vector<std::string> outputs = {cut.file("q.onnx"), cut.file("plan.json"), cut.file("rep.json")};
  int saved = 0;
  const int stopped = kill_until_done(args(cut), outputs, base.seconds, 2021, cut.file("log"), [&] {
    // The checkpoint is rewritten atomically: it is absent or complete (the resumed run reads it).
    if (fs::exists(cut.file("q.onnx.ckpt"))) {
      EXPECT_GT(fs::file_size(cut.file("q.onnx.ckpt")), 0u);
      ++saved;
    }
  }, [&](const std::string& p) { expect_same_output(p, ref.file(fs::path(p).filename().string())); });
  EXPECT_GE(stopped, 2) << "the kills should land inside the run";
  EXPECT_GE(saved, 1) << "no kill landed after a unit was saved: nothing was resumed";

  EXPECT_EQ(read_file(cut.file("q.onnx")), read_file(ref.file("q.onnx"))) << "resumed model bytes differ";
  EXPECT_EQ(nlohmann::json::parse(read_file(cut.file("plan.json"))),
            nlohmann::json::parse(read_file(ref.file("plan.json"))));
  const auto rc = nlohmann::json::parse(read_file(cut.file("rep.json")));
  const auto rr = nlohmann::json::parse(read_file(ref.file("rep.json")));
  EXPECT_EQ(rc["top1_quant"], rr["top1_quant"]);
  EXPECT_EQ(unit_losses(rc), unit_losses(rr));
  EXPECT_EQ(stable(rc), stable(rr));
  EXPECT_FALSE(fs::exists(cut.file("q.onnx.ckpt")));
}

TEST(Resume, ParetoKilledAtRandomPointsEqualsUninterruptedRun) {
  TempDir ref, cut;
  auto args = [](const TempDir& d) {
    return std::vector<std::string>{"pareto", fixture("fmnist-resnet"), "--calib", "fmnist:train:128", "--threads",
                                    "2", "-q", "--table-out", d.file("table.json"), "-o", d.file("front.json")};
  };
  Outcome base = run_and_kill(args(ref), 0, 0, ref.file("log"));
  ASSERT_EQ(base.exit_code, 0) << read_file(ref.file("log"));
  int saved = 0;
  const int stopped = kill_until_done(args(cut), {cut.file("front.json")}, base.seconds, 77, cut.file("log"), [&] {
    if (fs::exists(cut.file("table.json"))) {
      EXPECT_NO_THROW(nlohmann::json::parse(read_file(cut.file("table.json"))));
      ++saved;
    }
  }, [&](const std::string& p) { expect_same_output(p, ref.file(fs::path(p).filename().string())); });
  EXPECT_GE(stopped, 2) << "the kills should land inside the run";
  EXPECT_GE(saved, 1) << "no kill landed after a unit was saved: nothing was resumed";
  const auto fc = nlohmann::json::parse(read_file(cut.file("front.json")));
  const auto fr = nlohmann::json::parse(read_file(ref.file("front.json")));
  ASSERT_FALSE(fr["points"].empty());
  EXPECT_EQ(fc["points"], fr["points"]);  // every plan's bits and predicted accuracy, size, BOPs
  EXPECT_EQ(fc["ref_top1_calib"], fr["ref_top1_calib"]);
  EXPECT_EQ(fc["float_top1_calib"], fr["float_top1_calib"]);
}

// A checkpoint written for other settings is refused with a message, never mixed in.
TEST(Resume, StaleCheckpointIsRefused) {
  TempDir d;
  auto args = [&](const std::string& seed) {
    return std::vector<std::string>{"quantize", fixture("fmnist-resnet"), "--method", "adaround", "--iters", "20",
                                    "--calib", "fmnist:train:64", "--seed", seed, "-q", "--checkpoint",
                                    d.file("c.ckpt"), "--plan-out", d.file("plan.json")};
  };
  // Stop after the first unit's checkpoint: SIGINT once the file exists.
  Outcome o = run_and_kill(args("1"), 0, SIGINT, d.file("log"), [&] { return fs::exists(d.file("c.ckpt")); });
  if (o.exit_code == 0) GTEST_SKIP() << "the run finished before the signal";
  ASSERT_EQ(o.exit_code, 130) << read_file(d.file("log"));
  ASSERT_TRUE(fs::exists(d.file("c.ckpt")));
  CliResult r = run_cli(args("2"));  // another seed: another job
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("was written by another job"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--no-resume"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d.file("plan.json")));
  // --no-resume starts over and finishes (removing the checkpoint).
  auto again = args("2");
  again.push_back("--no-resume");
  r = run_cli(again);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(d.file("plan.json")));
  EXPECT_FALSE(fs::exists(d.file("c.ckpt")));
  // A corrupt checkpoint is an error naming the file, not a crash.
  write_file(d.file("c.ckpt"), "\xa3garbage");
  r = run_cli(args("2"));
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("c.ckpt"), std::string::npos) << r.err;
}

// AdaQuant (its own loop and checkpoint contents: weights, biases, ranges): stopped after its first
// saved unit, resumed, the same model bytes. (AdaRound shares BRECQ's loop: PackInterrupted... below.)
TEST(Resume, AdaquantResumesBitIdentically) {
  for (const char* method : {"adaquant"}) {
    SCOPED_TRACE(method);
    TempDir ref, cut;
    auto args = [&](const TempDir& d) {
      return std::vector<std::string>{"quantize", fixture("fmnist-resnet"), "--method", method, "--iters", "40",
                                      "--wbits", "3", "--calib", "fmnist:train:64", "--recon-precision", "fp32",
                                      "--seed", "5", "--threads", "2", "-q", "-o", d.file("q.onnx")};
    };
    ASSERT_EQ(run_and_kill(args(ref), 0, 0, ref.file("log")).exit_code, 0) << read_file(ref.file("log"));
    Outcome o = run_and_kill(args(cut), 0, SIGINT, cut.file("log"), [&] { return fs::exists(cut.file("q.onnx.ckpt")); });
    std::printf("%s: SIGINT after the first saved unit at %.2f s -> exit %d\n", method, o.seconds, o.exit_code);
    if (o.exit_code == 0) continue;  // finished before the signal: nothing to resume
    ASSERT_EQ(o.exit_code, 130) << read_file(cut.file("log"));
    EXPECT_FALSE(fs::exists(cut.file("q.onnx")));
    ASSERT_TRUE(fs::exists(cut.file("q.onnx.ckpt")));
    ASSERT_EQ(run_and_kill(args(cut), 0, 0, cut.file("log")).exit_code, 0) << read_file(cut.file("log"));
    EXPECT_EQ(read_file(cut.file("q.onnx")), read_file(ref.file("q.onnx"))) << "resumed model bytes differ";
    EXPECT_FALSE(fs::exists(cut.file("q.onnx.ckpt")));
  }
}

// `mixq pack` stopped during reconstruction: no .mxq, its checkpoint beside it; the rerun writes the
// same file an uninterrupted pack writes and removes the checkpoint.
TEST(Resume, PackInterruptedWritesNothingAndResumes) {
  TempDir ref, cut;
  auto args = [&](const TempDir& d) {
    return std::vector<std::string>{"pack", fixture("fmnist-resnet"), "--method", "adaround", "--iters", "40",
                                    "--wbits", "4", "--calib", "fmnist:train:64", "--recon-precision", "fp32",
                                    "--no-act-learning", "--seed", "3", "--threads", "2", "-q", "-o", d.file("m.mxq")};
  };
  ASSERT_EQ(run_and_kill(args(ref), 0, 0, ref.file("log")).exit_code, 0) << read_file(ref.file("log"));
  Outcome o = run_and_kill(args(cut), 0, SIGTERM, cut.file("log"), [&] { return fs::exists(cut.file("m.mxq.ckpt")); });
  if (o.exit_code == 0) GTEST_SKIP() << "the run finished before the signal";
  ASSERT_EQ(o.exit_code, 143) << read_file(cut.file("log"));
  EXPECT_NE(read_file(cut.file("log")).find("interrupted (SIGTERM)"), std::string::npos) << read_file(cut.file("log"));
  EXPECT_FALSE(fs::exists(cut.file("m.mxq")));
  ASSERT_EQ(run_and_kill(args(cut), 0, 0, cut.file("log")).exit_code, 0) << read_file(cut.file("log"));
  EXPECT_EQ(read_file(cut.file("m.mxq")), read_file(ref.file("m.mxq")));
  EXPECT_FALSE(fs::exists(cut.file("m.mxq.ckpt")));
}

// A temporary file a killed writer left (".NAME.tmp.PID.N", PID gone) is removed by the next write;
// a live writer's is not.
TEST(Resume, TemporariesOfKilledWritersAreRemoved) {
  TempDir d;
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);  // reaped: its pid is free
  const std::string stale = d.file(".out.json.tmp." + std::to_string(dead) + ".0");
  const std::string live = d.file(".out.json.tmp." + std::to_string(getppid()) + ".3");
  write_file(stale, "{\"half\": ");
  write_file(live, "{");
  write_file_atomic(d.file("out.json"), "{}\n");
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(read_file(d.file("out.json")), "{}\n");
}

// --max-memory: reconstruction caches spill beyond it; the sensitivity probe refuses to start.
TEST(Resume, MaxMemorySpillsReconstructionCachesAndRefusesTheProbe) {
  TempDir d;
  CliResult r = run_cli({"quantize", fixture("fmnist-resnet"), "--method", "adaround", "--iters", "5", "--calib",
                         "fmnist:train:64", "--max-memory", "1", "--no-act-learning", "-q", "--report",
                         d.file("r.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool spilled = false;
  const auto rep = nlohmann::json::parse(read_file(d.file("r.json")));
  for (const auto& u : rep["method_report"]["units"])
    spilled = spilled || u.value("cache_spilled", false);
  EXPECT_TRUE(spilled);
  r = run_cli({"pareto", fixture("fmnist-resnet"), "--calib", "fmnist:train:1024", "--sens-samples", "1024",
               "--max-memory", "1", "-q", "--table-out", d.file("t.json")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--max-memory"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d.file("t.json")));
  r = run_cli({"quantize", fixture("fmnist-resnet"), "--max-memory", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--max-memory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mixq::test
