// Unit tests for the `blobs` config key (proxy/config.h): which blob store,
// validated up front with the key named, the S3 secret read from a private
// file and never echoed.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config_errors.h"
#include "proxy/config.h"
#include "cache/tiered_blob_store.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;
using regcache::cache::BlobBackend;

namespace {

// A temporary directory with a secret file in it (mode 0600), removed at the end.
struct SecretFile {
  std::filesystem::path dir;
  std::filesystem::path file;
  explicit SecretFile(const std::string& content, mode_t mode = 0600) {
    std::string d = (std::filesystem::temp_directory_path() / "regcache-cfgblobs-XXXXXX").string();
    REQUIRE(::mkdtemp(d.data()));
    dir = d;
    file = dir / "secret";
    std::ofstream(file) << content;
    ::chmod(file.c_str(), mode);
  }
  ~SecretFile() { std::filesystem::remove_all(dir); }
};

// A valid s3 `blobs` object with `extra` keys added (",\"k\": v" form) and the secret file.
std::string s3_config(const std::filesystem::path& secret, const std::string& extra = "") {
  return R"({"blobs": {"backend": "s3", "endpoint": "http://127.0.0.1:7480", "bucket": "regcache-blobs",
             "access_key": "AKIDEXAMPLE", "secret_key_file": ")" +
         secret.string() + "\"" + extra + "}}";
}

}  // namespace

TEST_CASE("config blobs: the local store is the default") {
  CHECK(parse_config("{}").blobs.backend == BlobBackend::Local);
  CHECK(parse_config(R"({"blobs": {"backend": "local"}})").blobs.backend == BlobBackend::Local);
  CHECK(parse_config(R"({"blobs": {}})").blobs.backend == BlobBackend::Local);
  // The documented defaults spelled out (as etc/regcache.json does) are no s3 settings.
  CHECK(parse_config(R"({"blobs": {"backend": "local", "endpoint": "", "bucket": "", "region": "us-east-1",
                         "access_key": "", "secret_key_file": "", "addressing": "path",
                         "multipart_threshold_bytes": 67108864, "part_size_bytes": 16777216}})")
            .blobs.backend == BlobBackend::Local);
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  CHECK(load_config(path).blobs.backend == BlobBackend::Local);
}

