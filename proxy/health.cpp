#include "proxy/health.h"

#include <exception>
#include <optional>

#include <nlohmann/json.hpp>

#include "cache/blob_store.h"
#include "db/metadata_store.h"

namespace regcache::proxy {

std::string Readiness::json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : checks) list.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  return nlohmann::json{{"status", ready ? "ready" : "not ready"}, {"checks", list}}.dump() + "\n";
}

Readiness HealthChecks::check() const {
  Readiness r;
  auto run = [&](const char* name, auto&& body) {
    HealthCheck c{name, true, {}};
    try {
      body(c);
    } catch (const std::exception& e) {
      c.ok = false;
      c.detail = e.what();
    }
    if (!c.ok) r.ready = false;
    r.checks.push_back(std::move(c));
  };
  run("database", [&](HealthCheck& c) {
    meta_.check_readable();
    c.detail = "answers";
  });
  run("data_dir", [&](HealthCheck& c) {
    // A spool, one byte, then dropped: the writer removes it (never committed).
    auto writer = blobs_.create_writer();
    writer->write("", 1);
    c.detail = "writable";
  });
  run("disk_free", [&](HealthCheck& c) {
    const std::uint64_t floor = min_free_bytes_;
    auto free = blobs_.free_bytes();
    if (!free) {
      c.detail = "unknown";
      return;
    }
    c.detail = std::to_string(*free) + " bytes free, floor " + std::to_string(floor);
    if (*free < floor) c.ok = false;
  });
  // A remote store (S3): does its bucket answer? No check for the local store.
  std::optional<std::string> reachable;
  std::string unreachable;
  try {
    reachable = blobs_.check_reachable();
  } catch (const std::exception& e) {
    unreachable = e.what();
    if (unreachable.empty()) unreachable = "does not answer";
  }
  if (reachable || !unreachable.empty()) {
    HealthCheck c{"blob_store", unreachable.empty(), reachable ? *reachable : unreachable};
    if (!c.ok) r.ready = false;
    r.checks.push_back(std::move(c));
  }
  return r;
}

}  // namespace regcache::proxy
