// Unit tests for the configuration's hostile-number and file checks
// (proxy/config.h: parse_config ranges, check_config_files).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "proxy/config.h"

using namespace regcache::proxy;

namespace {

std::string error_key_of(const std::string& json) {
  try {
    parse_config(json);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "(no error)";
}

std::string upstream_with(const std::string& extra) {
  return R"({"upstreams": [{"name": "hub", "url": "https://127.0.0.1:1")" + extra + "}]}";
}

constexpr const char* kCertificate = R"(-----BEGIN CERTIFICATE-----
MIIBWjCCAQGgAwIBAgIUPUB8lA5CDHj5wgjny0YRM6WKpWkwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTAwMDEwMTAwMDAwMFoYDzI5OTkxMjMx
MDAwMDAwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARrpNjMlULZ/OrBKd9h/WLxq/NcSjzhw7Aj04+9gq97dVz/FiJYhXZk
r81GwOew7K0q7pO32MSF3vwUoIqUNc6Boy8wLTAaBgNVHREEEzARgglsb2NhbGhv
c3SHBH8AAAEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBe6A3S
Nb/Vjivqdqi1XBerfx9VwjAU0eGkI3dG4M7XMgIgHaqgm/NvfuUa3Hk89rlggY+J
bNV/3sUkHi2Exvnphgk=
-----END CERTIFICATE-----
)";
constexpr const char* kPrivateKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqgUSgsEGhAtCvFAV
ktgf1NTXyIJ2NVRZ25SMXAVy7wGhRANCAARrpNjMlULZ/OrBKd9h/WLxq/NcSjzh
w7Aj04+9gq97dVz/FiJYhXZkr81GwOew7K0q7pO32MSF3vwUoIqUNc6B
-----END PRIVATE KEY-----
)";

struct Files {
  std::filesystem::path dir;
  Files() {
    for (int i = 0;; ++i) {
      dir = std::filesystem::temp_directory_path() /
            ("regcache-config-files-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (std::filesystem::create_directory(dir)) break;
    }
  }
  ~Files() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

std::string files_error_key(const Config& c) {
  try {
    check_config_files(c);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: numbers no double holds name their key instead of aborting") {
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 1e400)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(R"({"client_timeout_s": -1e400})") == "client_timeout_s");
  CHECK(error_key_of(R"({"hosted": ["local"], "max_connections": )" + std::string(500, '9') + "}") ==
        "max_connections");
}

TEST_CASE("config: huge, negative and fractional numbers are refused with their key") {
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 18446744073709551615)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 9223372036854775808)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 99999999999999999999)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": -1)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 1.5)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key_of(upstream_with(R"(, "read_timeout_ms": 9223372036854775807)")) == "upstreams[0].read_timeout_ms");
  CHECK(error_key_of(R"({"manifest_memory_bytes": 18446744073709551615})") == "manifest_memory_bytes");
  CHECK(error_key_of(R"({"fill_timeout_s": 9223372036854775807})") == "fill_timeout_s");
  CHECK(error_key_of(R"({"upload_ttl_s": -9223372036854775808})") == "upload_ttl_s");
  try {
    parse_config(upstream_with(R"(, "tag_ttl_s": 18446744073709551615)"));
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("not 18446744073709551615") != std::string::npos);
  }
  CHECK(error_key_of(upstream_with(R"(, "tag_ttl_s": 31536000)")) == "(no error)");
}

TEST_CASE("config: a document deeper than the JSON budget is refused, not recursed") {
  CHECK(error_key_of(std::string(100'000, '[') + std::string(100'000, ']')) == "(file)");
  CHECK(error_key_of(R"({"hosted": )" + std::string(70, '[') + std::string(70, ']') + "}") == "(file)");
}

TEST_CASE("config files: a ca_file that is missing or not PEM names its key") {
  Files files;
  Config c = parse_config(upstream_with(R"(, "ca_file": ")" + files.write("ca.pem", kCertificate) + "\""));
  CHECK(files_error_key(c) == "(no error)");
  c.upstreams[0].client.ca_file = files.write("garbage.pem", "this is not a certificate\n");
  CHECK(files_error_key(c) == "upstreams[0].ca_file");
  c.upstreams[0].client.ca_file = files.write("empty.pem", "");
  CHECK(files_error_key(c) == "upstreams[0].ca_file");
  c.upstreams[0].client.ca_file = (files.dir / "missing.pem").string();
  CHECK(files_error_key(c) == "upstreams[0].ca_file");
  c.upstreams[0].client.insecure_skip_tls_verify = true;  // the client ignores ca_file then
  CHECK(files_error_key(c) == "(no error)");
}

TEST_CASE("config files: tls_cert/tls_key must load as a server TLS pair") {
  Files files;
  Config c = default_config();
  c.tls_cert = files.write("cert.pem", kCertificate);
  c.tls_key = files.write("key.pem", kPrivateKey);
  CHECK(files_error_key(c) == "(no error)");
  c.tls_key = files.write("bad-key.pem", "nope");
  CHECK(files_error_key(c) == "tls_cert");
}
