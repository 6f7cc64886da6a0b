#pragma once
// The fill lease (docs/REPLICAS.md): which replica of a cluster sharing one
// metadata database fetches a cold blob from the upstream. The other replicas
// stream it from that one (its URL is kept with the lease) instead of asking
// the upstream themselves.
//
// Promises:
// - claim() is one atomic step: of any number of replicas claiming one free
//   key at once, exactly one gets it.
// - The holder's leases are renewed in the background by the object that
//   claimed them, and only those it holds; one not renewed for the ttl (its
//   process was killed, or cut off from the database, or its release failed)
//   is free for the next claim.
// - Losing a lease while still filling costs a second upstream fetch, never a
//   wrong answer: content is addressed by digest and verified by every filler.
#include <chrono>
#include <memory>
#include <string>

#include "db/postgres_metadata_store.h"

namespace regcache::db {

class FillLeases {
 public:
  virtual ~FillLeases() = default;

  struct Claim {
    bool mine = false;      // this process holds the lease now (until release())
    std::string owner_url;  // else: the advertised URL of the replica that holds it; empty
                            // when that is this replica's own URL (an earlier run of it, or
                            // a replica advertising the same URL): never call it, it expires
  };
  // Takes the lease on `key` when it is free or expired, or says who holds
  // it. Throws StoreUnavailable / std::runtime_error when the database fails.
  virtual Claim claim(const std::string& key) = 0;
  // Gives up a lease this process holds (no-op otherwise). Never throws: a
  // lease that could not be deleted expires.
  virtual void release(const std::string& key) noexcept = 0;
};

// The lease table in the PostgreSQL database of `settings` (created when
// missing), for a replica reachable at `owner_url`, with leases lasting `ttl`
// unless renewed (every ttl/3, by a thread the object owns). Throws
// std::runtime_error when the database cannot be reached.
std::unique_ptr<FillLeases> open_postgres_fill_leases(const PostgresSettings& settings, std::string owner_url,
                                                      std::chrono::seconds ttl);

}  // namespace regcache::db
