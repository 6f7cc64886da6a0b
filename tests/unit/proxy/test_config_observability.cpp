#include <doctest/doctest.h>

#include <filesystem>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache;
using namespace regcache::proxy;
using namespace regcache::proxy::test;

TEST_CASE("config observability: log_format - metrics_listen - metrics_enabled") {
  Config d = default_config();
  CHECK(d.log_format == log::Format::Text);
  CHECK(d.metrics_host.empty());
  CHECK(d.metrics_enabled);

  Config c = parse_config(
      R"({"log_format": "json", "metrics_listen": "127.0.0.1:9150", "metrics_enabled": false})");
  CHECK(c.log_format == log::Format::Json);
  CHECK(c.metrics_host == "127.0.0.1");
  CHECK(c.metrics_port == 9150);
  CHECK_FALSE(c.metrics_enabled);

  CHECK(error_key(R"({"log_format": "xml"})") == "log_format");
  CHECK(error_key(R"({"log_format": ""})") == "log_format");
  CHECK(error_key(R"({"metrics_listen": "nocolon"})") == "metrics_listen");
  CHECK(error_key(R"({"metrics_listen": "127.0.0.1:99999"})") == "metrics_listen");
  CHECK(error_key(R"({"metrics_enabled": "yes"})") == "metrics_enabled");
}

TEST_CASE("config observability: etc/regcache.json documents the defaults of the new keys") {
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config c = load_config(path);
  Config d = default_config();
  CHECK(c.log_format == d.log_format);
  CHECK(c.metrics_host == d.metrics_host);
  CHECK(c.metrics_enabled == d.metrics_enabled);
}
