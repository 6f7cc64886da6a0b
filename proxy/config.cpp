#include "proxy/config.h"

#include "common/image_ref.h"
#include "common/names.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
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
      auto n = v->get<std::int64_t>();
      if (n < min || n > max)
        throw ConfigError(key(name), "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                         ", not " + std::to_string(n));
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
  void refuse_unknown() const {
    for (auto it = object_.begin(); it != object_.end(); ++it)
      if (!seen_.count(it.key())) throw ConfigError(key(it.key()), "unknown key");
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
  r.refuse_unknown();
  return s;
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
  c.upstreams.push_back(hub);
  c.default_upstream = "docker.io";
  c.hosted = {"local"};
  return c;
}

void set_listen(Config& config, const std::string& host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size())
    throw ConfigError("listen", "must be HOST:PORT, not '" + host_port + "'");
  std::string host = host_port.substr(0, colon), port = host_port.substr(colon + 1);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
    throw ConfigError("listen", "port must be a number from 0 to 65535, not '" + port + "'");
  config.listen_host = host;
  config.listen_port = static_cast<std::uint16_t>(std::stoi(port));
}

void set_default_upstream_url(Config& config, const std::string& url) {
  if (url == "none") {
    config.upstreams.clear();
    config.default_upstream.clear();
    return;
  }
  if (config.upstreams.empty()) {
    // A plain registry given an upstream again: it becomes the default.
    UpstreamSettings u;
    u.client.name = "upstream";
    config.upstreams.push_back(u);
    config.default_upstream = "upstream";
  }
  check_url("upstream", url);
  for (auto& u : config.upstreams)
    if (u.client.name == config.default_upstream) {
      u.client.url = url;
      u.client.library_prefix = is_docker_hub(url);
      return;
    }
  throw ConfigError("default_upstream", "names no configured upstream: '" + config.default_upstream + "'");
}

Config parse_config(const std::string& json_text) {
  json doc;
  try {
    doc = json::parse(json_text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
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
  r.read("max_manifest_bytes", c.max_manifest_bytes, 4 << 20, 64 << 20);
  r.read("manifest_memory_bytes", c.manifest_memory_bytes, 0, 1LL << 32);
  r.read("max_connections", c.max_connections, 4, 16384);
  r.read_seconds("client_timeout_s", c.client_timeout, 1, 3600);
  r.read_seconds("keep_alive_timeout_s", c.keep_alive_timeout, 1, 3600);
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
  r.read_seconds("upload_ttl_s", c.upload_ttl, 60, 30LL * 24 * 3600);
  if (auto w = r.find("warm")) c.warm = read_warm(*w);
  r.refuse_unknown();
  if (!c.upstreams.empty()) c.default_upstream_settings();  // validates default_upstream
  else if (!c.default_upstream.empty()) throw ConfigError("default_upstream", "names no configured upstream");
  return c;
}

Config load_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError("--config", "cannot read '" + path.string() + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str());
}

}  // namespace regcache::proxy
