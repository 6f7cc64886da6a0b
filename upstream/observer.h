#pragma once
// What the registry client reports about each HTTP exchange it has with an
// upstream (issue 15: upstream metrics and health). upstream/ knows nothing of
// metrics or the status page: the application hands make_client() an
// ExchangeObserver (proxy implements it) and the client calls it once per
// exchange, on the requesting thread.
//
// One exchange is one request on the wire up to its response head: a 401
// answered with a token, and each redirect followed, are exchanges of their
// own (a token request to a realm is not reported). Body transfer time and
// failures while reading a body are not part of it (blob fills report those,
// cache/observer.h).
#include <string_view>

namespace regcache::upstream {

enum class ExchangeOutcome {
  Answered,         // a status line and headers arrived (any status, 5xx included)
  Timeout,          // connecting or awaiting the response head took longer than allowed
  ConnectionError,  // refused, reset, TLS, malformed response, refused by the trust rules,
                    // or no pooled connection free within the wait
};

struct ExchangeRecord {
  std::string_view upstream;  // the configured upstream name
  std::string_view method;    // "GET" or "HEAD"
  ExchangeOutcome outcome = ExchangeOutcome::Answered;
  int status = 0;             // when Answered
  double seconds = 0;         // from asking for a connection to the response head (or the failure)
  std::string_view error;     // why, when not Answered (names host:port only, never credentials)
};

class ExchangeObserver {
 public:
  virtual ~ExchangeObserver() = default;
  // Called once per exchange; must be cheap, thread-safe and not throw.
  virtual void exchanged(const ExchangeRecord& exchange) noexcept = 0;
};

}  // namespace regcache::upstream
