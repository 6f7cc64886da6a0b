#pragma once
// regcache's configuration: a JSON file (comments allowed) whose every key and
// default is documented in etc/regcache.json, overridden by command-line flags.
// Validation is strict: an unknown key, a wrong type or an impossible value is
// a ConfigError naming the key, and regcache refuses to start.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/log.h"
#include "cache/open_blob_store.h"
#include "cache/pins.h"
#include "db/open_metadata_store.h"
#include "proxy/auth/settings.h"
#include "upstream/client.h"

namespace regcache::proxy {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& key, const std::string& why) : std::runtime_error(key + ": " + why), key_(key) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

struct UpstreamSettings {
  upstream::UpstreamConfig client;
  // True for an upstream the configuration file did not name (the built-in
  // Docker Hub default): --upstream URL then names it after the URL.
  bool name_from_url = false;
  std::chrono::seconds tag_ttl{60};
  std::chrono::seconds negative_ttl{10};
};

// Scheduled pre-filling (the `warm` key): the service warms these references
// through its own listener right after start-up and then every `interval`
// (0: only at start-up). Reloaded by SIGHUP.
struct WarmSettings {
  std::vector<std::string> references;  // the syntax of `regcache warm` (common/image_ref.h)
  std::chrono::seconds interval{3600};
  std::vector<std::string> platforms;   // "os/arch[/variant]"; empty: every platform of an index
  bool referrers = false;
  std::size_t newest = 0;               // for ":*" and glob references; 0: every matching tag
  std::string username;                 // Basic credentials for the own listener ("" = anonymous)
  std::string password;                 // read from warm.password_file
};

// Replicas sharing one PostgreSQL (`cluster`, docs/REPLICAS.md): the fill
// lease and the internal endpoint other replicas stream a fill from. Not
// reloaded by SIGHUP.
struct ClusterSettings {
  bool enabled = false;                // `cluster` present
  std::string advertise_url;           // how other replicas reach this one; "" = from the listen address
  std::string secret;                  // read from cluster.secret_file; never printed
  std::chrono::seconds lease_ttl{5};   // a lease not renewed for this long is free
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 5000;
  std::filesystem::path data_dir = "./data";
  // Where metadata lives (`metadata`): SQLite in data_dir (default) or a
  // PostgreSQL server several replicas share. Not reloaded by SIGHUP.
  db::MetadataSettings metadata;
  // Where blob bytes live (`blobs`): the local store in data_dir (default) or
  // an S3 bucket several replicas share. Not reloaded by SIGHUP.
  cache::BlobSettings blobs;
  ClusterSettings cluster;
  log::Level log_level = log::Level::Info;
  log::Format log_format = log::Format::Text;  // reloadable
  // /metrics, /healthz and /readyz on a listener of their own too; empty
  // host: only on the main listener.
  std::string metrics_host;
  std::uint16_t metrics_port = 0;
  bool metrics_enabled = true;      // false: no /metrics anywhere, nothing recorded (bench: metrics off)
  std::size_t max_manifest_bytes = 4 << 20;
  std::size_t manifest_memory_bytes = 16 << 20;
  unsigned max_connections = 20000;  // open client connections (idle ones cost no thread)
  unsigned workers = 256;            // threads serving requests at once
  bool sendfile = true;              // false: blob bodies are read and written, never sendfile(2)
  std::chrono::seconds client_timeout{60};
  std::chrono::seconds keep_alive_timeout{15};
  std::chrono::seconds header_timeout{20};  // a whole request head must arrive within this
  std::uint64_t min_body_rate = 1024;       // bytes/s a request body averages after 10 s, and a response over the
                                            // time spent waiting for its client; 0: no minimum
  std::chrono::seconds shutdown_grace{10};
  std::chrono::seconds fill_timeout{3600};
  std::string tls_cert;  // PEM certificate (chain) to serve HTTPS with; empty: plain HTTP
  std::string tls_key;   // its PEM private key
  bool offline = false;  // never contact any upstream
  std::vector<UpstreamSettings> upstreams;  // empty: a plain registry, everything hosted
  std::string default_upstream;
  std::vector<std::string> hosted;  // repository-name prefixes that live here
  bool delete_enabled = true;
  bool tag_delete_enabled = true;
  std::chrono::seconds upload_ttl{3600};      // idle upload sessions expire after this
  std::size_t max_upload_sessions = 1000;           // open upload sessions, all clients together
  std::size_t max_upload_sessions_per_client = 100;  // open upload sessions per client address
  // CIDRs counted as internal by every upstream's trust rules (upstream/trust.h);
  // copied into each upstream's client settings.
  std::vector<std::string> internal_networks;
  auth::AuthSettings auth;  // `auth` and `access`: client users, tokens and access rules
  WarmSettings warm;
  // Storage cap and pins (cache/eviction_worker.h); all reloadable by SIGHUP.
  std::uint64_t max_cache_bytes = 0;            // cap on mirrored content; 0: no byte cap
  std::optional<std::uint64_t> min_free_bytes;  // free space to keep; nullopt ("auto"): 5% of the fs, at most 4 GiB
  double cache_high_watermark = 0.95;           // evict above this share of the cap ...
  double cache_low_watermark = 0.90;            // ... down to this one
  std::vector<std::string> pins;                // references never evicted (cache/pins.h)
  // Background scrub (cache/store_maintenance.h scrub_objects with repair):
  // every scrub_interval (0: never), at most scrub_rate bytes/s (0: unlimited).
  std::chrono::seconds scrub_interval{0};
  std::uint64_t scrub_rate = 32ull << 20;
  // What start-up reconciliation may conclude from this data dir's blob store
  // (cache::ReconcilePolicy): "auto" (drop-missing while the metadata is the
  // SQLite file in the data dir, adopt-only for shared metadata),
  // "drop-missing" or "adopt-only". Read at start-up only.
  std::string store_reconciliation = "auto";

  const UpstreamSettings& default_upstream_settings() const;
};

// The pins eviction honours: `pins`, plus every `warm` reference (in the
// namespace its requests are routed to; a tag glob pins every tag).
std::vector<cache::PinPattern> configured_pins(const Config& config);

// The built-in defaults: Docker Hub as the only upstream.
Config default_config();
// Parses and validates a configuration document on top of the defaults.
Config parse_config(const std::string& json_text);
Config load_config(const std::filesystem::path& path);
// Loads what the configuration names on disk the way the server will (each
// upstream's ca_file as a TLS trust store, tls_cert/tls_key as a server
// context); throws ConfigError naming the key of the first that fails. Run at
// start-up and before a reload is applied, so a bad file is refused up front.
void check_config_files(const Config& config);

// The URL other replicas reach this one at: cluster.advertise_url, or
// http(s)://listen_host:listen_port when that names one address. Throws
// ConfigError("cluster.advertise_url") when listening on every address.
std::string cluster_advertise_url(const Config& config);

// Command-line overrides; each validates like the file does.
void set_listen(Config& config, const std::string& host_port);
// "none" removes every upstream: a plain registry. An upstream the file did
// not name (the built-in default) is renamed after the URL: host[:port] as
// written, or "docker.io" for Docker Hub's hosts, so the cache namespace and
// OCI-Namespace follow the registry. A name from the file is kept.
void set_default_upstream_url(Config& config, const std::string& url);
// The namespace --upstream gives `url` (http(s)://host[:port]).
std::string upstream_name_for_url(const std::string& url);
// "" turns the separate metrics listener off.
void set_metrics_listen(Config& config, const std::string& host_port);
void add_hosted_prefix(Config& config, const std::string& prefix);

}  // namespace regcache::proxy
