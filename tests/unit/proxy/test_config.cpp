// Unit tests for configuration parsing and validation (proxy/config.h).
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;
using namespace std::chrono_literals;
using regcache::log::Level;

namespace {

// A document with one upstream whose entry has `extra` added.
std::string with_upstream(const std::string& extra) {
  return R"({"upstreams": [{"name": "hub", "url": "https://registry-1.docker.io")" + extra + "}]}";
}

std::string listen_error(const std::string& value) {
  Config c = default_config();
  try {
    set_listen(c, value);
  } catch (const ConfigError& e) {
    return e.key();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: the built-in defaults") {
  Config c = default_config();
  CHECK(c.listen_host == "127.0.0.1");
  CHECK(c.listen_port == 5000);
  CHECK(c.data_dir == std::filesystem::path("./data"));
  CHECK(c.log_level == Level::Info);
  CHECK(c.max_manifest_bytes == 4u << 20);
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0].client.name == "docker.io");
  CHECK(c.upstreams[0].client.url == "https://registry-1.docker.io");
  CHECK(c.upstreams[0].client.library_prefix);
  CHECK(c.default_upstream == "docker.io");
  CHECK(&c.default_upstream_settings() == &c.upstreams[0]);
}

TEST_CASE("config: every documented key is read") {
  Config c = parse_config(R"(
    // a line comment
    {
      /* a block
         comment */
      "listen": "0.0.0.0:8080",
      "data_dir": "/var/lib/regcache",
      "log_level": "debug",
      "max_manifest_bytes": 8388608,
      "manifest_memory_bytes": 0,
      "max_connections": 100,
      "client_timeout_s": 30,
      "keep_alive_timeout_s": 5,
      "shutdown_grace_s": 0,
      "upstreams": [
        {
          "name": "docker.io",
          "url": "https://registry-1.docker.io",
          "username": "alice",
          "password": "s3cret",
          "ca_file": "/etc/regcache/ca.pem",
          "insecure_skip_tls_verify": true,
          "library_prefix": false,   // explicit beats the Docker Hub default
          "tag_ttl_s": 0,
          "connect_timeout_ms": 2500,
          "read_timeout_ms": 45000,
          "max_connections": 8
        },
        { "name": "ghcr", "url": "https://ghcr.io" }
      ],
      "default_upstream": "ghcr"
    })");

  CHECK(c.listen_host == "0.0.0.0");
  CHECK(c.listen_port == 8080);
  CHECK(c.data_dir == std::filesystem::path("/var/lib/regcache"));
  CHECK(c.log_level == Level::Debug);
  CHECK(c.max_manifest_bytes == 8388608);
  CHECK(c.manifest_memory_bytes == 0);
  CHECK(c.max_connections == 100);
  CHECK(c.client_timeout == 30s);
  CHECK(c.keep_alive_timeout == 5s);
  CHECK(c.shutdown_grace == 0s);

  REQUIRE(c.upstreams.size() == 2);
  const auto& hub = c.upstreams[0];
  CHECK(hub.client.name == "docker.io");
  CHECK(hub.client.url == "https://registry-1.docker.io");
  CHECK(hub.client.username == "alice");
  CHECK(hub.client.password == "s3cret");
  CHECK(hub.client.ca_file == "/etc/regcache/ca.pem");
  CHECK(hub.client.insecure_skip_tls_verify);
  CHECK_FALSE(hub.client.library_prefix);
  CHECK(hub.tag_ttl == 0s);
  CHECK(hub.client.connect_timeout == 2500ms);
  CHECK(hub.client.read_timeout == 45000ms);
  CHECK(hub.client.max_connections == 8);

  const auto& ghcr = c.upstreams[1];
  CHECK(ghcr.client.name == "ghcr");
  CHECK(ghcr.client.url == "https://ghcr.io");
  CHECK(ghcr.client.username.empty());
  CHECK(ghcr.client.password.empty());
  CHECK(ghcr.client.ca_file.empty());
  CHECK_FALSE(ghcr.client.insecure_skip_tls_verify);
  CHECK_FALSE(ghcr.client.library_prefix);
  CHECK(ghcr.tag_ttl == 60s);
  CHECK(ghcr.client.connect_timeout == 10000ms);
  CHECK(ghcr.client.read_timeout == 30000ms);
  CHECK(ghcr.client.max_connections == 32);

  CHECK(c.default_upstream == "ghcr");
  CHECK(&c.default_upstream_settings() == &c.upstreams[1]);
}

