// Unit tests for the `metadata` config key (proxy/config.h): which metadata
// store, validated up front with the key named.
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
using regcache::db::MetadataBackend;

TEST_CASE("config metadata: SQLite is the default") {
  Config c = parse_config("{}");
  CHECK(c.metadata.backend == MetadataBackend::Sqlite);
  CHECK(parse_config(R"({"metadata": {"backend": "sqlite"}})").metadata.backend == MetadataBackend::Sqlite);
}

TEST_CASE("config metadata: postgres with a DSN") {
  Config c = parse_config(R"({"metadata": {"backend": "postgres", "dsn": "host=127.0.0.1 dbname=r", "max_connections": 4}})");
  CHECK(c.metadata.backend == MetadataBackend::Postgres);
  CHECK(c.metadata.dsn == "host=127.0.0.1 dbname=r");
  CHECK(c.metadata.max_connections == 4);
  CHECK(c.metadata.password.empty());
}

TEST_CASE("config metadata: mistakes name their key") {
  CHECK(error_key(R"({"metadata": {"backend": "mysql"}})") == "metadata.backend");
  CHECK(error_key(R"({"metadata": {"backend": "postgres"}})") == "metadata.dsn");
  CHECK(error_key(R"({"metadata": {"backend": "postgres", "dsn": "nonsense"}})") == "metadata.dsn");
  CHECK(error_key(R"({"metadata": {"backend": "sqlite", "dsn": "host=x"}})") == "metadata.dsn");
  CHECK(error_key(R"({"metadata": {"backend": "sqlite", "password_file": "/x"}})") == "metadata.password_file");
  CHECK(error_key(R"({"metadata": {"backend": "postgres", "dsn": "host=x", "max_connections": 0}})") ==
        "metadata.max_connections");
  CHECK(error_key(R"({"metadata": {"dns": "host=x"}})") == "metadata.dns");
  CHECK(error_key(R"({"metadata": "postgres"})") == "metadata");
  CHECK(error_key(R"({"metadata": {"backend": "postgres", "dsn": "host=x", "password_file": "/nonexistent/pw"}})") ==
        "metadata.password_file");
}

TEST_CASE("config metadata: a password in the DSN is refused without echoing it") {
  std::string why = error_text(R"({"metadata": {"backend": "postgres", "dsn": "host=x password=hunter2"}})");
  CHECK(why.find("metadata.dsn") == 0);
  CHECK(why.find("password_file") != std::string::npos);
  CHECK(why.find("hunter2") == std::string::npos);
  CHECK(error_key(R"({"metadata": {"backend": "postgres", "dsn": "postgresql://u:hunter2@h/db"}})") == "metadata.dsn");
}

TEST_CASE("config metadata: a DSN libpq cannot parse is refused without echoing its password") {
  // libpq's parse errors quote the offending text, for some URI mistakes the
  // whole URI: the config error (stderr, the journal) must not carry it.
  for (const char* dsn : {"postgresql://u:hunter2@[h/db", "postgresql://u:hunter2@h/db?bogus=1",
                          "postgresql://u:hunter2%zz@h/db", "host=h password='hunter2"}) {
    std::string why = error_text(std::string(R"({"metadata": {"backend": "postgres", "dsn": ")") + dsn + "\"}}");
    CHECK_MESSAGE(why.find("metadata.dsn") == 0, why);
    CHECK_MESSAGE(why.find("hunter2") == std::string::npos, why);
  }
}

TEST_CASE("config metadata: the password comes from a private file") {
  std::string dir = (std::filesystem::temp_directory_path() / "regcache-cfgmeta-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()));
  auto file = std::filesystem::path(dir) / "pw";
  std::ofstream(file) << "s3cret\n";
  ::chmod(file.c_str(), 0600);
  std::string json = R"({"metadata": {"backend": "postgres", "dsn": "host=x", "password_file": ")" + file.string() + "\"}}";
  CHECK(parse_config(json).metadata.password == "s3cret");
  ::chmod(file.c_str(), 0644);
  CHECK(error_key(json) == "metadata.password_file");
  std::filesystem::remove_all(dir);
}
