// The sensitivity table over MPI ranks (issue 24, dist/dist.h): `mpirun -np N mixq pareto` gives the
// table and front of one process for N = 2 and N = 4 (oversubscribed), and a rank killed mid-table
// makes the job fail with a message and a table the next run resumes from, never a hang. The group
// of one (no mpirun) is the serial path: the counter hands out 0, 1, 2, ... and release is free.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dist/dist.h"
#include "search/sensitivity.h"
#include "test_util.h"

namespace mixq::test {
namespace {

TEST(Dist, OneProcessIsAGroupOfOne) {
  EXPECT_EQ(dist::size(), 1);
  EXPECT_TRUE(dist::is_root());
  dist::WorkCounter c;
  EXPECT_EQ(c.next(), 0);
  EXPECT_EQ(c.next(), 1);
  EXPECT_EQ(c.next(), 2);
  std::string s = "unchanged";
  dist::broadcast(s);
  EXPECT_EQ(s, "unchanged");
  dist::barrier();
  EXPECT_NO_THROW(dist::release_workers());
  EXPECT_GE(dist::default_threads(), 1);
}

std::string mixq_exe() {
  const char* cli = std::getenv("MIXQ_CLI");
  return cli ? cli : MIXQ_BINARY_DIR "/mixq";
}

// mpirun refuses root unless told twice; CI containers run as root. Oversubscription lets -np 4
// (or -np 2 on a one-core runner) start.
std::string mpirun(int np) {
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  return "mpirun --oversubscribe -np " + std::to_string(np) + " ";
}

bool have_mpirun() { return dist::built_with_mpi() && std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// `prefix` + the CLI + args, output to files in `dir`; returns the exit code (-1: signal).
int run_shell(const std::string& prefix, const std::vector<std::string>& args, const TempDir& dir,
              const std::string& tag, std::string* err = nullptr) {
  std::string cmd = prefix + "'" + mixq_exe() + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + dir.file(tag + ".out") + "' 2>'" + dir.file(tag + ".err") + "' </dev/null";
  const int status = std::system(cmd.c_str());
  if (err) *err = read_file(dir.file(tag + ".err"));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::string> pareto_args(const std::string& table, const std::string& front) {
  return {"pareto", fixture("fmnist-resnet"), "--calib", "fmnist:train:64", "--sens-samples", "64",
          "--table-out", table, "-o", front, "-q"};
}

// Entries equal to the last bit: the same probe runs on the same samples at the same threads,
// whichever rank measures a candidate and in whatever order.
void expect_same_table(const SensitivityTable& a, const SensitivityTable& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  ASSERT_EQ(a.acts.size(), b.acts.size());
  auto same = [](double x, double y) { return x == y; };
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].name, b.layers[i].name);
    ASSERT_EQ(a.layers[i].bits.size(), b.layers[i].bits.size()) << a.layers[i].name;
    for (const auto& [bits, e] : a.layers[i].bits) {
      const SensEntry& f = b.layers[i].bits.at(bits);
      EXPECT_TRUE(same(e.noise, f.noise) && same(e.kl, f.kl) && same(e.mse, f.mse) && same(e.dl, f.dl))
          << a.layers[i].name << " @" << bits << ": " << e.noise << " vs " << f.noise;
    }
  }
  for (size_t i = 0; i < a.acts.size(); ++i) {
    EXPECT_EQ(a.acts[i].tensor, b.acts[i].tensor);
    for (const auto& [bits, e] : a.acts[i].bits) EXPECT_TRUE(same(e.noise, b.acts[i].bits.at(bits).noise));
  }
}

// The front's plans (bits per layer of every point), which the table decides.
nlohmann::json front_plans(const std::string& path) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : nlohmann::json::parse(read_file(path))["points"]) {
    nlohmann::json q = p;
    for (const char* k : {"predicted_dl", "predicted_kl", "predicted_top1"}) q.erase(k);
    out.push_back(q);
  }
  return out;
}

