#pragma once
// A child process the test started and owns. The child is fork/exec'd with its
// stdout/stderr appended to files, inherits no descriptors of the test process
// except 0-2, and gets SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a
// crashed or timed-out test never leaves daemons behind.
//
// Invariant: while a Process object exists its PID is either still running or
// already reaped by this object; the destructor kills (SIGKILL) and reaps what is
// still running. Everything is done by PID, never by name.
#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace regcache::test {

struct ProcessOptions {
  std::vector<std::string> argv;                            // argv[0] is looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;     // added to / overriding the test's environment
  std::filesystem::path stdout_path;                        // appended to; empty = /dev/null
  std::filesystem::path stderr_path;                        // appended to; empty = /dev/null
};

class Process {
 public:
  // Starts the child; throws std::runtime_error when the program cannot be found or exec'd.
  explicit Process(ProcessOptions options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }

  // True while the child runs (reaps it if it has exited).
  bool alive();

  // Waits up to `timeout` for the child to exit by itself; its exit code, or nullopt if still running.
  std::optional<int> wait_for(std::chrono::milliseconds timeout);

  // Sends `sig`, waits up to `grace` for the exit, then SIGKILLs and reaps. Returns the exit code.
  // Calling it after the child exited just returns the exit code.
  int stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds(10));

  // Exit code once reaped: the child's status for a normal exit, 128 + signal number when a
  // signal ended it (the shell's convention, so 0 always means "exited cleanly").
  std::optional<int> exit_code() const { return exit_code_; }

  const std::filesystem::path& stdout_path() const { return options_.stdout_path; }
  const std::filesystem::path& stderr_path() const { return options_.stderr_path; }
  std::string stdout_text() const;
  std::string stderr_text() const;
  // "prog arg1 arg2" for messages.
  std::string command_line() const;

 private:
  bool reap(bool block);

  ProcessOptions options_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace regcache::test
