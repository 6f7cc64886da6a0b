#include "upstream/connection_pool.h"

#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Exception.h>
#include <Poco/String.h>
#include <Poco/URI.h>
#include <Poco/Timespan.h>

#include <algorithm>

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
  bool readable_within(std::chrono::milliseconds wait) override {
    if (this->buffered() > 0) return true;
    auto& socket = this->socket();
    return socket.available() > 0 ||
           socket.poll(Poco::Timespan(std::chrono::duration_cast<std::chrono::microseconds>(wait).count()),
                       Poco::Net::Socket::SELECT_READ);
  }
  void choose_address_with(Endpoint endpoint, AddressChooser chooser) {
    endpoint_ = std::move(endpoint);
    chooser_ = std::move(chooser);
  }

 protected:
  // Every (re)connect goes through here: the chooser may check the address
  // and pick another one (never the host name again: no second DNS answer).
  void connect(const Poco::Net::SocketAddress& address) override {
    Session::connect(chooser_ ? chooser_(endpoint_, address) : address);
  }

 private:
  Endpoint endpoint_;
  AddressChooser chooser_;
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
    auto s = std::make_unique<DirectSession<Poco::Net::HTTPSClientSession>>(endpoint.host, endpoint.port, settings.tls);
    s->choose_address_with(endpoint, settings.choose_address);
    session = std::move(s);
  } else {
    auto s = std::make_unique<DirectSession<Poco::Net::HTTPClientSession>>(endpoint.host, endpoint.port);
    s->choose_address_with(endpoint, settings.choose_address);
    session = std::move(s);
  }
  session->setKeepAlive(true);
  session->setTimeout(timespan(settings.connect_timeout), timespan(settings.read_timeout),
                      timespan(settings.read_timeout));
  return session;
}

std::size_t reserved_connections(std::size_t max_connections) {
  if (max_connections < 2) return 0;
  return std::clamp<std::size_t>(max_connections / 8, 1, 4);
}

Lease::~Lease() {
  if (session_) pool_->drop(std::move(session_), priority_);
}

void Lease::release() {
  if (session_) pool_->put_back(std::move(session_), priority_);
}

void Lease::renew() {
  session_ = pool_->new_session();
  reused_ = false;
}

ConnectionPool::ConnectionPool(Endpoint endpoint, SessionSettings settings, std::size_t max_connections)
    : endpoint_(std::move(endpoint)),
      settings_(std::move(settings)),
      max_connections_(std::max<std::size_t>(1, max_connections)),  // 0 would deadlock every caller
      blob_cap_(max_connections_ - reserved_connections(max_connections_)) {}

bool ConnectionPool::can_grant(Priority priority) const {
  bool slot = !idle_.empty() || open_ < max_connections_;
  return slot && (priority == Priority::Metadata || blob_leases_ < blob_cap_);
}

void ConnectionPool::grant(Waiter& waiter) {
  if (!idle_.empty()) {
    waiter.idle = std::move(idle_.back());
    idle_.pop_back();
  } else {
    ++open_;
  }
  if (waiter.priority == Priority::Blob) ++blob_leases_;
  waiter.granted = true;
}

void ConnectionPool::dispatch() {
  while (!waiting_metadata_.empty() && can_grant(Priority::Metadata)) {
    Waiter* w = waiting_metadata_.front();
    waiting_metadata_.pop_front();
    grant(*w);
    w->cv.notify_one();  // under mu_: the waiter cannot have gone yet
  }
  while (!waiting_blobs_.empty() && can_grant(Priority::Blob)) {
    Waiter* w = waiting_blobs_.front();
    waiting_blobs_.pop_front();
    grant(*w);
    w->cv.notify_one();
  }
}

Lease ConnectionPool::acquire(Priority priority) {
  std::unique_lock lock(mu_);
  Waiter self;
  self.priority = priority;
  auto& queue = priority == Priority::Metadata ? waiting_metadata_ : waiting_blobs_;
  // Nobody ahead of us (metadata is ahead of every blob request): take a slot now.
  bool ahead = !queue.empty() || (priority == Priority::Blob && !waiting_metadata_.empty());
  if (!ahead && can_grant(priority)) {
    grant(self);
  } else {
    queue.push_back(&self);
    auto wait = priority == Priority::Metadata ? settings_.connect_timeout : settings_.blob_queue_timeout;
    if (!self.cv.wait_for(lock, wait, [&] { return self.granted; })) {
      queue.erase(std::find(queue.begin(), queue.end(), &self));
      throw TransportError("too many upstream connections to " + endpoint_.label() + " (limit " +
                           std::to_string(max_connections_) +
                           (priority == Priority::Blob ? ", " + std::to_string(blob_cap_) + " for blobs" : "") +
                           "; waited " + std::to_string(wait.count()) + " ms)");
    }
  }
  return lease_for(self, lock);
}

Lease ConnectionPool::lease_for(Waiter& waiter, std::unique_lock<std::mutex>& lock) {
  if (waiter.idle) return Lease(shared_from_this(), std::move(waiter.idle), true, waiter.priority);
  lock.unlock();
  try {
    return Lease(shared_from_this(), new_session(), false, waiter.priority);
  } catch (...) {
    drop(nullptr, waiter.priority);
    throw;
  }
}

void ConnectionPool::put_back(std::unique_ptr<Poco::Net::HTTPClientSession> session, Priority priority) {
  std::lock_guard lock(mu_);
  idle_.push_back(std::move(session));
  if (priority == Priority::Blob) --blob_leases_;
  dispatch();
}

void ConnectionPool::drop(std::unique_ptr<Poco::Net::HTTPClientSession> session, Priority priority) {
  session.reset();  // closes the socket outside the lock
  std::lock_guard lock(mu_);
  --open_;
  if (priority == Priority::Blob) --blob_leases_;
  dispatch();
}

ConnectionPool::Stats ConnectionPool::stats() const {
  std::lock_guard lock(mu_);
  return Stats{open_, idle_.size(), blob_leases_, waiting_metadata_.size(), waiting_blobs_.size()};
}

std::shared_ptr<ConnectionPool> PoolSet::pool(const Endpoint& endpoint) {
  std::lock_guard lock(mu_);
  auto& pool = pools_[endpoint];
  if (!pool) pool = std::make_shared<ConnectionPool>(endpoint, settings_, max_connections_);
  return pool;
}

}  // namespace regcache::upstream
