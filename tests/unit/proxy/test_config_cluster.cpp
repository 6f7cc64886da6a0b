// Unit tests for the `cluster` config key (proxy/config.h, docs/REPLICAS.md):
// replicas on one PostgreSQL sharing fills. Validated up front with the key
// named; the shared secret read from a private file and never echoed.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;

namespace {

const char* kSecret = "0123456789abcdef-cluster-secret";

// A temporary directory with a secret file in it (mode `mode`), removed at the end.
struct ClusterSecret {
  std::filesystem::path dir;
  std::filesystem::path file;
  explicit ClusterSecret(const std::string& content, mode_t mode = 0600) {
    std::string d = (std::filesystem::temp_directory_path() / "regcache-cfgcluster-XXXXXX").string();
    REQUIRE(::mkdtemp(d.data()));
    dir = d;
    file = dir / "secret";
    std::ofstream(file) << content;
    ::chmod(file.c_str(), mode);
  }
  ~ClusterSecret() { std::filesystem::remove_all(dir); }
};

const std::string kPostgres = R"("metadata": {"backend": "postgres", "dsn": "host=127.0.0.1 port=5432 dbname=r user=r"})";

// A config with PostgreSQL metadata and a `cluster` object of `cluster_body` (inside the braces).
std::string with_cluster(const std::string& cluster_body, const std::string& extra = "") {
  return "{" + kPostgres + extra + R"(, "cluster": {)" + cluster_body + "}}";
}

std::string secret_key(const std::filesystem::path& file) { return R"("secret_file": ")" + file.string() + "\""; }

}  // namespace

TEST_CASE("config cluster: off by default") {
  Config c = parse_config("{}");
  CHECK_FALSE(c.cluster.enabled);
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  CHECK_FALSE(load_config(path).cluster.enabled);
}

TEST_CASE("config cluster: every key read - the advertise URL defaults to the listen address") {
  ClusterSecret secret(std::string(kSecret) + "\n");
  Config c = parse_config(with_cluster(secret_key(secret.file) +
                                       R"(, "advertise_url": "http://10.1.2.3:5000", "lease_ttl_s": 12)"));
  CHECK(c.cluster.enabled);
  CHECK(c.cluster.secret == kSecret);
  CHECK(c.cluster.advertise_url == "http://10.1.2.3:5000");
  CHECK(c.cluster.lease_ttl == std::chrono::seconds(12));
  CHECK(cluster_advertise_url(c) == "http://10.1.2.3:5000");

  Config d = parse_config(with_cluster(secret_key(secret.file), R"(, "listen": "127.0.0.2:5123")"));
  CHECK(d.cluster.lease_ttl == std::chrono::seconds(5));
  CHECK(cluster_advertise_url(d) == "http://127.0.0.2:5123");
  Config any = parse_config(with_cluster(secret_key(secret.file), R"(, "listen": "0.0.0.0:5000")"));
  try {
    cluster_advertise_url(any);
    FAIL("no error for an advertise URL on 0.0.0.0");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "cluster.advertise_url");
  }
}

TEST_CASE("config cluster: mistakes name their key") {
  ClusterSecret secret(kSecret);
  const std::string s = secret_key(secret.file);
  // SQLite metadata has no shared database for the lease.
  CHECK(error_key(R"({"cluster": {)" + s + "}}") == "cluster");
  CHECK(error_key(with_cluster("")) == "cluster.secret_file");
  CHECK(error_key(with_cluster(s + R"(, "lease_ttl_s": 0)")) == "cluster.lease_ttl_s");
  CHECK(error_key(with_cluster(s + R"(, "lease_ttl_s": 301)")) == "cluster.lease_ttl_s");
  CHECK(error_key(with_cluster(s + R"(, "lease_ttl_s": "5")")) == "cluster.lease_ttl_s");
  CHECK(error_key(with_cluster(s + R"(, "advertise": "http://127.0.0.1:1")")) == "cluster.advertise");
  for (const char* url : {"127.0.0.1:5000", "ftp://127.0.0.1", "http://127.0.0.1:5000/x", "http://u:p@127.0.0.1"})
    CHECK_MESSAGE(error_key(with_cluster(s + R"(, "advertise_url": ")" + url + "\"")) == "cluster.advertise_url", url);
  CHECK(error_key("{" + kPostgres + R"(, "cluster": true})") == "cluster");
}

TEST_CASE("config cluster: the secret file must be private, one line of 16+ characters, and is never echoed") {
  CHECK(error_key(with_cluster(R"("secret_file": "/nonexistent/regcache-cluster")")) == "cluster.secret_file");
  ClusterSecret empty("");
  CHECK(error_key(with_cluster(secret_key(empty.file))) == "cluster.secret_file");
  ClusterSecret short_one("short-secret");
  CHECK(error_key(with_cluster(secret_key(short_one.file))) == "cluster.secret_file");
  ClusterSecret two_lines(std::string(kSecret) + "\nsecond-line-of-it\n");
  CHECK(error_key(with_cluster(secret_key(two_lines.file))) == "cluster.secret_file");
  ClusterSecret shared(kSecret, 0644);
  CHECK(error_key(with_cluster(secret_key(shared.file))) == "cluster.secret_file");
  ClusterSecret spaced("0123456789 abcdef secret");
  std::string text = error_text(with_cluster(secret_key(spaced.file)));
  CHECK(text.find("cluster.secret_file") == 0);
  CHECK(text.find("abcdef") == std::string::npos);
}
