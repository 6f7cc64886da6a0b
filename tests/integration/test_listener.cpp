// The client-facing socket: HTTPS with a configured certificate, and a TLS
// handshake sent to the plain-HTTP port (skopeo and podman try that first).
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include <string>

#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/checks.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;

namespace {

// Runs curl and returns its exit code; the body goes to `out`.
int curl(const TempDir& dir, const std::vector<std::string>& args, const std::filesystem::path& out) {
  std::vector<std::string> argv = {"curl", "-s", "-o", out.string(), "-w", "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p({argv, {}, dir / "curl.out", dir / "curl.err"});
  auto code = p.wait_for(std::chrono::seconds(60));
  return code ? *code : -1;
}

// The first bytes of a real TLS 1.2/1.3 ClientHello are enough to look like one.
const unsigned char kClientHelloStart[] = {0x16, 0x03, 0x01, 0x00, 0xf8, 0x01, 0x00, 0x00, 0xf4, 0x03, 0x03};

}  // namespace

TEST_CASE("listener: HTTPS with tls_cert and tls_key serves pulls with the right bytes") {
  TempDir dir("regcache-it-tls");
  UpstreamRegistry upstream(dir.subdir("upstream"));
  auto image = make_oci_image(dir / "image", "v1", {512 * 1024, 2 * 1024 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(dir / "skopeo", image.oci_reference(), upstream.host(), "app:v1"));

  Process openssl({{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", (dir / "tls.key").string(), "-out",
                    (dir / "tls.crt").string()},
                   {}, dir / "openssl.out", dir / "openssl.err"});
  REQUIRE(openssl.wait_for(std::chrono::seconds(60)) == 0);

  int port = free_port();
  auto config = regcache_config(upstream.url());
  config["tls_cert"] = (dir / "tls.crt").string();
  config["tls_key"] = (dir / "tls.key").string();
  write_file(dir / "config.json", config.dump());
  Process server({{REGCACHE_BINARY, "serve", "--config", (dir / "config.json").string(), "--listen",
                   "127.0.0.1:" + std::to_string(port), "--data-dir", (dir / "data").string()},
                  {}, dir / "rc.out", dir / "rc.err"});
  std::string base = "https://127.0.0.1:" + std::to_string(port);
  REQUIRE_MESSAGE(wait_until([&] { return curl(dir, {"--cacert", (dir / "tls.crt").string(), base + "/v2/"},
                                                    dir / "ping") == 0; },
                             std::chrono::seconds(20)),
                  server.stderr_text());
  // The TLS path in use is named at start-up: kTLS when the kernel offers the
  // "tls" ULP, else encryption in user space (this build machine has none).
  CHECK((server.stderr_text().find("TLS: no kernel TLS") != std::string::npos ||
         server.stderr_text().find("TLS: the kernel offers kTLS") != std::string::npos));
  // Plain HTTP on the TLS port is not answered as a registry.
  CHECK(http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/v2/").status != 200);

  for (const auto& layer : image.blobs()) {
    auto out = dir / ("layer-" + layer.digest.substr(7, 12));
    REQUIRE(curl(dir, {"--fail", "--cacert", (dir / "tls.crt").string(), base + "/v2/app/blobs/" + layer.digest}, out) ==
            0);
    CHECK(sha256_digest(read_file(out)) == layer.digest);  // once as a miss...
    REQUIRE(curl(dir, {"--fail", "--cacert", (dir / "tls.crt").string(), base + "/v2/app/blobs/" + layer.digest}, out) ==
            0);
    CHECK(sha256_digest(read_file(out)) == layer.digest);  // ...and once as a hit
  }
  CHECK(server.stop() == 0);
}

TEST_CASE("listener: a TLS ClientHello on the plain port gets a 400 and the server carries on") {
  TempDir dir("regcache-it-hello");
  RegcacheServer server(dir.path(), {"http://127.0.0.1:" + std::to_string(free_port()), std::nullopt, {}});

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server.port()));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // A ClientHello is a few hundred bytes with no line break in its first 32.
  std::string hello(reinterpret_cast<const char*>(kClientHelloStart), sizeof kClientHelloStart);
  hello.resize(250, '\x2a');
  REQUIRE(::send(fd, hello.data(), hello.size(), 0) == static_cast<ssize_t>(hello.size()));
  char buf[64] = {};
  ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  REQUIRE(n > 0);
  CHECK(std::string(buf, static_cast<std::size_t>(n)).find(" 400 ") != std::string::npos);

  CHECK(http_request("GET", server.url() + "/v2/").status == 200);
  CHECK(server.alive());
}

TEST_CASE("listener: slow HTTPS readers of a large blob outnumber the workers and hold none of them") {
  TempDir dir("regcache-it-tls-slow");
  Process openssl({{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", (dir / "tls.key").string(), "-out",
                    (dir / "tls.crt").string()},
                   {}, dir / "openssl.out", dir / "openssl.err"});
  REQUIRE(openssl.wait_for(std::chrono::seconds(60)) == 0);
  const int workers = 2, readers = 4;
  int port = free_port();
  // Debug level: each TLS connection's path is logged (", kTLS send" when its keys went to the kernel).
  nlohmann::json config = {{"upstreams", nlohmann::json::array()}, {"hosted", {"local"}}, {"workers", workers},
                           {"log_level", "debug"},
                           {"tls_cert", (dir / "tls.crt").string()}, {"tls_key", (dir / "tls.key").string()}};
  write_file(dir / "config.json", config.dump());
  Process server({{REGCACHE_BINARY, "serve", "--config", (dir / "config.json").string(), "--listen",
                   "127.0.0.1:" + std::to_string(port), "--data-dir", (dir / "data").string()},
                  {}, dir / "rc.out", dir / "rc.err"});
  std::string base = "https://127.0.0.1:" + std::to_string(port);
  const std::string cacert = (dir / "tls.crt").string();
  REQUIRE_MESSAGE(wait_until([&] { return curl(dir, {"--cacert", cacert, base + "/v2/"}, dir / "ping") == 0; },
                             std::chrono::seconds(20)),
                  server.stderr_text());
  // 32 MiB of random bytes: more than both sides' socket buffers hold.
  std::string bytes(32 << 20, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (auto& b : bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<char>(x);
  }
  const std::string digest = sha256_digest(bytes);
  write_file(dir / "blob", bytes);
  bytes.clear();
  REQUIRE(curl(dir, {"--fail", "--cacert", cacert, "-X", "POST", "-H", "Content-Type: application/octet-stream",
                     "--data-binary", "@" + (dir / "blob").string(),
                     base + "/v2/local/app/blobs/uploads/?digest=" + digest},
               dir / "pushed") == 0);

  // Each reader takes a little and is then stopped (SIGSTOP): it reads no more.
  std::vector<std::unique_ptr<Process>> slow;
  for (int i = 0; i < readers; ++i) {
    auto out = dir / ("slow-" + std::to_string(i));
    slow.push_back(std::make_unique<Process>(ProcessOptions{
        {"curl", "-s", "--fail", "--cacert", cacert, "-o", out.string(), base + "/v2/local/app/blobs/" + digest}, {}, {},
        dir / ("slow-" + std::to_string(i) + ".err")}));
    REQUIRE(wait_until([&] { return std::filesystem::exists(out) && std::filesystem::file_size(out) > 0; },
                       std::chrono::seconds(20)));
    ::kill(slow.back()->pid(), SIGSTOP);
  }
  // A worker is free for a new client although every transfer is stalled.
  CHECK(curl(dir, {"--fail", "--max-time", "10", "--cacert", cacert, base + "/v2/"}, dir / "meanwhile") == 0);
  // Resumed, every reader gets the whole verified blob.
  for (int i = 0; i < readers; ++i) {
    ::kill(slow[static_cast<std::size_t>(i)]->pid(), SIGCONT);
    CHECK(slow[static_cast<std::size_t>(i)]->wait_for(std::chrono::seconds(60)) == 0);
    CHECK(sha256_digest(read_file(dir / ("slow-" + std::to_string(i)))) == digest);
  }
  // The path the server names matches what the kernel offers: kTLS (every
  // connection's bodies then went out with SSL_sendfile) or the user-space
  // fallback (this build machine: the kernel has no "tls" ULP).
  bool kernel_tls = read_file("/proc/sys/net/ipv4/tcp_available_ulp").find("tls") != std::string::npos;
  std::string log = server.stderr_text();
  INFO("kernel offers tls ULP: " << kernel_tls);
  CHECK((log.find("TLS: the kernel offers kTLS") != std::string::npos) == kernel_tls);
  CHECK((log.find("TLS: no kernel TLS") != std::string::npos) == !kernel_tls);
  CHECK((log.find(", kTLS send") != std::string::npos) == kernel_tls);
  CHECK(server.stop() == 0);
}
