#include "support/replica_cluster.h"

#include <sys/stat.h>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/postgres_cluster.h"

namespace regcache::test {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string ReplicaCluster::kSecret = "lease-test-secret-0123456789";

ReplicaCluster::ReplicaCluster(const std::string& upstream_url, const std::string& database_prefix,
                               ReplicaClusterOptions options) {
  PostgresCluster& pg = shared_test_cluster();
  database_ = pg.create_database(database_prefix);
  for (int i = 0; i < options.replicas; ++i) {
    const fs::path secret = tmp_ / ("cluster-secret-" + std::to_string(i));
    write_file(secret, (options.secrets.empty() ? kSecret : options.secrets.at(static_cast<std::size_t>(i))) + "\n");
    ::chmod(secret.c_str(), 0600);
    json config = regcache_config(upstream_url);
    config["metadata"] = {{"backend", "postgres"}, {"dsn", pg.dsn(database_)}};
    config["cluster"] = {{"secret_file", secret.string()}, {"lease_ttl_s", options.lease_ttl_s}};
    if (options.configure) options.configure(config, i);
    const fs::path dir = tmp_ / ("r" + std::to_string(i));
    if (options.shared_data_dir) {
      // `dir`/data as a link to one shared dir, so that the replicas share it.
      fs::create_directories(dir);
      fs::create_directories(tmp_ / "shared");
      fs::create_directory_symlink(tmp_ / "shared", dir / "data");
    }
    replicas_.push_back(std::make_unique<RegcacheServer>(dir, RegcacheOptions{upstream_url, config, {}}));
  }
}

ReplicaCluster::~ReplicaCluster() {
  replicas_.clear();  // stopped before their database goes
  try {
    shared_test_cluster().drop_database(database_);
  } catch (const std::exception&) {
  }
}

int ReplicaCluster::lease_holder() const {
  auto url = shared_test_cluster().query_value(database_, "select owner_url from regcache_fill_leases "
                                                          "where expires_at > now() limit 1");
  if (!url) return -1;
  for (std::size_t i = 0; i < replicas_.size(); ++i)
    if (replicas_[i] && replicas_[i]->url() == *url) return static_cast<int>(i);
  return -1;
}

void BlobClient::run(int port, const std::string& path, std::atomic<int>& first_bytes, std::chrono::seconds timeout) {
  RawHttpGet get(port, path);
  if (get.read_head(timeout)) {
    if (get.body_bytes() == 0) get.read_some(timeout);
    if (get.body_bytes() > 0) {
      got_first_bytes = true;
      ++first_bytes;
    }
    get.read_to_end(timeout);
  }
  status = get.status();
  content_length = get.content_length();
  complete = get.complete();
  body_bytes = get.body_bytes();
  body_digest = get.body_digest();
  error = get.error();
}

}  // namespace regcache::test
