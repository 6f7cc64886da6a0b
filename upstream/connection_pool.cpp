#include "upstream/connection_pool.h"

#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Exception.h>
#include <Poco/String.h>
#include <Poco/URI.h>
#include <Poco/Timespan.h>

#include "upstream/client.h"

namespace regcache::upstream {
namespace {

Poco::Timespan timespan(std::chrono::milliseconds ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

template <class Session>
class DirectSession final : public Session, public SessionBodyReader {
 public:
  using Session::Session;
  int read_body(char* buffer, std::streamsize n) override { return this->read(buffer, n); }
};

}  // namespace

std::optional<Target> parse_target(const std::string& url) {
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::SyntaxException&) {
    return std::nullopt;
  }
  std::string scheme = Poco::toLower(uri.getScheme());
  if ((scheme != "http" && scheme != "https") || uri.getHost().empty()) return std::nullopt;
  // Poco::URI supplies the scheme's well-known port when none is given.
  Target target{Endpoint{scheme, Poco::toLower(uri.getHost()), uri.getPort()}, {}};
  // Poco would re-encode the path; take the bytes after the authority instead.
  std::size_t authority = url.find("://") + 3;
  std::size_t start = url.find_first_of("/?#", authority);
  std::size_t end = url.find('#', authority);
  if (start != std::string::npos && start != end) target.path_and_query = url.substr(start, end - start);
  if (target.path_and_query.empty() || target.path_and_query.front() != '/') {
    target.path_and_query.insert(0, "/");
  }
  return target;
}

std::unique_ptr<Poco::Net::HTTPClientSession> open_session(const Endpoint& endpoint, const SessionSettings& settings) {
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  if (endpoint.scheme == "https") {
    session = std::make_unique<DirectSession<Poco::Net::HTTPSClientSession>>(endpoint.host, endpoint.port, settings.tls);
  } else {
    session = std::make_unique<DirectSession<Poco::Net::HTTPClientSession>>(endpoint.host, endpoint.port);
  }
  session->setKeepAlive(true);
  session->setTimeout(timespan(settings.connect_timeout), timespan(settings.read_timeout),
                      timespan(settings.read_timeout));
  return session;
}

Lease::~Lease() {
  if (session_) pool_->drop(std::move(session_));
}

void Lease::release() {
  if (session_) pool_->put_back(std::move(session_));
}

ConnectionPool::ConnectionPool(Endpoint endpoint, SessionSettings settings, std::size_t max_connections)
    : endpoint_(std::move(endpoint)),
      settings_(std::move(settings)),
      max_connections_(std::max<std::size_t>(1, max_connections)) {}  // 0 would deadlock every caller

Lease ConnectionPool::acquire() {
  std::unique_lock lock(mu_);
  bool available = freed_.wait_for(lock, settings_.connect_timeout,
                                   [&] { return !idle_.empty() || open_ < max_connections_; });
  if (!available) {
    throw TransportError("too many upstream connections to " + endpoint_.label() + " (limit " +
                         std::to_string(max_connections_) + ")");
  }
  if (!idle_.empty()) {
    auto session = std::move(idle_.back());
    idle_.pop_back();
    return Lease(shared_from_this(), std::move(session), true);
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(shared_from_this(), new_session(), false);
  } catch (...) {
    drop(nullptr);
    throw;
  }
}

void Lease::renew() {
  session_ = pool_->new_session();
  reused_ = false;
}

void ConnectionPool::put_back(std::unique_ptr<Poco::Net::HTTPClientSession> session) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(session));
  }
  freed_.notify_one();
}

void ConnectionPool::drop(std::unique_ptr<Poco::Net::HTTPClientSession> session) {
  session.reset();  // closes the socket outside the lock
  {
    std::lock_guard lock(mu_);
    --open_;
  }
  freed_.notify_one();
}

std::shared_ptr<ConnectionPool> PoolSet::pool(const Endpoint& endpoint) {
  std::lock_guard lock(mu_);
  auto& pool = pools_[endpoint];
  if (!pool) pool = std::make_shared<ConnectionPool>(endpoint, settings_, max_connections_);
  return pool;
}

}  // namespace regcache::upstream