TEST(Dist, MpiRanksGiveTheTableAndFrontOfOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "built without MPI, or mpirun not installed (libopenmpi-dev, openmpi-bin)";
  TempDir d;
  std::string err;
  // One process on one thread: the arithmetic of every rank below (2 cores / N ranks -> 1 thread).
  std::vector<std::string> one_args = pareto_args(d.file("t1.json"), d.file("f1.json"));
  one_args.insert(one_args.end(), {"--threads", "1"});
  ASSERT_EQ(run_shell("", one_args, d, "one", &err), 0) << err;
  const SensitivityTable one = load_table(d.file("t1.json"));
  for (int np : {2, 4}) {
    SCOPED_TRACE("np " + std::to_string(np));
    const std::string t = d.file("t" + std::to_string(np) + ".json"), f = d.file("f" + std::to_string(np) + ".json");
    std::vector<std::string> ranks_args = pareto_args(t, f);
    ranks_args.insert(ranks_args.end(), {"--threads", "1"});  // whatever the machine's cores
    ASSERT_EQ(run_shell(mpirun(np), ranks_args, d, "np", &err), 0) << err;
    expect_same_table(one, load_table(t));
    EXPECT_EQ(front_plans(f), front_plans(d.file("f1.json")));
    // Rank 0 alone writes: no temporaries of other ranks, nothing printed by them.
    for (const auto& e : std::filesystem::directory_iterator(d.path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
}


// `quantize --search ip` under mpirun: the ranks share the table, rank 0 alone quantizes and writes;
// the same plan and the same model bytes as one process. A subcommand without a parallel part
// (eval) runs on rank 0 and says so.
TEST(Dist, MpiQuantizeWritesTheModelOfOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "built without MPI, or mpirun not installed (libopenmpi-dev, openmpi-bin)";
  TempDir d;
  auto args = [&](const std::string& tag) {
    return std::vector<std::string>{"quantize", fixture("fmnist-resnet"), "--search", "ip", "--budget-bits", "4",
                                    "--calib", "fmnist:train:64", "--sens-samples", "64", "--eval", "fmnist:test:256",
                                    "-o", d.file(tag + ".onnx"), "--plan-out", d.file(tag + ".plan.json"), "-q",
                                    "--threads", "1"};
  };
  std::string err;
  ASSERT_EQ(run_shell("", args("one"), d, "one", &err), 0) << err;
  ASSERT_EQ(run_shell(mpirun(2), args("two"), d, "two", &err), 0) << err;
  EXPECT_EQ(read_file(d.file("one.onnx")), read_file(d.file("two.onnx")));
  auto plan = [&](const std::string& tag) {
    nlohmann::json j = nlohmann::json::parse(read_file(d.file(tag + ".plan.json")));
    j.erase("search_params");  // times and the table's path
    return j;
  };
  EXPECT_EQ(plan("one"), plan("two"));
  // Rank 0 printed the result once.
  const std::string out = read_file(d.file("two.out"));
  ASSERT_NE(out.find("top-1 quant"), std::string::npos) << out;
  EXPECT_EQ(out.find("top-1 quant"), out.rfind("top-1 quant")) << out;
  ASSERT_EQ(run_shell(mpirun(2), {"eval", fixture("fmnist-mlp"), "--data", "fmnist:test:64"}, d, "eval", &err), 0) << err;
  EXPECT_NE(err.find("runs on MPI rank 0 alone"), std::string::npos) << err;
}

// The pid of the mixq process of MPI rank `rank` whose command line holds `marker` (0: none yet).
pid_t rank_pid(int rank, const std::string& marker) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmd = read_file(e.path().string() + "/cmdline"), env = read_file(e.path().string() + "/environ");
    if (cmd.find(marker) == std::string::npos || cmd.rfind("mpirun", 0) == 0) continue;
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

struct KilledJob {
  bool ended = false;   // the job ended by itself after the kill
  int status = 0;       // its wait status
  std::string err;      // its stderr
};

// Runs `args` under `mpirun -np 2` and, once `marker` exists (the first unit saved), kills rank 1
// with SIGKILL as the OOM killer would; then waits up to 3 minutes for the job to end by itself.
KilledJob kill_rank_one_when(const std::vector<std::string>& args, const std::string& marker, const TempDir& d) {
  std::string cmd = mpirun(2) + "'" + mixq_exe() + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + d.file("mpi.out") + "' 2>'" + d.file("mpi.err") + "' </dev/null";
  std::fflush(stdout);
  const pid_t job = fork();
  if (job == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto waited = [&]() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  KilledJob r;
  pid_t victim = 0;
  while (!victim && waited() < 120) {
    if (waitpid(job, &r.status, WNOHANG) == job) {
      r.err = read_file(d.file("mpi.err"));
      ADD_FAILURE() << "the job ended before a rank could be killed: " << r.err;
      return r;
    }
    if (std::filesystem::exists(marker)) victim = rank_pid(1, marker);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(victim, 0) << "no rank 1 found";
  if (victim) kill(victim, SIGKILL);
  while (!r.ended && waited() < 180) {
    if (waitpid(job, &r.status, WNOHANG) == job) r.ended = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!r.ended) kill(-job, SIGKILL), waitpid(job, &r.status, 0);
  r.err = read_file(d.file("mpi.err"));
  return r;
}

TEST(Dist, KilledRankFailsTheJobAndTheTableResumes) {
  if (!have_mpirun()) GTEST_SKIP() << "built without MPI, or mpirun not installed (libopenmpi-dev, openmpi-bin)";
  TempDir d;
  const std::string table = d.file("killed-table.json");
  std::vector<std::string> args = pareto_args(table, d.file("f.json"));
  args[3] = "fmnist:train:256";  // long enough to be killed half way
  args[5] = "256";
  const KilledJob k = kill_rank_one_when(args, table, d);
  ASSERT_TRUE(k.ended) << "the job hung after rank 1 was killed";
  EXPECT_TRUE(WIFEXITED(k.status) && WEXITSTATUS(k.status) != 0) << k.status;
  EXPECT_NE(k.err.find("rank 1"), std::string::npos) << k.err;
  EXPECT_FALSE(std::filesystem::exists(d.file("f.json")));  // no front from a failed job
  // The table holds what was finished, and one process finishes it from there.
  const SensitivityTable part = load_table(table);
  EXPECT_GE(part.layers.size(), 1u);
  std::string err2;
  std::vector<std::string> again = args;
  again.back() = "-v";
  ASSERT_EQ(run_shell("", again, d, "resume", &err2), 0) << err2;
  EXPECT_NE(err2.find("resuming from"), std::string::npos) << err2;
  const SensitivityTable full = load_table(table);
  EXPECT_GT(full.layers.size(), 0u);
  for (const auto& l : part.layers) {
    const LayerSens* f = full.find(l.name);
    ASSERT_NE(f, nullptr) << l.name;
    EXPECT_EQ(f->bits.at(4).noise, l.bits.at(4).noise) << l.name;  // kept, not remeasured
  }
}

// AdaQuant's parallel mode under mpirun: the ranks learn units in whatever order the counter gives
// them and rank 0 writes the model: the same bytes as one process at the same threads per rank
// (each unit has its own random stream and float inputs). Killed half way, the job fails and the
// checkpoint (recorded in unit order) lets one process finish the same model.
TEST(Dist, AdaQuantParallelUnitsOverRanksEqualOneProcess) {
  if (!have_mpirun()) GTEST_SKIP() << "built without MPI, or mpirun not installed (libopenmpi-dev, openmpi-bin)";
  TempDir d;
  auto args = [&](const std::string& tag) {
    return std::vector<std::string>{"quantize", fixture("fmnist-resnet"), "--method", "adaquant", "--adaquant-mode",
                                    "parallel", "--iters", "2000", "--calib", "fmnist:train:64", "--wbits", "4",
                                    "-o", d.file(tag + ".onnx"), "--checkpoint", d.file(tag + ".ckpt"), "-q",
                                    "--threads", "1"};
  };
  std::string err;
  ASSERT_EQ(run_shell("", args("one"), d, "one", &err), 0) << err;
  const std::string want = read_file(d.file("one.onnx"));
  ASSERT_FALSE(want.empty());
  for (int np : {2, 3}) {
    SCOPED_TRACE("np " + std::to_string(np));
    const std::string tag = "np" + std::to_string(np);
    ASSERT_EQ(run_shell(mpirun(np), args(tag), d, tag, &err), 0) << err;
    EXPECT_EQ(read_file(d.file(tag + ".onnx")), want);
    EXPECT_FALSE(std::filesystem::exists(d.file(tag + ".ckpt")));  // removed once the model is written
  }
  const KilledJob k = kill_rank_one_when(args("killed"), d.file("killed.ckpt"), d);
  ASSERT_TRUE(k.ended) << "the job hung after rank 1 was killed";
  EXPECT_TRUE(WIFEXITED(k.status) && WEXITSTATUS(k.status) != 0) << k.status;
  EXPECT_FALSE(std::filesystem::exists(d.file("killed.onnx")));
  ASSERT_TRUE(std::filesystem::exists(d.file("killed.ckpt")));
  std::vector<std::string> resume = args("killed");
  resume[resume.size() - 3] = "-v";  // was -q: the log says it resumed
  ASSERT_EQ(run_shell("", resume, d, "resume", &err), 0) << err;
  EXPECT_NE(err.find("resuming adaquant"), std::string::npos) << err;
  EXPECT_EQ(read_file(d.file("killed.onnx")), want);
}

}  // namespace
}  // namespace mixq::test
