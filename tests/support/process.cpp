#include "support/process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "support/files.h"
#include "support/wait.h"

extern char** environ;

namespace regcache::test {
namespace {

std::string find_in_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  throw std::runtime_error("program not found in PATH: " + program);
}

std::vector<std::string> merged_environment(const std::vector<std::pair<std::string, std::string>>& additions) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& [key, value] : additions) overridden = overridden || key == name;
    if (!overridden) env.push_back(std::move(entry));
  }
  for (const auto& [key, value] : additions) env.push_back(key + "=" + value);
  return env;
}

int open_output(const std::filesystem::path& path) {
  const char* target = path.empty() ? "/dev/null" : path.c_str();
  int fd = ::open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(std::string("cannot open ") + target + ": " + std::strerror(errno));
  return fd;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Marks every descriptor above 2 close-on-exec in the child. Async-signal-safe.
void cloexec_all_inherited() {
#ifdef CLOSE_RANGE_CLOEXEC
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
  for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

Process::Process(ProcessOptions options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::invalid_argument("Process: empty argv");

  // Everything the child needs is prepared before fork(): the test process has threads
  // (token server, Poco), so the child may only make async-signal-safe calls.
  const std::string program = find_in_path(options_.argv[0]);
  std::vector<char*> argv;
  for (auto& arg : options_.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = merged_environment(options_.env);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  int out_fd = open_output(options_.stdout_path);
  int err_fd = open_output(options_.stderr_path);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_error[2];
  if (null_fd < 0 || ::pipe2(exec_error, O_CLOEXEC) != 0) {
    ::close(out_fd);
    ::close(err_fd);
    if (null_fd >= 0) ::close(null_fd);
    throw std::runtime_error(std::string("Process: setup failed: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();

  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl took effect
    ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    // The test process ignores SIGPIPE; an ignored disposition would survive exec.
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    cloexec_all_inherited();
    ::execve(program.c_str(), argv.data(), envp.data());
    int err = errno;
    [[maybe_unused]] auto written = ::write(exec_error[1], &err, sizeof err);
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(exec_error[1]);
  ::close(out_fd);
  ::close(err_fd);
  ::close(null_fd);
  if (pid_ < 0) {
    ::close(exec_error[0]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(fork_errno));
  }
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_error[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_error[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    reap(true);
    pid_ = -1;
    throw std::runtime_error("exec " + program + " failed: " + std::strerror(child_errno));
  }
}

Process::~Process() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

bool Process::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    return true;
  }
  return false;
}

bool Process::alive() { return pid_ > 0 && !reap(false); }

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
  wait_until([&] { return reap(false); }, timeout);
  return exit_code_;
}

int Process::stop(int sig, std::chrono::milliseconds grace) {
  if (!exit_code_ && !reap(false)) {
    ::kill(pid_, sig);
    if (!wait_for(grace)) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return *exit_code_;
}

std::string Process::stdout_text() const { return read_file(options_.stdout_path); }
std::string Process::stderr_text() const { return read_file(options_.stderr_path); }

std::string Process::command_line() const {
  std::string line;
  for (const auto& arg : options_.argv) line += (line.empty() ? "" : " ") + arg;
  return line;
}

}  // namespace regcache::test