TEST_CASE("config: etc/regcache.json parses to exactly the defaults it documents") {
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  REQUIRE(std::filesystem::exists(path));
  Config c = load_config(path);
  Config d = default_config();
  CHECK(c.listen_host == d.listen_host);
  CHECK(c.listen_port == d.listen_port);
  CHECK(c.data_dir == d.data_dir);
  CHECK(c.log_level == d.log_level);
  CHECK(c.max_manifest_bytes == d.max_manifest_bytes);
  CHECK(c.manifest_memory_bytes == d.manifest_memory_bytes);
  CHECK(c.max_connections == d.max_connections);
  CHECK(c.client_timeout == d.client_timeout);
  CHECK(c.keep_alive_timeout == d.keep_alive_timeout);
  CHECK(c.shutdown_grace == d.shutdown_grace);
  CHECK(c.upload_ttl == d.upload_ttl);
  CHECK(c.max_upload_sessions == d.max_upload_sessions);
  CHECK(c.max_upload_sessions_per_client == d.max_upload_sessions_per_client);
  CHECK(c.default_upstream == d.default_upstream);
  REQUIRE(c.upstreams.size() == 1);
  const auto& u = c.upstreams[0];
  const auto& du = d.upstreams[0];
  CHECK(u.client.name == du.client.name);
  CHECK(u.client.url == du.client.url);
  CHECK(u.client.username == du.client.username);
  CHECK(u.client.password == du.client.password);
  CHECK(u.client.ca_file == du.client.ca_file);
  CHECK(u.client.insecure_skip_tls_verify == du.client.insecure_skip_tls_verify);
  CHECK(u.client.library_prefix == du.client.library_prefix);
  CHECK(u.tag_ttl == du.tag_ttl);
  CHECK(u.client.connect_timeout == du.client.connect_timeout);
  CHECK(u.client.read_timeout == du.client.read_timeout);
  CHECK(u.client.max_connections == du.client.max_connections);
  CHECK(u.client.blob_queue_timeout == du.client.blob_queue_timeout);
  CHECK(u.client.allowed_networks == du.client.allowed_networks);
  CHECK(u.client.token_realm_hosts == du.client.token_realm_hosts);
  CHECK(u.client.internal_networks == du.client.internal_networks);
  CHECK(c.internal_networks == d.internal_networks);
}

TEST_CASE("config: an empty document keeps the defaults") {
  Config c = parse_config("{}");
  CHECK(c.listen_port == 5000);
  REQUIRE(c.upstreams.size() == 1);
  CHECK(c.upstreams[0].client.name == "docker.io");
  CHECK(c.default_upstream == "docker.io");
}