TEST_CASE("config blobs: s3 with every key") {
  SecretFile secret("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n");
  Config c = parse_config(s3_config(secret.file, R"(, "region": "eu-west-1", "addressing": "virtual",
                          "multipart_threshold_bytes": 134217728, "part_size_bytes": 8388608)"));
  CHECK(c.blobs.backend == BlobBackend::S3);
  CHECK(c.blobs.s3.endpoint == "http://127.0.0.1:7480");
  CHECK(c.blobs.s3.bucket == "regcache-blobs");
  CHECK(c.blobs.s3.region == "eu-west-1");
  CHECK(c.blobs.s3.credentials.access_key == "AKIDEXAMPLE");
  CHECK(c.blobs.s3.credentials.secret_key == "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  CHECK(c.blobs.s3.addressing == regcache::s3::Addressing::virtual_host);
  CHECK(c.blobs.multipart_threshold == 128u << 20);
  CHECK(c.blobs.part_size == 8u << 20);
}

TEST_CASE("config blobs: s3 defaults: region us-east-1, path-style addressing") {
  SecretFile secret("k");
  Config c = parse_config(s3_config(secret.file));
  CHECK(c.blobs.s3.region == "us-east-1");
  CHECK(c.blobs.s3.addressing == regcache::s3::Addressing::path);
  CHECK(c.blobs.multipart_threshold == 64u << 20);
  CHECK(c.blobs.part_size == 16u << 20);
}

TEST_CASE("config blobs: mistakes name their key") {
  SecretFile secret("k");
  const std::string f = secret.file.string();
  CHECK(error_key(R"({"blobs": {"backend": "gcs"}})") == "blobs.backend");
  CHECK(error_key(R"({"blobs": {"backend": "local", "bucket": "b"}})") == "blobs.bucket");
  CHECK(error_key(R"({"blobs": {"bucket": "regcache-blobs"}})") == "blobs.bucket");
  CHECK(error_key(R"({"blobs": {"backend": "local", "endpoint": "http://127.0.0.1:1"}})") == "blobs.endpoint");
  CHECK(error_key(R"({"blobs": {"backend": "local", "addressing": "virtual"}})") == "blobs.addressing");
  CHECK(error_key(R"({"blobs": {"backend": "local", "part_size_bytes": 6291456}})") == "blobs.part_size_bytes");
  CHECK(error_key(R"({"blobs": {"bakend": "s3"}})") == "blobs.bakend");
  CHECK(error_key(R"({"blobs": "s3"})") == "blobs");
  CHECK(error_key(s3_config(secret.file, R"(, "sekret": "x")")) == "blobs.sekret");
  // Each required key of backend s3, missing.
  CHECK(error_key(R"({"blobs": {"backend": "s3", "bucket": "bb1", "access_key": "a", "secret_key_file": ")" + f +
                  "\"}}") == "blobs.endpoint");
  CHECK(error_key(R"({"blobs": {"backend": "s3", "endpoint": "http://127.0.0.1:7480", "access_key": "a",
                      "secret_key_file": ")" + f + "\"}}") == "blobs.bucket");
  CHECK(error_key(R"({"blobs": {"backend": "s3", "endpoint": "http://127.0.0.1:7480", "bucket": "bb1",
                      "secret_key_file": ")" + f + "\"}}") == "blobs.access_key");
  CHECK(error_key(R"({"blobs": {"backend": "s3", "endpoint": "http://127.0.0.1:7480", "bucket": "bb1",
                      "access_key": "a"}})") == "blobs.secret_key_file");
  // Bad values.
  for (const char* url : {"127.0.0.1:7480", "ftp://127.0.0.1", "http://", "http://127.0.0.1:7480/bucket",
                          "http://u:p@127.0.0.1:7480", "http://127.0.0.1:7480/?x=1", "not a url"}) {
    std::string json = R"({"blobs": {"backend": "s3", "endpoint": ")" + std::string(url) +
                       R"(", "bucket": "bb1", "access_key": "a", "secret_key_file": ")" + f + "\"}}";
    CHECK_MESSAGE(error_key(json) == "blobs.endpoint", url);
  }
  for (const char* bucket : {"ab", "Upper", "with_underscore", "with/slash"}) {
    std::string json = R"({"blobs": {"backend": "s3", "endpoint": "http://127.0.0.1:7480", "bucket": ")" +
                       std::string(bucket) + R"(", "access_key": "a", "secret_key_file": ")" + f + "\"}}";
    CHECK_MESSAGE(error_key(json) == "blobs.bucket", bucket);
  }
  CHECK(error_key(s3_config(secret.file, R"(, "addressing": "dns")")) == "blobs.addressing");
  CHECK(error_key(s3_config(secret.file, R"(, "region": "")")) == "blobs.region");
  CHECK(error_key(s3_config(secret.file, R"(, "region": "us east")")) == "blobs.region");
  CHECK(error_key(s3_config(secret.file, R"(, "part_size_bytes": 1048576)")) == "blobs.part_size_bytes");
  CHECK(error_key(s3_config(secret.file, R"(, "part_size_bytes": 33554432, "multipart_threshold_bytes": 16777216)")) ==
        "blobs.multipart_threshold_bytes");
  CHECK(error_key(s3_config(secret.file, R"(, "bucket": 5)")) == "blobs.bucket");
}

TEST_CASE("config blobs: the secret key file must be readable, private and not empty") {
  CHECK(error_key(s3_config("/nonexistent/regcache-secret")) == "blobs.secret_key_file");
  SecretFile empty("");
  CHECK(error_key(s3_config(empty.file)) == "blobs.secret_key_file");
  SecretFile only_newline("\n");
  CHECK(error_key(s3_config(only_newline.file)) == "blobs.secret_key_file");
  SecretFile two_lines("first\nsecond\n");
  CHECK(error_key(s3_config(two_lines.file)) == "blobs.secret_key_file");
  SecretFile shared("k", 0644);
  CHECK(error_key(s3_config(shared.file)) == "blobs.secret_key_file");
  if (::geteuid() != 0) {  // root reads a 0000 file anyway
    SecretFile unreadable("k", 0000);
    CHECK(error_key(s3_config(unreadable.file)) == "blobs.secret_key_file");
  }
}

TEST_CASE("config blobs: no error message carries the secret key") {
  // Every refusal after the secret was read (and of the file itself) says
  // what is wrong without the key's bytes.
  SecretFile secret("hunter2-secret\nsecond line\n");
  CHECK(error_text(s3_config(secret.file)).find("hunter2") == std::string::npos);
  SecretFile good("hunter2-secret\n");
  for (const char* extra : {R"(, "addressing": "dns")", R"(, "part_size_bytes": 1)", R"(, "unknown": 1)"}) {
    std::string why = error_text(s3_config(good.file, extra));
    CHECK_MESSAGE(why.find("hunter2") == std::string::npos, why);
    CHECK(why != "(no error)");
  }
  SecretFile shared("hunter2-secret\n", 0644);
  CHECK(error_text(s3_config(shared.file)).find("hunter2") == std::string::npos);
}

TEST_CASE("config blobs: local_cache_bytes puts a local tier in front of s3 (0, the default: none)") {
  SecretFile secret("k");
  CHECK(parse_config(s3_config(secret.file)).blobs.local_cache_bytes == 0);
  Config c = parse_config(s3_config(secret.file, R"(, "local_cache_bytes": 1073741824)"));
  CHECK(c.blobs.local_cache_bytes == 1u << 30);
  // Opening sends nothing to the endpoint.
  char tmpl[] = "/tmp/regcache-tier-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  const std::filesystem::path dir = tmpl;
  {
    auto tiered = regcache::cache::open_blob_store(c.blobs, dir);
    CHECK(dynamic_cast<regcache::cache::TieredBlobStore*>(tiered.get()));
    CHECK(std::filesystem::is_directory(dir / "blob-cache"));
    auto plain = regcache::cache::open_blob_store(parse_config(s3_config(secret.file)).blobs, dir);
    CHECK_FALSE(dynamic_cast<regcache::cache::TieredBlobStore*>(plain.get()));
  }
  std::filesystem::remove_all(dir);
  CHECK(error_key(s3_config(secret.file, R"(, "local_cache_bytes": -1)")) == "blobs.local_cache_bytes");
  CHECK(error_key(s3_config(secret.file, R"(, "local_cache_bytes": "1G")")) == "blobs.local_cache_bytes");
  CHECK(error_key(R"({"blobs": {"backend": "local", "local_cache_bytes": 1048576}})") == "blobs.local_cache_bytes");
  CHECK(parse_config(R"({"blobs": {"backend": "local", "local_cache_bytes": 0}})").blobs.backend == BlobBackend::Local);
}

TEST_CASE("config blobs: redirect is off by default, s3 only, and its mistakes name their key") {
  SecretFile secret("k");
  auto off = parse_config(s3_config(secret.file)).blobs.redirect;
  CHECK_FALSE(off.enabled);
  CHECK(off.expires == std::chrono::seconds(1200));
  auto on = parse_config(s3_config(secret.file, R"(, "redirect": {"enabled": true, "expires_s": 300})")).blobs.redirect;
  CHECK(on.enabled);
  CHECK(on.expires == std::chrono::seconds(300));
  CHECK(parse_config(s3_config(secret.file, R"(, "redirect": {"enabled": true})")).blobs.redirect.expires ==
        std::chrono::seconds(1200));
  // The documented default spelled out is fine with the local store; enabling it is not.
  CHECK(parse_config(R"({"blobs": {"redirect": {"enabled": false, "expires_s": 1200}}})").blobs.backend ==
        BlobBackend::Local);
  CHECK(error_key(R"({"blobs": {"redirect": {"enabled": true}}})") == "blobs.redirect.enabled");
  CHECK(error_text(R"({"blobs": {"redirect": {"enabled": true}}})").find("only for backend s3") != std::string::npos);
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": true)")) == "blobs.redirect");
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": {"enabled": "yes"})")) == "blobs.redirect.enabled");
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": {"expires_s": 0})")) == "blobs.redirect.expires_s");
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": {"expires_s": 604801})")) == "blobs.redirect.expires_s");
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": {"expires_s": "1200"})")) == "blobs.redirect.expires_s");
  CHECK(error_key(s3_config(secret.file, R"(, "redirect": {"enable": true})")) == "blobs.redirect.enable");
}
