// Atomic file output under a failing disk (files.h), and the run lock's view of ended
// processes (run_lock.h).
#include "strata/core/files.h"
#include "strata/core/run_lock.h"

#include "test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace strata::core {
namespace {

namespace fs = std::filesystem;

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("files_test") {}
};

std::string text_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A write that fails part-way (the file system refuses to grow the file) is an IoError
// naming the file and the system's reason; the previous file is untouched and no
// temporary is left.
TEST(AtomicFileTest, AFailedWriteKeepsThePreviousFileAndLeavesNoTemporary) {
  TempDir dir;
  const fs::path target = dir.path / "scores.csv";
  write_file_atomic(target.string(), "previous\n", "per-case scores");
  std::string message;
  {
    test::FileSizeLimit limit(4096);
    message = test::error_of([&] { write_file_atomic(target.string(), std::string(100000, 'x'), "per-case scores"); });
  }
  EXPECT_NE(message.find("cannot write the per-case scores '" + target.string() + "': File too large (after 4096 "
                         "bytes"),
            std::string::npos)
      << message;
  EXPECT_EQ(text_of(target), "previous\n");
  for (const auto& e : fs::directory_iterator(dir.path)) EXPECT_EQ(e.path().filename(), "scores.csv");
}

// Writes after the first failure are dropped (the producer runs on to its end), and
// the failure is reported by commit(); a file never committed is removed.
TEST(AtomicFileTest, KeepsTheFirstFailureForCommitAndRemovesAnUncommittedFile) {
  TempDir dir;
  const fs::path target = dir.path / "last.pt";
  {
    test::FileSizeLimit limit(1000);
    AtomicFile file(target.string(), "checkpoint");
    const std::string chunk(600, 'x');
    EXPECT_EQ(file.write(chunk.data(), chunk.size()), 600u);
    EXPECT_EQ(file.write(chunk.data(), chunk.size()), 600u);  // fails at byte 1000, reports nothing yet
    EXPECT_EQ(file.write(chunk.data(), chunk.size()), 600u);
    const std::string message = test::error_of([&] { file.commit(); });
    EXPECT_NE(message.find("File too large (after 1000 bytes"), std::string::npos) << message;
  }
  {
    AtomicFile abandoned(target.string(), "checkpoint");
    abandoned.write("abc", 3);
  }
  EXPECT_TRUE(fs::is_empty(dir.path));
  AtomicFile file(target.string(), "checkpoint");
  file.write("abc", 3);
  file.commit();
  EXPECT_EQ(text_of(target), "abc");
}

// A process that has exited but was not yet reaped (a zombie: a rank ended by
// MPI_Abort, until mpirun waits for it) no longer holds its run folder.
TEST(RunLockTest, TakesOverTheLockOfAZombieProcess) {
  TempDir dir;
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);  // exited, not reaped
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  std::ofstream(dir.path / "LOCK") << host << " " << child << " 2026-01-01T00:00:00Z\n";
  RunLock lock;
  const std::string why = lock.acquire(dir.path.string());
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(why, "");
  EXPECT_TRUE(lock.held());

  // A live process still holds it.
  lock.release();
  std::ofstream(dir.path / "LOCK") << host << " " << ::getppid() << " 2026-01-01T00:00:00Z\n";
  RunLock second;
  EXPECT_NE(second.acquire(dir.path.string()).find("is in use by pid"), std::string::npos);
}

}  // namespace
}  // namespace strata::core
