#include "proxy/config.h"

#include "cache/pins.h"

#include "common/json_guard.h"
#include "common/image_ref.h"
#include "common/log.h"
#include "common/names.h"
#include "db/postgres_metadata_store.h"
#include "upstream/trust.h"
#include "proxy/auth/htpasswd.h"
#include "proxy/auth/token.h"

#include <tuple>

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/URI.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace regcache::proxy {
namespace {

using nlohmann::json;

constexpr const char* kDockerHubUrl = "https://registry-1.docker.io";

// Reads the keys of one JSON object, refusing any key it was not asked about.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path) : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) throw ConfigError(path_.empty() ? "(top level)" : path_, "must be an object");
  }
  std::string key(const std::string& name) const { return path_.empty() ? name : path_ + "." + name; }
  const json* find(const std::string& name) {
    seen_.insert(name);
    auto it = object_.find(name);
    return it == object_.end() ? nullptr : &*it;
  }
  void read(const std::string& name, std::string& out) {
    if (auto v = find(name)) {
      if (!v->is_string()) throw ConfigError(key(name), "must be a string");
      out = v->get<std::string>();
    }
  }
  void read(const std::string& name, bool& out) {
    if (auto v = find(name)) {
      if (!v->is_boolean()) throw ConfigError(key(name), "must be true or false");
      out = v->get<bool>();
    }
  }
  // Integers within [min, max].
  template <class Int>
  void read(const std::string& name, Int& out, std::int64_t min, std::int64_t max) {
    if (auto v = find(name)) {
      if (!v->is_number_integer()) throw ConfigError(key(name), "must be a whole number");
      auto range = [&](const std::string& value) {
        return ConfigError(key(name), "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                          ", not " + value);
      };
      // An unsigned beyond int64 would wrap to a negative through get<int64_t>.
      if (v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(max))
        throw range(std::to_string(v->get<std::uint64_t>()));
      auto n = v->get<std::int64_t>();
      if (n < min || n > max) throw range(std::to_string(n));
      out = static_cast<Int>(n);
    }
  }
  void read_seconds(const std::string& name, std::chrono::seconds& out, std::int64_t min, std::int64_t max) {
    std::int64_t s = out.count();
    read(name, s, min, max);
    out = std::chrono::seconds(s);
  }
  void read_millis(const std::string& name, std::chrono::milliseconds& out, std::int64_t min, std::int64_t max) {
    std::int64_t ms = out.count();
    read(name, ms, min, max);
    out = std::chrono::milliseconds(ms);
  }
  void read_seconds_as_millis(const std::string& name, std::chrono::milliseconds& out, std::int64_t min,
                              std::int64_t max) {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(out);
    read_seconds(name, s, min, max);
    out = s;
  }
  void refuse_unknown() const {
    for (auto it = object_.begin(); it != object_.end(); ++it)
      // An empty name still has to be named: the error says which key to fix.
      if (!seen_.count(it.key())) throw ConfigError(key(it.key().empty() ? "\"\"" : it.key()), "unknown key");
  }

 private:
  const json& object_;
  std::string path_;
  std::set<std::string> seen_;
};

void check_url(const std::string& key, const std::string& url) {
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception&) {
    throw ConfigError(key, "not a URL: '" + url + "'");
  }
  if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty())
    throw ConfigError(key, "must be an http:// or https:// URL with a host, not '" + url + "'");
  if (!(uri.getPath().empty() || uri.getPath() == "/") || !uri.getQuery().empty() || !uri.getUserInfo().empty())
    throw ConfigError(key, "must be scheme://host[:port] only (credentials go in username/password), not '" + url + "'");
}

// A secret kept in a file of its own: it must not be readable by group or
// others. A trailing newline is not part of it.
std::string read_secret(const std::string& key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ConfigError(key, "cannot read '" + path + "'");
  if (st.st_mode & 077)
    throw ConfigError(key, "'" + path + "' is readable by group or others; chmod 600 it");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw ConfigError(key, "cannot read '" + path + "'");
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) throw ConfigError(key, "'" + path + "' is empty");
  return secret;
}

bool is_docker_hub(const std::string& url) {
  Poco::URI uri(url);
  return uri.getHost() == "registry-1.docker.io" || uri.getHost() == "docker.io" ||
         uri.getHost() == "index.docker.io";
}

// A list of strings, each checked by `valid` (which says why not, or "").
std::vector<std::string> read_string_list(ObjectReader& r, const std::string& name,
                                          const std::function<std::string(const std::string&)>& valid) {
  std::vector<std::string> out;
  const json* list = r.find(name);
  if (!list) return out;
  if (!list->is_array()) throw ConfigError(r.key(name), "must be a list of strings");
  for (const auto& item : *list) {
    if (!item.is_string()) throw ConfigError(r.key(name), "must be a list of strings");
    std::string value = item.get<std::string>();
    if (std::string why = valid(value); !why.empty()) throw ConfigError(r.key(name), "'" + value + "' " + why);
    out.push_back(value);
  }
  return out;
}