TEST_CASE("config: the first upstream is the default unless default_upstream says otherwise") {
  Config c = parse_config(R"({"upstreams": [{"name": "a", "url": "http://a:5000"}, {"name": "b", "url": "http://b"}]})");
  CHECK(c.default_upstream == "a");
  CHECK(c.default_upstream_settings().client.name == "a");
}

TEST_CASE("config: unknown keys name themselves") {
  CHECK(error_key(R"({"bogus": 1})") == "bogus");
  CHECK(error_key(R"({"listen": "127.0.0.1:5000", "Listen": "x"})") == "Listen");
  CHECK(error_key(R"({"upstreams": [{"name": "a", "url": "http://a"}, {"name": "b", "url": "http://b", "bogus": true}]})") ==
        "upstreams[1].bogus");
  // Found by fuzz_config: an empty name was reported as an empty key.
  CHECK(error_key(R"({"": 1})") == "\"\"");
  CHECK(error_key(R"({"upstreams": [{"name": "a", "url": "http://a", "": 1}]})") == "upstreams[0].\"\"");
}

TEST_CASE("config: wrong types name the key") {
  CHECK(error_key(R"({"listen": 5})") == "listen");
  CHECK(error_key(R"({"data_dir": false})") == "data_dir");
  CHECK(error_key(R"({"log_level": 1})") == "log_level");
  CHECK(error_key(R"({"max_connections": "10"})") == "max_connections");
  CHECK(error_key(R"({"max_connections": 10.5})") == "max_connections");
  CHECK(error_key(R"({"client_timeout_s": true})") == "client_timeout_s");
  CHECK(error_key(R"({"upstreams": {"name": "a"}})") == "upstreams");
  CHECK(error_key(R"({"upstreams": ["https://ghcr.io"]})") == "upstreams[0]");
  CHECK(error_key(R"({"default_upstream": 0})") == "default_upstream");
  CHECK(error_key(with_upstream(R"(, "tag_ttl_s": "x")")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key(with_upstream(R"(, "insecure_skip_tls_verify": "yes")")) == "upstreams[0].insecure_skip_tls_verify");
  CHECK(error_key(with_upstream(R"(, "library_prefix": 1)")) == "upstreams[0].library_prefix");
  CHECK(error_key(with_upstream(R"(, "connect_timeout_ms": null)")) == "upstreams[0].connect_timeout_ms");
  CHECK(error_key(R"({"upstreams": [{"name": 5, "url": "https://ghcr.io"}]})") == "upstreams[0].name");
}

TEST_CASE("config: the document must be a JSON object") {
  CHECK(error_key("[]") == "(top level)");
  CHECK(error_key("{") == "(file)");
  CHECK(error_key("") == "(file)");
  CHECK(error_key(R"({"a": 1,})") == "(file)");
}

TEST_CASE("config: impossible values name the key") {
  CHECK(error_key(R"({"max_manifest_bytes": 4194303})") == "max_manifest_bytes");  // below 4 MiB
  CHECK(error_key(R"({"max_manifest_bytes": 67108865})") == "max_manifest_bytes");  // above 64 MiB
  CHECK(error_key(R"({"max_manifest_bytes": 4194304})") == "(no error)");
  CHECK(error_key(R"({"max_manifest_bytes": 67108864})") == "(no error)");
  CHECK(error_key(R"({"max_connections": 3})") == "max_connections");
  CHECK(error_key(R"({"manifest_memory_bytes": -1})") == "manifest_memory_bytes");
  CHECK(error_key(R"({"client_timeout_s": 0})") == "client_timeout_s");
  CHECK(error_key(R"({"log_level": "loud"})") == "log_level");
  CHECK(error_key(R"({"data_dir": ""})") == "data_dir");
  CHECK(error_key(R"({"listen": "localhost"})") == "listen");
  CHECK(error_key(R"({"upstreams": {}})") == "upstreams");
  // An empty list is a plain registry; a default upstream then names nothing.
  CHECK(error_key(R"({"upstreams": []})") == "(no error)");
  CHECK(error_key(R"({"upstreams": [], "default_upstream": "docker.io"})") == "default_upstream");
  CHECK(error_key(R"({"hosted": ["Local"]})") == "hosted");
  CHECK(error_key(R"({"hosted": "local"})") == "hosted");
  CHECK(error_key(R"({"upload_ttl_s": 0})") == "upload_ttl_s");
  CHECK(error_key(R"({"upload_ttl_s": 1})") == "(no error)");
  CHECK(error_key(R"({"max_upload_sessions": 0})") == "max_upload_sessions");
  CHECK(error_key(R"({"max_upload_sessions_per_client": 0})") == "max_upload_sessions_per_client");
  CHECK(error_key(R"({"max_upload_sessions_per_client": "5"})") == "max_upload_sessions_per_client");
  CHECK(error_key(with_upstream(R"(, "tag_ttl_s": -1)")) == "upstreams[0].tag_ttl_s");
  CHECK(error_key(with_upstream(R"(, "max_connections": 0)")) == "upstreams[0].max_connections");
  CHECK(error_key(with_upstream(R"(, "connect_timeout_ms": 0)")) == "upstreams[0].connect_timeout_ms");
}

TEST_CASE("config: upstream URLs must be http or https scheme with host and optional port only") {
  auto url_error = [](const std::string& url) {
    return error_key(R"({"upstreams": [{"name": "u", "url": ")" + url + R"("}]})");
  };
  CHECK(url_error("ftp://x") == "upstreams[0].url");
  CHECK(url_error("https://ghcr.io/v2") == "upstreams[0].url");
  CHECK(url_error("https://ghcr.io/some/path") == "upstreams[0].url");
  CHECK(url_error("https://ghcr.io?x=1") == "upstreams[0].url");
  CHECK(url_error("https://user:pw@ghcr.io") == "upstreams[0].url");
  CHECK(url_error("ghcr.io") == "upstreams[0].url");
  CHECK(url_error("https://") == "upstreams[0].url");
  CHECK(url_error("https://ghcr.io") == "(no error)");
  CHECK(url_error("https://ghcr.io/") == "(no error)");
  CHECK(url_error("http://127.0.0.1:5001") == "(no error)");
}

TEST_CASE("config: upstream entries need a name and a url") {
  CHECK(error_key(R"({"upstreams": [{"url": "https://ghcr.io"}]})") == "upstreams[0].name");
  CHECK(error_key(R"({"upstreams": [{"name": "ghcr"}]})") == "upstreams[0].url");
}

TEST_CASE("config: duplicate upstream names are refused") {
  CHECK(error_key(R"({"upstreams": [{"name": "a", "url": "http://a"}, {"name": "a", "url": "http://b"}]})") ==
        "upstreams[1].name");
}

TEST_CASE("config: default_upstream must name a configured upstream") {
  CHECK(error_key(R"({"default_upstream": "nope"})") == "default_upstream");
  CHECK(error_key(R"({"upstreams": [{"name": "a", "url": "http://a"}], "default_upstream": "docker.io"})") ==
        "default_upstream");
}

TEST_CASE("config: username and password go together") {
  CHECK(error_key(with_upstream(R"(, "username": "alice")")) == "upstreams[0].password");
  CHECK(error_key(with_upstream(R"(, "password": "s3cret")")) == "upstreams[0].username");
  CHECK(error_key(with_upstream(R"(, "username": "alice", "password": "s3cret")")) == "(no error)");
}

TEST_CASE("config: set_listen") {
  Config c = default_config();
  set_listen(c, "[::1]:5000");
  CHECK(c.listen_host == "::1");
  CHECK(c.listen_port == 5000);
  set_listen(c, "0.0.0.0:65535");
  CHECK(c.listen_host == "0.0.0.0");
  CHECK(c.listen_port == 65535);
  set_listen(c, "localhost:0");
  CHECK(c.listen_host == "localhost");
  CHECK(c.listen_port == 0);

  CHECK(listen_error("host") == "listen");
  CHECK(listen_error("h:99999") == "listen");
  CHECK(listen_error("h:65536") == "listen");
  CHECK(listen_error("h:") == "listen");
  CHECK(listen_error(":5000") == "listen");
  CHECK(listen_error("h:-1") == "listen");
  CHECK(listen_error("h:50a") == "listen");
  CHECK(listen_error("h:123456") == "listen");
  CHECK(listen_error("[::1]") == "listen");
  CHECK(listen_error("") == "listen");

  // A refused value leaves the configuration as it was.
  Config unchanged = default_config();
  CHECK_THROWS_AS(set_listen(unchanged, "otherhost:99999"), ConfigError);
  CHECK(unchanged.listen_host == "127.0.0.1");
  CHECK(unchanged.listen_port == 5000);
}

TEST_CASE("config: Docker Hub URLs set library_prefix and others do not") {
  auto prefix_of = [](const std::string& url) {
    Config c = parse_config(R"({"upstreams": [{"name": "u", "url": ")" + url + R"("}]})");
    return c.upstreams.at(0).client.library_prefix;
  };
  CHECK(prefix_of("https://registry-1.docker.io"));
  CHECK(prefix_of("https://index.docker.io"));
  CHECK(prefix_of("https://docker.io"));
  CHECK(prefix_of("https://registry-1.docker.io:443"));
  CHECK_FALSE(prefix_of("https://ghcr.io"));
  CHECK_FALSE(prefix_of("http://127.0.0.1:5001"));
  CHECK_FALSE(prefix_of("https://mirror.gcr.io"));
  CHECK_FALSE(prefix_of("https://docker.io.example.com"));

  // An explicit setting wins either way.
  Config c = parse_config(R"({"upstreams": [{"name": "u", "url": "https://ghcr.io", "library_prefix": true}]})");
  CHECK(c.upstreams[0].client.library_prefix);
}

TEST_CASE("config: host names are case-insensitive when recognising Docker Hub") {
  Config c = parse_config(R"({"upstreams": [{"name": "u", "url": "https://Registry-1.Docker.IO"}]})");
  CHECK(c.upstreams[0].client.library_prefix);
}

TEST_CASE("config: set_default_upstream_url") {
  Config c = default_config();
  set_default_upstream_url(c, "http://127.0.0.1:5001");
  CHECK(c.upstreams[0].client.url == "http://127.0.0.1:5001");
  CHECK_FALSE(c.upstreams[0].client.library_prefix);
  set_default_upstream_url(c, "https://index.docker.io");
  CHECK(c.upstreams[0].client.url == "https://index.docker.io");
  CHECK(c.upstreams[0].client.library_prefix);

  try {
    set_default_upstream_url(c, "ftp://x");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "upstream");
  }
  CHECK(c.upstreams[0].client.url == "https://index.docker.io");  // unchanged

  Config two = parse_config(R"({"upstreams": [{"name": "a", "url": "http://a"}, {"name": "b", "url": "http://b"}],
                                 "default_upstream": "b"})");
  set_default_upstream_url(two, "https://ghcr.io");
  CHECK(two.upstreams[0].client.url == "http://a");
  CHECK(two.upstreams[1].client.url == "https://ghcr.io");
}

TEST_CASE("config: ConfigError message starts with the key") {
  try {
    parse_config(R"({"bogus": 1})");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind("bogus: ", 0) == 0);
  }
}

TEST_CASE("config: --upstream names the built-in upstream after the URL - a name from the file is kept") {
  Config c = default_config();
  set_default_upstream_url(c, "http://127.0.0.1:5001");
  CHECK(c.upstreams[0].client.name == "127.0.0.1:5001");
  CHECK(c.default_upstream == "127.0.0.1:5001");
  CHECK(&c.default_upstream_settings() == &c.upstreams[0]);
  set_default_upstream_url(c, "https://Registry.Example.com");
  CHECK(c.upstreams[0].client.name == "registry.example.com");
  set_default_upstream_url(c, "https://[::1]:5000/");
  CHECK(c.upstreams[0].client.name == "[::1]:5000");
  set_default_upstream_url(c, "https://registry-1.docker.io");
  CHECK(c.upstreams[0].client.name == "docker.io");  // Docker Hub keeps its usual name
  CHECK(c.upstreams[0].client.library_prefix);

  // A plain registry given an upstream again.
  Config plain = default_config();
  set_default_upstream_url(plain, "none");
  set_default_upstream_url(plain, "http://127.0.0.1:6000");
  REQUIRE(plain.upstreams.size() == 1);
  CHECK(plain.upstreams[0].client.name == "127.0.0.1:6000");
  CHECK(plain.default_upstream == "127.0.0.1:6000");

  // The file named it: the administrator's name stays.
  Config named = parse_config(R"({"upstreams": [{"name": "teamreg", "url": "http://a"}]})");
  set_default_upstream_url(named, "http://127.0.0.1:5001");
  CHECK(named.upstreams[0].client.name == "teamreg");
  CHECK(named.default_upstream == "teamreg");

  CHECK(upstream_name_for_url("http://127.0.0.1:5001") == "127.0.0.1:5001");
  CHECK(upstream_name_for_url("https://index.docker.io") == "docker.io");
}

TEST_CASE("config: trust settings - internal_networks, allowed_networks, token_realm_hosts, blob_queue_timeout_s") {
  Config c = parse_config(R"({"internal_networks": ["127.0.0.2/32", "fd00::/8"],
    "upstreams": [{"name": "a", "url": "http://127.0.0.1:1", "allowed_networks": ["10.1.0.0/16", "127.0.0.2"],
                   "token_realm_hosts": ["auth.example.com", "127.0.0.3"], "blob_queue_timeout_s": 120},
                  {"name": "b", "url": "http://127.0.0.1:2"}]})");
  for (const auto& u : c.upstreams)
    CHECK(u.client.internal_networks == std::vector<std::string>{"127.0.0.2/32", "fd00::/8"});
  CHECK(c.upstreams[0].client.allowed_networks == std::vector<std::string>{"10.1.0.0/16", "127.0.0.2"});
  CHECK(c.upstreams[0].client.token_realm_hosts == std::vector<std::string>{"auth.example.com", "127.0.0.3"});
  CHECK(c.upstreams[0].client.blob_queue_timeout == std::chrono::seconds(120));
  CHECK(c.upstreams[1].client.blob_queue_timeout == std::chrono::seconds(600));  // the default
  CHECK(c.upstreams[1].client.allowed_networks.empty());

  // The built-in upstream gets them too, and so does one --upstream adds to a plain registry.
  Config d = parse_config(R"({"internal_networks": ["127.0.0.2"]})");
  CHECK(d.upstreams[0].client.internal_networks == std::vector<std::string>{"127.0.0.2"});
  Config p = parse_config(R"({"internal_networks": ["127.0.0.2"], "upstreams": []})");
  set_default_upstream_url(p, "http://127.0.0.1:5");
  CHECK(p.upstreams[0].client.internal_networks == std::vector<std::string>{"127.0.0.2"});

  CHECK(error_key(R"({"internal_networks": "10.0.0.0/8"})") == "internal_networks");
  CHECK(error_key(R"({"internal_networks": ["10.0.0.0/33"]})") == "internal_networks");
  CHECK(error_key(R"({"internal_networks": ["10.0.0.1/8"]})") == "internal_networks");
  CHECK(error_key(R"({"internal_networks": [1]})") == "internal_networks");
  CHECK(error_key(with_upstream(R"(, "allowed_networks": ["example.com"])")) == "upstreams[0].allowed_networks");
  CHECK(error_key(with_upstream(R"(, "token_realm_hosts": ["https://auth.example.com"])")) ==
        "upstreams[0].token_realm_hosts");
  CHECK(error_key(with_upstream(R"(, "token_realm_hosts": ["auth.example.com:443"])")) ==
        "upstreams[0].token_realm_hosts");
  CHECK(error_key(with_upstream(R"(, "blob_queue_timeout_s": 0)")) == "upstreams[0].blob_queue_timeout_s");
  CHECK(error_key(with_upstream(R"(, "blob_queue_timeout_s": 1.5)")) == "upstreams[0].blob_queue_timeout_s");
}

TEST_CASE("config: HTTP engine keys — defaults, the documented file, reading and ranges") {
  Config d = default_config();
  CHECK(d.max_connections == 20000);
  CHECK(d.workers == 256);
  CHECK(d.header_timeout == 20s);
  CHECK(d.min_body_rate == 1024);
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config documented = load_config(path);
  CHECK(documented.workers == d.workers);
  CHECK(documented.header_timeout == d.header_timeout);
  CHECK(documented.min_body_rate == d.min_body_rate);
  Config c = parse_config(
      R"({"max_connections": 50000, "workers": 8, "header_timeout_s": 2, "min_body_bytes_per_s": 0})");
  CHECK(c.max_connections == 50000);
  CHECK(c.workers == 8);
  CHECK(c.header_timeout == 2s);
  CHECK(c.min_body_rate == 0);
  CHECK(error_key(R"({"workers": 0})") == "workers");
  CHECK(error_key(R"({"workers": 5000})") == "workers");
  CHECK(error_key(R"({"header_timeout_s": 0})") == "header_timeout_s");
  CHECK(error_key(R"({"min_body_bytes_per_s": -1})") == "min_body_bytes_per_s");
  CHECK(error_key(R"({"min_body_bytes_per_s": 1.5})") == "min_body_bytes_per_s");
  CHECK(error_key(R"({"max_connections": 2000000})") == "max_connections");
}
