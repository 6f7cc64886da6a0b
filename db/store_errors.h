#pragma once
// Failures of a metadata store that callers above db/ may tell apart from
// "the store answered with an error".
#include <stdexcept>
#include <string>

namespace regcache::db {

// The store's server cannot be reached right now (connection refused or lost,
// server shutting down or starting up, no connection free in time). Nothing
// of the call that threw was committed unless the server had committed it
// before the connection broke (a unit of work is never half-committed). The
// store keeps no broken connection: a later call connects afresh, so service
// resumes by itself when the server is back. Callers serving a request map it
// to 503; readiness reports the database not ready.
class StoreUnavailable : public std::runtime_error {
 public:
  explicit StoreUnavailable(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace regcache::db
