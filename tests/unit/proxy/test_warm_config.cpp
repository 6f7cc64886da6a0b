// Unit tests for the `warm` configuration key (proxy/config.h, WarmSettings)
// and the URL the scheduler reaches its own listener at.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>

#include "config_errors.h"
#include "proxy/config.h"
#include "proxy/warm_scheduler.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;
using namespace std::chrono_literals;

TEST_CASE("warm config: defaults, and every field read") {
  Config d = parse_config("{}");
  CHECK(d.warm.references.empty());
  CHECK(d.warm.interval == 3600s);
  Config c = parse_config(R"({"warm": {"references": ["docker.io/library/alpine:3.19", "quay.io/org/app:v1.*"],
                                         "interval_s": 60, "platforms": ["linux/amd64", "linux/arm64/v8"],
                                         "referrers": true, "newest": 3}})");
  CHECK(c.warm.references.size() == 2);
  CHECK(c.warm.interval == 60s);
  CHECK(c.warm.platforms.size() == 2);
  CHECK(c.warm.referrers);
  CHECK(c.warm.newest == 3);
}

TEST_CASE("warm config: credentials for the own listener, the password read from a file") {
  auto dir = std::filesystem::temp_directory_path() / ("regcache-warm-cred-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "pw") << "s3cret\n";
  }
  std::filesystem::permissions(dir / "pw", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  Config c = parse_config(R"({"warm": {"username": "warmer", "password_file": ")" + (dir / "pw").string() + R"("}})");
  CHECK(c.warm.username == "warmer");
  CHECK(c.warm.password == "s3cret");
  CHECK(error_key(R"({"warm": {"username": "warmer"}})") == "warm.password_file");
  CHECK(error_key(R"({"warm": {"password_file": ")" + (dir / "pw").string() + R"("}})") == "warm.username");
  CHECK(error_key(R"({"warm": {"username": "a:b", "password_file": ")" + (dir / "pw").string() + R"("}})") ==
        "warm.username");
  CHECK(error_key(R"({"warm": {"username": "warmer", "password_file": ")" + (dir / "absent").string() + R"("}})") ==
        "warm.password_file");
  std::filesystem::remove_all(dir);
}

TEST_CASE("warm config: bad values are refused naming the key") {
  CHECK(error_key(R"({"warm": []})") == "warm");
  CHECK(error_key(R"({"warm": {"references": ["ok:1", "Bad/Name:1"]}})") == "warm.references[1]");
  CHECK(error_key(R"({"warm": {"references": "alpine"}})") == "warm.references");
  CHECK(error_key(R"({"warm": {"platforms": ["linux"]}})") == "warm.platforms[0]");
  CHECK(error_key(R"({"warm": {"platforms": ["linux/amd64,linux/arm64"]}})") == "warm.platforms[0]");
  CHECK(error_key(R"({"warm": {"interval_s": -1}})") == "warm.interval_s");
  CHECK(error_key(R"({"warm": {"every": 1}})") == "warm.every");
}

TEST_CASE("warm config: etc/regcache.json documents the warm defaults") {
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config c = load_config(path);
  Config d = default_config();
  CHECK(c.warm.references == d.warm.references);
  CHECK(c.warm.interval == d.warm.interval);
  CHECK(c.warm.platforms == d.warm.platforms);
  CHECK(c.warm.referrers == d.warm.referrers);
  CHECK(c.warm.newest == d.warm.newest);
}

TEST_CASE("warm scheduler: its own listener's URL") {
  Config c = default_config();
  c.listen_host = "0.0.0.0";
  CHECK(own_listener_url(c, 5000) == "http://127.0.0.1:5000");
  c.listen_host = "::";
  CHECK(own_listener_url(c, 5001) == "http://[::1]:5001");
  c.listen_host = "127.0.0.2";
  c.tls_cert = "cert.pem";
  CHECK(own_listener_url(c, 443) == "https://127.0.0.2:443");
}