std::string check_cidr(const std::string& value) {
  return upstream::parse_network(value) ? "" : "is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8)";
}

std::string check_host_name(const std::string& value) {
  if (value.empty() || value.size() > 253 ||
      value.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") != std::string::npos)
    return "is not a host name (no scheme, port or path)";
  if (value.find(':') != std::string::npos && !upstream::parse_ip(value)) return "is not a host name (no port)";
  return "";
}

UpstreamSettings read_upstream(const json& object, const std::string& path) {
  ObjectReader r(object, path);
  UpstreamSettings s;
  auto& c = s.client;
  r.read("name", c.name);
  r.read("url", c.url);
  if (c.name.empty()) throw ConfigError(r.key("name"), "is required");
  if (c.url.empty()) throw ConfigError(r.key("url"), "is required");
  check_url(r.key("url"), c.url);
  r.read("username", c.username);
  r.read("password", c.password);
  std::string password_file;
  r.read("password_file", password_file);
  if (!password_file.empty()) {
    if (!c.password.empty()) throw ConfigError(r.key("password_file"), "give password or password_file, not both");
    c.password = read_secret(r.key("password_file"), password_file);
  }
  if (c.username.empty() != c.password.empty())
    throw ConfigError(r.key(c.username.empty() ? "username" : "password"), "username and password go together");
  r.read("ca_file", c.ca_file);
  r.read("insecure_skip_tls_verify", c.insecure_skip_tls_verify);
  c.library_prefix = is_docker_hub(c.url);
  r.read("library_prefix", c.library_prefix);
  r.read_seconds("tag_ttl_s", s.tag_ttl, 0, 365LL * 24 * 3600);
  r.read_seconds("negative_ttl_s", s.negative_ttl, 0, 3600);
  r.read_millis("connect_timeout_ms", c.connect_timeout, 1, 600'000);
  r.read_millis("read_timeout_ms", c.read_timeout, 1, 3'600'000);
  r.read("max_connections", c.max_connections, 1, 4096);
  r.read_seconds_as_millis("blob_queue_timeout_s", c.blob_queue_timeout, 1, 7 * 24 * 3600);
  c.allowed_networks = read_string_list(r, "allowed_networks", check_cidr);
  c.token_realm_hosts = read_string_list(r, "token_realm_hosts", check_host_name);
  r.refuse_unknown();
  return s;
}

std::vector<std::string> string_list(const json& value, const std::string& key) {
  if (value.is_string()) return {value.get<std::string>()};
  if (!value.is_array()) throw ConfigError(key, "must be a string or a list of strings");
  std::vector<std::string> out;
  for (const auto& item : value) {
    if (!item.is_string()) throw ConfigError(key, "must be a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

auth::AccessRule read_access_rule(const json& object, const std::string& path) {
  ObjectReader r(object, path);
  auth::AccessRule rule;
  auto repositories = r.find("repositories");
  if (!repositories) throw ConfigError(r.key("repositories"), "is required (a glob such as \"local/**\")");
  rule.repositories = string_list(*repositories, r.key("repositories"));
  for (const auto& glob : rule.repositories)
    if (glob.empty()) throw ConfigError(r.key("repositories"), "must not be empty");
  if (auto users = r.find("users"))
    for (auto& u : string_list(*users, r.key("users"))) rule.users.insert(std::move(u));
  if (auto groups = r.find("groups"))
    for (auto& g : string_list(*groups, r.key("groups"))) rule.groups.insert(std::move(g));
  if (rule.users.empty() && rule.groups.empty())
    throw ConfigError(r.key("users"), "a rule needs users (names, \"anonymous\", \"authenticated\") or groups");
  auto actions = r.find("actions");
  if (!actions) throw ConfigError(r.key("actions"), "is required (pull, push, delete; [] denies)");
  for (const auto& word : string_list(*actions, r.key("actions"))) {
    auto a = auth::parse_action(word);
    if (!a) throw ConfigError(r.key("actions"), "must be pull, push, delete or *, not '" + word + "'");
    rule.actions |= *a;
  }
  r.refuse_unknown();
  return rule;
}

void read_auth(const json& object, auth::AuthSettings& a) {
  ObjectReader r(object, "auth");
  r.read("htpasswd", a.htpasswd);
  if (auto groups = r.find("groups")) {
    if (!groups->is_object()) throw ConfigError("auth.groups", "must map group names to lists of user names");
    for (auto it = groups->begin(); it != groups->end(); ++it)
      for (auto& user : string_list(it.value(), "auth.groups." + it.key())) a.groups[it.key()].insert(std::move(user));
  }
  std::string challenge;
  r.read("challenge", challenge);
  if (challenge == "basic") a.challenge = auth::ChallengeKind::Basic;
  else if (challenge == "token" || challenge.empty()) a.challenge = auth::ChallengeKind::Token;
  else throw ConfigError("auth.challenge", "must be \"token\" or \"basic\", not '" + challenge + "'");
  r.read("token_realm", a.token_realm);
  if (!a.token_realm.empty()) {
    Poco::URI uri;
    try {
      uri = Poco::URI(a.token_realm);
    } catch (const Poco::Exception&) {
      throw ConfigError("auth.token_realm", "not a URL: '" + a.token_realm + "'");
    }
    if ((uri.getScheme() != "http" && uri.getScheme() != "https") || uri.getHost().empty() ||
        a.token_realm.find('"') != std::string::npos)
      throw ConfigError("auth.token_realm", "must be an absolute http(s) URL, not '" + a.token_realm + "'");
  }
  auto plain = [](const std::string& v) { return !v.empty() && v.find_first_of("\"\\\r\n") == std::string::npos; };
  r.read("token_service", a.token_service);
  if (!plain(a.token_service)) throw ConfigError("auth.token_service", "must be a non-empty name without quotes");
  r.read("token_issuer", a.token_issuer);
  if (!plain(a.token_issuer)) throw ConfigError("auth.token_issuer", "must be a non-empty name without quotes");
  r.read_seconds("token_ttl_s", a.token_ttl, 30, 24 * 3600);
  r.read("token_key", a.token_key);
  r.read("allow_basic_over_http", a.allow_basic_over_http);
  r.read_seconds("cache_ttl_s", a.cache_ttl, 0, 3600);
  r.read("failures_per_minute", a.failures_per_minute, 1, 100000);
  r.refuse_unknown();
  // Files are checked here so that a bad one stops the start (exit 2) or
  // refuses the reload, naming the key.
  if (!a.htpasswd.empty()) {
    try {
      auth::Htpasswd::load(a.htpasswd);
    } catch (const auth::HtpasswdError& e) {
      throw ConfigError("auth.htpasswd", e.what());
    }
  }
  if (!a.token_key.empty()) {
    try {
      auth::TokenKey::load(a.token_key);
    } catch (const auth::TokenError& e) {
      throw ConfigError("auth.token_key", e.what());
    }
  }
}

// `metadata`: which store holds the metadata. The password comes from a file
// (like upstream credentials), so the DSN can be logged.
db::MetadataSettings read_metadata(const json& object) {
  ObjectReader r(object, "metadata");
  db::MetadataSettings m;
  std::string backend = "sqlite", password_file;
  r.read("backend", backend);
  if (backend == "postgres") m.backend = db::MetadataBackend::Postgres;
  else if (backend != "sqlite") throw ConfigError(r.key("backend"), "must be sqlite or postgres; not '" + backend + "'");
  r.read("dsn", m.dsn);
  r.read("password_file", password_file);
  r.read("max_connections", m.max_connections, 1, 1000);
  r.refuse_unknown();
  if (m.backend == db::MetadataBackend::Sqlite) {
    if (!m.dsn.empty()) throw ConfigError(r.key("dsn"), "only for backend postgres (sqlite keeps regcache.db in data_dir)");
    if (!password_file.empty()) throw ConfigError(r.key("password_file"), "only for backend postgres");
    return m;
  }
  if (m.dsn.empty()) throw ConfigError(r.key("dsn"), "is required for backend postgres (e.g. \"host=db.example port=5432 dbname=regcache user=regcache\")");
  if (std::string why = db::postgres_dsn_problem(m.dsn); !why.empty()) throw ConfigError(r.key("dsn"), why);
  if (!password_file.empty()) m.password = read_secret(r.key("password_file"), password_file);
  return m;
}

// `cluster`: replicas on one PostgreSQL sharing fills (docs/REPLICAS.md).
// The secret authenticates replicas to each other's internal endpoint.
ClusterSettings read_cluster(const json& object, const db::MetadataSettings& metadata) {
  ObjectReader r(object, "cluster");
  ClusterSettings c;
  c.enabled = true;
  std::string secret_file;
  r.read("advertise_url", c.advertise_url);
  r.read("secret_file", secret_file);
  r.read_seconds("lease_ttl_s", c.lease_ttl, 1, 300);
  r.refuse_unknown();
  if (metadata.backend != db::MetadataBackend::Postgres)
    throw ConfigError("cluster", "needs metadata.backend postgres (the lease lives in the shared database)");
  if (!c.advertise_url.empty()) check_url(r.key("advertise_url"), c.advertise_url);
  if (secret_file.empty())
    throw ConfigError(r.key("secret_file"), "is required (a file holding a shared secret of 16+ characters, chmod 600)");
  c.secret = read_secret(r.key("secret_file"), secret_file);
  if (c.secret.find_first_of("\r\n") != std::string::npos || c.secret.size() < 16 ||
      c.secret.find_first_of(" \t") != std::string::npos)
    throw ConfigError(r.key("secret_file"), "'" + secret_file + "' must hold one line of at least 16 characters without spaces");
  return c;
}

// `blobs.redirect`: {"enabled": bool, "expires_s": 1..604800 (S3's presigning limit)}.
void read_blob_redirect(const json& object, const std::string& path, cache::BlobSettings::Redirect& out) {
  ObjectReader r(object, path);
  r.read("enabled", out.enabled);
  r.read_seconds("expires_s", out.expires, 1, 7 * 24 * 3600);
  r.refuse_unknown();
}

// `blobs`: where blob bytes live. With s3, every key the S3 client needs is
// required, the endpoint is checked like an upstream URL, and the secret comes
// from a file (never from the config itself, never printed).
cache::BlobSettings read_blobs(const json& object) {
  ObjectReader r(object, "blobs");
  cache::BlobSettings b;
  std::string backend = "local", addressing = "path", secret_key_file;
  auto& s3 = b.s3;
  r.read("backend", backend);
  r.read("endpoint", s3.endpoint);
  r.read("bucket", s3.bucket);
  r.read("region", s3.region);
  r.read("access_key", s3.credentials.access_key);
  r.read("secret_key_file", secret_key_file);
  r.read("addressing", addressing);
  r.read("multipart_threshold_bytes", b.multipart_threshold, 5LL << 20, 5LL << 30);
  r.read("part_size_bytes", b.part_size, 5LL << 20, 5LL << 30);
  r.read("local_cache_bytes", b.local_cache_bytes, 0, std::numeric_limits<std::int64_t>::max());
  if (auto redirect = r.find("redirect")) read_blob_redirect(*redirect, r.key("redirect"), b.redirect);
  r.refuse_unknown();
  if (backend == "local") {
    // The documented defaults (etc/regcache.json shows them all) are fine;
    // anything else is a setting meant for s3.
    const cache::BlobSettings d;
    const std::pair<const char*, bool> set[] = {
        {"endpoint", !s3.endpoint.empty()},
        {"bucket", !s3.bucket.empty()},
        {"region", s3.region != d.s3.region},
        {"access_key", !s3.credentials.access_key.empty()},
        {"secret_key_file", !secret_key_file.empty()},
        {"addressing", addressing != "path"},
        {"multipart_threshold_bytes", b.multipart_threshold != d.multipart_threshold},
        {"part_size_bytes", b.part_size != d.part_size},
        {"local_cache_bytes", b.local_cache_bytes != d.local_cache_bytes},
        {"redirect.enabled", b.redirect.enabled}};
    for (const auto& [key, differs] : set)
      if (differs) throw ConfigError(r.key(key), "only for backend s3 (local keeps blobs in data_dir)");
    return b;
  }
  if (backend != "s3") throw ConfigError(r.key("backend"), "must be local or s3; not '" + backend + "'");
  b.backend = cache::BlobBackend::S3;
  if (s3.endpoint.empty()) throw ConfigError(r.key("endpoint"), "is required for backend s3 (e.g. \"https://s3.example.com\")");
  check_url(r.key("endpoint"), s3.endpoint);
  if (s3.bucket.empty()) throw ConfigError(r.key("bucket"), "is required for backend s3");
  if (s3.bucket.size() < 3 || s3.bucket.size() > 63 ||
      s3.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos)
    throw ConfigError(r.key("bucket"), "must be 3-63 characters of a-z 0-9 . -; not '" + s3.bucket + "'");
  if (s3.region.empty() || s3.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
    throw ConfigError(r.key("region"), "must be a region name of a-z 0-9 - (e.g. us-east-1); not '" + s3.region + "'");
  if (s3.credentials.access_key.empty()) throw ConfigError(r.key("access_key"), "is required for backend s3");
  if (s3.credentials.access_key.find_first_of(" \t\r\n/") != std::string::npos)
    throw ConfigError(r.key("access_key"), "must not contain spaces or '/'");
  if (secret_key_file.empty())
    throw ConfigError(r.key("secret_key_file"), "is required for backend s3 (a file holding the secret key, chmod 600)");
  s3.credentials.secret_key = read_secret(r.key("secret_key_file"), secret_key_file);
  if (s3.credentials.secret_key.find_first_of("\r\n") != std::string::npos)
    throw ConfigError(r.key("secret_key_file"), "'" + secret_key_file + "' must hold the secret key on one line");
  if (addressing == "virtual") s3.addressing = s3::Addressing::virtual_host;
  else if (addressing != "path") throw ConfigError(r.key("addressing"), "must be path or virtual; not '" + addressing + "'");
  if (b.multipart_threshold < b.part_size)
    throw ConfigError(r.key("multipart_threshold_bytes"), "must be at least part_size_bytes");
  return b;
}

WarmSettings read_warm(const json& object) {
  ObjectReader r(object, "warm");
  WarmSettings w;
  auto strings = [&](const char* name, std::vector<std::string>& out) {
    if (auto list = r.find(name)) {
      if (!list->is_array()) throw ConfigError(r.key(name), "must be a list of strings");
      for (std::size_t i = 0; i < list->size(); ++i) {
        if (!(*list)[i].is_string())
          throw ConfigError(r.key(name) + "[" + std::to_string(i) + "]", "must be a string");
        out.push_back((*list)[i].get<std::string>());
      }
    }
  };
  strings("references", w.references);
  for (std::size_t i = 0; i < w.references.size(); ++i) {
    std::string error;
    if (!parse_image_ref(w.references[i], error))
      throw ConfigError(r.key("references") + "[" + std::to_string(i) + "]", error);
  }
  strings("platforms", w.platforms);
  for (std::size_t i = 0; i < w.platforms.size(); ++i) {
    std::string error;
    auto p = parse_platforms(w.platforms[i], error);
    if (!p || p->size() != 1)
      throw ConfigError(r.key("platforms") + "[" + std::to_string(i) + "]",
                        p ? "one platform per entry, e.g. \"linux/amd64\"" : error);
  }
  r.read_seconds("interval_s", w.interval, 0, 365LL * 24 * 3600);
  r.read("referrers", w.referrers);
  r.read("newest", w.newest, 0, 1'000'000);
  r.read("username", w.username);
  std::string password_file;
  r.read("password_file", password_file);
  if (!password_file.empty()) w.password = read_secret(r.key("password_file"), password_file);
  if (w.username.empty() != password_file.empty())
    throw ConfigError(r.key(w.username.empty() ? "username" : "password_file"),
                      "username and password_file go together");
  if (w.username.find(':') != std::string::npos) throw ConfigError(r.key("username"), "must not contain ':'");
  r.refuse_unknown();
  return w;
}

}  // namespace

void add_hosted_prefix(Config& config, const std::string& prefix) {
  if (!RepoName::parse(prefix))
    throw ConfigError("hosted", "'" + prefix + "' is not a repository-name prefix (lowercase components separated by '/')");
  if (std::find(config.hosted.begin(), config.hosted.end(), prefix) == config.hosted.end())
    config.hosted.push_back(prefix);
}

const UpstreamSettings& Config::default_upstream_settings() const {
  for (const auto& u : upstreams)
    if (u.client.name == default_upstream) return u;
  throw ConfigError("default_upstream", "names no configured upstream: '" + default_upstream + "'");
}

Config default_config() {
  Config c;
  UpstreamSettings hub;
  hub.client.name = "docker.io";
  hub.client.url = kDockerHubUrl;
  hub.client.library_prefix = true;
  hub.name_from_url = true;
  c.upstreams.push_back(hub);
  c.default_upstream = "docker.io";
  c.hosted = {"local"};
  return c;
}

namespace {
// HOST:PORT ("[::1]:5000" for IPv6); errors name `key`.
std::pair<std::string, std::uint16_t> parse_address(const char* key, const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size())
    throw ConfigError(key, "must be HOST:PORT, not '" + host_port + "'");
  std::string host = host_port.substr(0, colon), port = host_port.substr(colon + 1);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
    throw ConfigError(key, "port must be a number from 0 to 65535, not '" + port + "'");
  return {host, static_cast<std::uint16_t>(std::stoi(port))};
}
}  // namespace

void set_listen(Config& config, const std::string& host_port) {
  std::tie(config.listen_host, config.listen_port) = parse_address("listen", host_port);
}

void set_metrics_listen(Config& config, const std::string& host_port) {
  if (host_port.empty()) {
    config.metrics_host.clear();
    config.metrics_port = 0;
    return;
  }
  std::tie(config.metrics_host, config.metrics_port) = parse_address("metrics_listen", host_port);
}

std::string upstream_name_for_url(const std::string& url) {
  if (is_docker_hub(url)) return "docker.io";
  std::string authority = url.substr(url.find("://") + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  std::transform(authority.begin(), authority.end(), authority.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return authority;
}

void set_default_upstream_url(Config& config, const std::string& url) {
  if (url == "none") {
    config.upstreams.clear();
    config.default_upstream.clear();
    return;
  }
  check_url("upstream", url);
  if (config.upstreams.empty()) {
    // A plain registry given an upstream again: it becomes the default.
    UpstreamSettings u;
    u.client.name = "upstream";
    u.client.internal_networks = config.internal_networks;
    u.name_from_url = true;
    config.upstreams.push_back(u);
    config.default_upstream = "upstream";
  }
  for (auto& u : config.upstreams)
    if (u.client.name == config.default_upstream) {
      u.client.url = url;
      u.client.library_prefix = is_docker_hub(url);
      if (u.name_from_url) {
        std::string name = upstream_name_for_url(url);
        for (const auto& other : config.upstreams)
          if (&other != &u && other.client.name == name)
            throw ConfigError("upstream", "'" + url + "' would be named '" + name +
                                              "', which another configured upstream is already called");
        u.client.name = name;
        config.default_upstream = name;
      }
      return;
    }
  throw ConfigError("default_upstream", "names no configured upstream: '" + config.default_upstream + "'");
}

namespace {

// Where the parser is in the document ("upstreams[0].tag_ttl_s"), kept up to
// date from nlohmann's parser callback so that an error the parser itself
// raises (a number out of range, "1e400") can still name its key.
class KeyTracker {
 public:
  bool on_event(json::parse_event_t event, const json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames_.push_back({false, 0, {}}); break;
      case json::parse_event_t::array_start: frames_.push_back({true, 0, {}}); break;
      case json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) frames_.back().key = parsed.get<std::string>();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        advance();
        break;
      case json::parse_event_t::value: advance(); break;
    }
    return true;
  }
  std::string path() const {
    std::string out;
    for (const auto& f : frames_) {
      if (f.is_array) out += "[" + std::to_string(f.index) + "]";
      else if (!f.key.empty()) out += (out.empty() ? "" : ".") + f.key;
    }
    return out.empty() ? "(file)" : out;
  }

 private:
  void advance() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
  }
  struct Frame {
    bool is_array;
    std::size_t index;
    std::string key;
  };
  std::vector<Frame> frames_;
};

}  // namespace

namespace {

// A share in (0, 1].
double read_share(ObjectReader& r, const std::string& name, double fallback) {
  const json* v = r.find(name);
  if (!v) return fallback;
  if (!v->is_number()) throw ConfigError(r.key(name), "must be a number between 0 and 1");
  double share = v->get<double>();
  if (!(share > 0.0 && share <= 1.0)) throw ConfigError(r.key(name), "must be above 0 and at most 1");
  return share;
}

// max_cache_bytes, min_free_bytes, cache_high/low_watermark, pins.
void read_storage_lifecycle(ObjectReader& r, Config& c) {
  constexpr std::int64_t kMaxBytes = std::int64_t{1} << 62;
  r.read("max_cache_bytes", c.max_cache_bytes, 0, kMaxBytes);
  if (const json* v = r.find("min_free_bytes")) {
    if (v->is_string() && v->get<std::string>() == "auto") {
      c.min_free_bytes.reset();
    } else if (v->is_number_integer()) {
      std::uint64_t n = 0;
      r.read("min_free_bytes", n, 0, kMaxBytes);
      c.min_free_bytes = n;
    } else {
      throw ConfigError("min_free_bytes", "must be \"auto\" or a whole number of bytes");
    }
  }
  c.cache_high_watermark = read_share(r, "cache_high_watermark", c.cache_high_watermark);
  c.cache_low_watermark = read_share(r, "cache_low_watermark", c.cache_low_watermark);
  if (c.cache_low_watermark >= c.cache_high_watermark)
    throw ConfigError(r.find("cache_low_watermark") ? "cache_low_watermark" : "cache_high_watermark",
                      "cache_low_watermark must be below cache_high_watermark");
  c.pins = read_string_list(r, "pins", [](const std::string& pin) {
    std::string why;
    return cache::parse_pin(pin, why) ? std::string() : why;
  });
}

// A `warm` reference as a pin: the namespace is its registry or first path
// component when that names an upstream (how the warm's requests are routed),
// else the default upstream.
std::optional<cache::PinPattern> warm_reference_pin(const Config& config, const std::string& text) {
  std::string error;
  auto ref = parse_image_ref(text, error);
  if (!ref) return std::nullopt;  // validated by the config already
  std::string name = ref->name();
  auto first = name.substr(0, name.find('/'));
  bool names_upstream = name.find('/') != std::string::npos &&
                        std::any_of(config.upstreams.begin(), config.upstreams.end(),
                                    [&](const UpstreamSettings& u) { return u.client.name == first; });
  if (!names_upstream) {
    if (config.upstreams.empty()) return std::nullopt;
    name = config.default_upstream_settings().client.name + "/" + ref->repository;
  }
  std::string pin = name + (ref->digest ? "@" + ref->digest->str() : ":" + (ref->expands() ? "*" : ref->tag));
  std::string why;
  auto parsed = cache::parse_pin(pin, why);
  if (!parsed) log::warn("warm reference " + text + " cannot be pinned: " + why);
  return parsed;
}

}  // namespace

std::vector<cache::PinPattern> configured_pins(const Config& config) {
  std::vector<cache::PinPattern> pins;
  for (const auto& text : config.pins) {
    std::string why;
    if (auto pin = cache::parse_pin(text, why)) pins.push_back(*pin);  // validated by parse_config
  }
  // What the scheduled warm keeps filled is kept: its references join the
  // pins (a tag glob pins every tag of the repository).
  for (const auto& text : config.warm.references)
    if (auto pin = warm_reference_pin(config, text)) pins.push_back(*pin);
  return pins;
}

Config parse_config(const std::string& json_text) {
  // The same budget as any other JSON: a config file is read again on every
  // SIGHUP and must not be able to crash the running server.
  if (auto why = json_budget_violation(json_text, {.max_depth = 64, .max_values = 1'000'000, .allow_comments = true}))
    throw ConfigError("(file)", "refused: " + *why);
  json doc;
  KeyTracker where;
  try {
    doc = json::parse(
        json_text, [&](int, json::parse_event_t event, json& parsed) { return where.on_event(event, parsed); },
        /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::out_of_range& e) {  // "1e400": a number no double holds
    throw ConfigError(where.path(), std::string("number out of range: ") + e.what());
  } catch (const json::exception& e) {
    throw ConfigError("(file)", std::string("not valid JSON: ") + e.what());
  }
  Config c = default_config();
  ObjectReader r(doc, "");
  std::string listen, data_dir, level;
  r.read("listen", listen);
  if (!listen.empty()) set_listen(c, listen);
  r.read("data_dir", data_dir);
  if (r.find("data_dir") && data_dir.empty()) throw ConfigError("data_dir", "must not be empty");
  if (!data_dir.empty()) c.data_dir = data_dir;
  r.read("log_level", level);
  if (!level.empty() && !log::parse_level(level, c.log_level))
    throw ConfigError("log_level", "must be one of debug, info, warn, error; not '" + level + "'");
  std::string log_format, metrics_listen;
  r.read("log_format", log_format);
  if (r.find("log_format") && !log::parse_format(log_format, c.log_format))
    throw ConfigError("log_format", "must be text or json; not '" + log_format + "'");
  r.read("metrics_listen", metrics_listen);
  set_metrics_listen(c, metrics_listen);
  r.read("metrics_enabled", c.metrics_enabled);
  r.read("max_manifest_bytes", c.max_manifest_bytes, 4 << 20, 64 << 20);
  r.read("manifest_memory_bytes", c.manifest_memory_bytes, 0, 1LL << 32);
  r.read("max_connections", c.max_connections, 4, 1'000'000);
  r.read("workers", c.workers, 1, 4096);
  r.read("sendfile", c.sendfile);
  r.read_seconds("client_timeout_s", c.client_timeout, 1, 3600);
  r.read_seconds("keep_alive_timeout_s", c.keep_alive_timeout, 1, 3600);
  r.read_seconds("header_timeout_s", c.header_timeout, 1, 3600);
  r.read("min_body_bytes_per_s", c.min_body_rate, 0, 1LL << 30);
  r.read_seconds("shutdown_grace_s", c.shutdown_grace, 0, 3600);
  r.read_seconds("fill_timeout_s", c.fill_timeout, 1, 7 * 24 * 3600);
  r.read("offline", c.offline);
  r.read("tls_cert", c.tls_cert);
  r.read("tls_key", c.tls_key);
  if (c.tls_cert.empty() != c.tls_key.empty())
    throw ConfigError(c.tls_cert.empty() ? "tls_cert" : "tls_key", "tls_cert and tls_key go together");
  if (auto list = r.find("upstreams")) {
    if (!list->is_array()) throw ConfigError("upstreams", "must be a list of upstreams (empty: a plain registry)");
    c.upstreams.clear();
    std::set<std::string> names;
    for (std::size_t i = 0; i < list->size(); ++i) {
      std::string path = "upstreams[" + std::to_string(i) + "]";
      c.upstreams.push_back(read_upstream((*list)[i], path));
      if (!names.insert(c.upstreams.back().client.name).second)
        throw ConfigError(path + ".name", "duplicate upstream name '" + c.upstreams.back().client.name + "'");
    }
    c.default_upstream = c.upstreams.empty() ? std::string() : c.upstreams.front().client.name;
  }
  r.read("default_upstream", c.default_upstream);
  if (auto list = r.find("hosted")) {
    if (!list->is_array()) throw ConfigError("hosted", "must be a list of repository-name prefixes");
    c.hosted.clear();
    for (const auto& item : *list) {
      if (!item.is_string()) throw ConfigError("hosted", "must be a list of strings");
      add_hosted_prefix(c, item.get<std::string>());
    }
  }
  r.read("delete_enabled", c.delete_enabled);
  r.read("tag_delete_enabled", c.tag_delete_enabled);
  r.read_seconds("upload_ttl_s", c.upload_ttl, 1, 30LL * 24 * 3600);
  r.read("max_upload_sessions", c.max_upload_sessions, 1, 1'000'000);
  r.read("max_upload_sessions_per_client", c.max_upload_sessions_per_client, 1, 1'000'000);
  r.read_seconds("scrub_interval_s", c.scrub_interval, 0, 365LL * 24 * 3600);
  r.read("scrub_rate_bytes_per_s", c.scrub_rate, 0, 1LL << 40);
  r.read("store_reconciliation", c.store_reconciliation);
  if (c.store_reconciliation != "auto" && c.store_reconciliation != "drop-missing" &&
      c.store_reconciliation != "adopt-only")
    throw ConfigError("store_reconciliation",
                      "must be auto, drop-missing or adopt-only; not '" + c.store_reconciliation + "'");
  c.internal_networks = read_string_list(r, "internal_networks", check_cidr);
  for (auto& u : c.upstreams) u.client.internal_networks = c.internal_networks;
  if (auto a = r.find("auth")) read_auth(*a, c.auth);
  if (auto list = r.find("access")) {
    if (!list->is_array()) throw ConfigError("access", "must be a list of rules");
    c.auth.access_configured = true;
    for (std::size_t i = 0; i < list->size(); ++i)
      c.auth.access.push_back(read_access_rule((*list)[i], "access[" + std::to_string(i) + "]"));
  }
  for (const auto& rule : c.auth.access)
    for (const auto& group : rule.groups)
      if (!c.auth.groups.count(group)) throw ConfigError("access", "names group '" + group + "', not in auth.groups");
  if (auto w = r.find("warm")) c.warm = read_warm(*w);
  if (auto m = r.find("metadata")) c.metadata = read_metadata(*m);
  if (auto b = r.find("blobs")) c.blobs = read_blobs(*b);
  if (auto cl = r.find("cluster")) c.cluster = read_cluster(*cl, c.metadata);
  read_storage_lifecycle(r, c);
  r.refuse_unknown();
  if (!c.upstreams.empty()) c.default_upstream_settings();  // validates default_upstream
  else if (!c.default_upstream.empty()) throw ConfigError("default_upstream", "names no configured upstream");
  return c;
}

void check_config_files(const Config& config) {
  static std::once_flag ssl_initialized;
  std::call_once(ssl_initialized, [] { Poco::Net::initializeSSL(); });
  for (std::size_t i = 0; i < config.upstreams.size(); ++i) {
    const auto& c = config.upstreams[i].client;
    if (c.ca_file.empty() || c.insecure_skip_tls_verify) continue;  // the client ignores it then
    std::string key = "upstreams[" + std::to_string(i) + "].ca_file";
    // The TLS context the upstream client builds (upstream/client.cpp), built here.
    Poco::Net::Context::Params params;
    params.verificationMode = Poco::Net::Context::VERIFY_RELAXED;
    params.loadDefaultCAs = false;
    params.caLocation = c.ca_file;
    try {
      Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
    } catch (const Poco::Exception& e) {
      throw ConfigError(key, "'" + c.ca_file + "' is not a readable PEM bundle of CA certificates: " + e.displayText());
    }
  }
  if (!config.tls_cert.empty()) {
    try {
      Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, config.tls_key,
                                                               config.tls_cert, "", Poco::Net::Context::VERIFY_NONE);
    } catch (const Poco::Exception& e) {
      throw ConfigError("tls_cert", "'" + config.tls_cert + "' with key '" + config.tls_key +
                                        "' cannot be loaded: " + e.displayText());
    }
  }
}

std::string cluster_advertise_url(const Config& config) {
  if (!config.cluster.advertise_url.empty()) return config.cluster.advertise_url;
  const std::string& host = config.listen_host;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]")
    throw ConfigError("cluster.advertise_url", "is required when listening on every address (" +
                                                   (host.empty() ? std::string("*") : host) + ")");
  std::string h = host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host;
  return std::string(config.tls_cert.empty() ? "http" : "https") + "://" + h + ":" + std::to_string(config.listen_port);
}

Config load_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("--config", "cannot read '" + path.string() + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str());
}

}  // namespace regcache::proxy
