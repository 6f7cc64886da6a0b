// The command line (issue 2): --version and --help, refusal of unknown commands,
// flags and bad configuration (exit 2, naming the key), an unbindable port, and
// SIGTERM while a slow download is in flight (the response completes, or the grace
// period ends; either way exit 0).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cctype>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

struct Run {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
};

// Runs regcache with `args` and waits (bounded) for it to exit by itself.
Run run_regcache(const std::filesystem::path& dir, const std::string& name, std::vector<std::string> args,
                 std::chrono::seconds timeout = 15s) {
  args.insert(args.begin(), REGCACHE_BINARY);
  Process p({args, {}, dir / (name + ".out"), dir / (name + ".err")});
  Run r;
  r.exit_code = p.wait_for(timeout);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;  // a process still running is killed by ~Process
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// regcache serve as a child process whose PID the test signals itself.
class SignalledRegcache {
 public:
  SignalledRegcache(const std::filesystem::path& dir, const std::string& upstream_url, const nlohmann::json& config) {
    write_file(dir / "config.json", config.dump(2));
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      process_ = std::make_unique<Process>(
          ProcessOptions{{REGCACHE_BINARY, "serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--data-dir",
                          (dir / "data").string(), "--upstream", upstream_url, "--config", (dir / "config.json").string()},
                         {},
                         dir / "regcache.out",
                         dir / "regcache.err"});
      bool up = wait_until(
          [&] { return !process_->alive() || http_request("GET", url() + "/v2/", {}, {}, 2s).status == 200; }, 30s);
      if (up && process_->alive()) return;
      process_->stop(SIGKILL, 5s);
    }
    throw std::runtime_error("regcache did not start; stderr:\n" + process_->stderr_text());
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Process& process() { return *process_; }

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace

TEST_CASE("cli: --version and --help exit 0 with their text, unknown commands and flags exit 2 with usage") {
  TempDir tmp;
  auto version = run_regcache(tmp.path(), "version", {"--version"});
  REQUIRE(version.exit_code.has_value());
  CHECK(*version.exit_code == 0);
  // "regcache <major>.<minor>[.<patch>...]" and a newline.
  const std::string prefix = "regcache ";
  CHECK_MESSAGE(version.out.rfind(prefix, 0) == 0, "--version printed: '" << version.out << "'");
  if (version.out.size() > prefix.size()) {
    CHECK(std::isdigit(static_cast<unsigned char>(version.out[prefix.size()])));
    CHECK(version.out.find('.') != std::string::npos);
    CHECK(version.out.back() == '\n');
    CHECK(version.out.find('\n') == version.out.size() - 1);
  }

  auto help = run_regcache(tmp.path(), "help", {"--help"});
  REQUIRE(help.exit_code.has_value());
  CHECK(*help.exit_code == 0);
  CHECK(lower(help.out).find("usage") != std::string::npos);
  for (const char* word : {"serve", "--config", "--listen", "--data-dir", "--upstream", "--offline", "--version"})
    CHECK_MESSAGE(help.out.find(word) != std::string::npos, "--help does not mention " << word);

  const int port = free_port();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  const std::string data = (tmp / "data").string();
  struct Refused {
    std::vector<std::string> args;
    std::string must_mention;  // in stderr, "" = anything
  };
  const std::vector<Refused> refused = {
      {{}, "usage"},
      {{"frobnicate"}, "frobnicate"},
      {{"--bogus"}, "--bogus"},
      {{"serve", "--bogus", "--listen", listen, "--data-dir", data}, "--bogus"},
      {{"serve", "--listen"}, "--listen"},
      {{"serve", "--listen", "no-port-here", "--data-dir", data}, "listen"},
      {{"serve", "--listen", "127.0.0.1:99999", "--data-dir", data}, "listen"},
      {{"serve", "--listen", listen, "--data-dir", data, "--upstream", "ftp://x"}, "upstream"},
      {{"serve", "--listen", listen, "--data-dir", data, "--config", (tmp / "missing.json").string()}, "config"},
  };
  int i = 0;
  for (const auto& r : refused) {
    std::string command;
    for (const auto& a : r.args) command += " " + a;
    CAPTURE(command);
    auto run = run_regcache(tmp.path(), "refused" + std::to_string(++i), r.args);
    REQUIRE_MESSAGE(run.exit_code.has_value(), "regcache did not exit; stderr: " << run.err);
    CHECK(*run.exit_code == 2);
    CHECK_MESSAGE(lower(run.err).find(lower(r.must_mention)) != std::string::npos, "stderr: " << run.err);
  }
}

TEST_CASE("cli: bad configuration files make regcache exit 2 and name the key") {
  TempDir tmp;
  const int port = free_port();
  const std::string up = R"("name": "u", "url": "http://127.0.0.1:1")";
  struct BadConfig {
    std::string text;
    std::string key;  // stderr must contain it
  };
  const std::vector<BadConfig> bad = {
      // unknown keys
      {R"({"bogus_key": 1})", "bogus_key"},
      {R"({"upstreams": [{)" + up + R"(, "colour": "blue"}]})", "upstreams[0].colour"},
      // wrong types
      {R"({"max_connections": "many"})", "max_connections"},
      {R"({"offline": "yes"})", "offline"},
      {R"({"log_level": 3})", "log_level"},
      {R"({"upstreams": {"name": "u"}})", "upstreams"},
      {R"({"upstreams": [{)" + up + R"(, "tag_ttl_s": "60"}]})", "upstreams[0].tag_ttl_s"},
      {R"({"upstreams": [{)" + up + R"(, "insecure_skip_tls_verify": 1}]})", "upstreams[0].insecure_skip_tls_verify"},
      {R"({"fill_timeout_s": 1.5})", "fill_timeout_s"},
      // impossible values
      {R"({"max_manifest_bytes": 1})", "max_manifest_bytes"},
      {R"({"max_connections": 0})", "max_connections"},
      {R"({"upstreams": [{"name": "u", "url": "ftp://x"}]})", "upstreams[0].url"},
      {R"({"upstreams": [{"name": "u", "url": "http://127.0.0.1:1/some/path"}]})", "upstreams[0].url"},
      {R"({"upstreams": [{)" + up + R"(, "negative_ttl_s": -1}]})", "upstreams[0].negative_ttl_s"},
      {R"({"upstreams": [{)" + up + R"(, "read_timeout_ms": 0}]})", "upstreams[0].read_timeout_ms"},
      {R"({"upstreams": [{)" + up + R"(, "username": "only-me"}]})", "upstreams[0].password"},
      {R"({"upstreams": [{"url": "http://127.0.0.1:1"}]})", "upstreams[0].name"},
      {R"({"listen": "nonsense"})", "listen"},
      {R"({"log_level": "loud"})", "log_level"},
      {R"({"default_upstream": "nowhere"})", "default_upstream"},
      {R"({"data_dir": ""})", "data_dir"},
      // not JSON
      {R"({"listen": )", "JSON"},
      {"", "JSON"},
  };
  int i = 0;
  for (const auto& b : bad) {
    CAPTURE(b.text);
    const std::string name = "bad" + std::to_string(++i);
    write_file(tmp / (name + ".json"), b.text);
    auto run = run_regcache(tmp.path(), name,
                            {"serve", "--config", (tmp / (name + ".json")).string(), "--listen",
                             "127.0.0.1:" + std::to_string(port), "--data-dir", (tmp / "data").string()});
    REQUIRE_MESSAGE(run.exit_code.has_value(), "regcache accepted the configuration and kept running; stderr: " << run.err);
    CHECK(*run.exit_code == 2);
    CHECK_MESSAGE(run.err.find(b.key) != std::string::npos, "stderr does not name " << b.key << ": " << run.err);
  }

  // The documented default configuration itself is accepted.
  auto defaults = read_file(std::filesystem::path(REGCACHE_SOURCE_DIR) / "etc" / "regcache.json");
  REQUIRE_FALSE(defaults.empty());
  write_file(tmp / "defaults.json", defaults);
  Process ok({{REGCACHE_BINARY, "serve", "--config", (tmp / "defaults.json").string(), "--listen",
               "127.0.0.1:" + std::to_string(port), "--data-dir", (tmp / "data").string()},
              {},
              tmp / "defaults.out",
              tmp / "defaults.err"});
  bool started = wait_until(
      [&] {
        return !ok.alive() ||
               http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/v2/", {}, {}, 2s).status == 200;
      },
      30s);
  CHECK_MESSAGE((started && ok.alive()), "etc/regcache.json was refused: " << ok.stderr_text());
  CHECK(ok.stop(SIGTERM, 15s) == 0);
}

TEST_CASE("cli: a listen address already in use makes regcache exit non-zero with a clear message") {
  TempDir tmp;
  auto check_refused = [&](int port, const std::string& name) {
    auto run = run_regcache(tmp.path(), name,
                            {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--data-dir",
                             (tmp / (name + "-data")).string(), "--upstream", "http://127.0.0.1:1"},
                            10s);
    REQUIRE_MESSAGE(run.exit_code.has_value(), "regcache kept running on a port that is in use; stderr: " << run.err);
    CHECK(*run.exit_code != 0);
    CHECK(*run.exit_code < 128);  // an orderly exit, not a crash
    CHECK_MESSAGE(lower(run.err).find("in use") != std::string::npos, "stderr: " << run.err);
    CHECK_MESSAGE(run.err.find(std::to_string(port)) != std::string::npos, "stderr does not name the port: " << run.err);
  };

  SUBCASE("held by a plain listening socket") {
    // A plain socket: no SO_REUSEPORT (Poco's ServerSocket would set it).
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    check_refused(ntohs(addr.sin_port), "plain");
    ::close(fd);
  }

  SUBCASE("held by another regcache") {
    FakeUpstream fake;
    RegcacheServer first(tmp / "first", {fake.url(), regcache_config(fake.url()), {}});
    check_refused(first.port(), "second");
    // The first one still answers every request (the second took none of its traffic).
    for (int i = 0; i < 20; ++i) CHECK(http_request("GET", first.url() + "/v2/", {}, {}, 5s).status == 200);
  }
}

TEST_CASE("cli: SIGTERM while a slow blob download is in flight lets it complete and exits 0") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "cli/slow";
  const std::size_t size = 2 * MiB;
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 77));
  const std::string path = FakeUpstream::blob_path(repo, digest);
  // About 1.6 s for the whole blob: 128 KiB every 100 ms.
  fake.set_behavior(path, Behavior::trickle(128 * KiB, 100ms));
  auto config = regcache_config(fake.url());
  config["shutdown_grace_s"] = 30;
  SignalledRegcache regcache(tmp.path(), fake.url(), config);

  std::atomic<std::uint64_t> received{0};
  StreamedResponse result;
  std::thread client([&] { result = stream_get(regcache.port(), path, {}, 30s, &received); });
  const bool started = wait_until([&] { return received.load() >= 128 * KiB; }, 30s);
  CHECK_MESSAGE(started, "the download did not start");
  CHECK(::kill(regcache.process().pid(), SIGTERM) == 0);
  const auto code = regcache.process().wait_for(60s);
  if (!code) regcache.process().stop(SIGKILL, 5s);
  client.join();

  REQUIRE_MESSAGE(code.has_value(), "regcache did not exit after SIGTERM");
  CHECK_MESSAGE(*code == 0, "exit code " << *code << "; stderr:\n" << regcache.process().stderr_text());
  CHECK_MESSAGE(result.status == 200, result.summary());
  CHECK_MESSAGE(result.complete, "the in-flight download was cut by the shutdown: " << result.summary());
  CHECK(result.body_bytes == size);
  CHECK(result.body_digest == digest);
  CHECK(wait_until([&] { return fake.body_bytes_sent(path) >= size; }, 10s));
}

TEST_CASE("cli: SIGTERM with a stalled download exits 0 when shutdown_grace_s ends and the client never sees a complete body") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "cli/stalled";
  const std::size_t size = 1 * MiB;
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 78));
  const std::string path = FakeUpstream::blob_path(repo, digest);
  auto gate = std::make_shared<Gate>();  // never opened: the upstream stalls half-way
  Behavior stalled;
  stalled.body_gate = gate;
  stalled.body_gate_at = size / 2;
  fake.set_behavior(path, stalled);
  auto config = regcache_config(fake.url());
  config["shutdown_grace_s"] = 1;
  config["upstreams"][0]["read_timeout_ms"] = 120000;  // only the grace period may end this
  SignalledRegcache regcache(tmp.path(), fake.url(), config);

  std::atomic<std::uint64_t> received{0};
  StreamedResponse result;
  std::thread client([&] { result = stream_get(regcache.port(), path, {}, 30s, &received); });
  CHECK(wait_until([&] { return received.load() >= 1; }, 30s));
  CHECK(gate->wait_for_waiting(1, 30s));
  const auto signalled = std::chrono::steady_clock::now();
  CHECK(::kill(regcache.process().pid(), SIGTERM) == 0);
  const auto code = regcache.process().wait_for(20s);
  const auto took = std::chrono::steady_clock::now() - signalled;
  if (!code) regcache.process().stop(SIGKILL, 5s);  // let the client see the end before it is joined
  client.join();

  REQUIRE_MESSAGE(code.has_value(), "regcache did not exit after SIGTERM and the grace period");
  CHECK_MESSAGE(*code == 0, "exit code " << *code << "; stderr:\n" << regcache.process().stderr_text());
  CHECK(took < 15s);
  CHECK_MESSAGE(!(result.status == 200 && result.complete), "a stalled download looked complete: " << result.summary());
  CHECK(result.body_bytes < size);
}
