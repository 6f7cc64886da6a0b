#pragma once
// In-process HTTP servers on 127.0.0.1 (ephemeral ports) for the upstream
// client tests: FakeServer runs a handler per request and records what it saw;
// OneShotServer answers one request per connection and then closes it although
// HTTP/1.1 keep-alive was implied (like a server dropping idle connections).
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/String.h>

#include <condition_variable>
#include <csignal>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace regcache::upstream::testing {

// Servers here write to peers that may have hung up (as the client tests
// provoke); that must fail the write, not kill the test process.
inline const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

struct Seen {
  std::string method;
  std::string uri;
  std::vector<std::string> accept;  // one entry per Accept header line
  bool has_authorization = false;
  std::string authorization;
  std::string user_agent;
  std::uint16_t client_port = 0;
};

class FakeServer {
 public:
  using Handler = std::function<void(FakeServer&, Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

  // Plain HTTP, or HTTPS when `tls` (a server context) is given.
  // `host` is a loopback address to listen on (127.0.0.2 stands for an
  // "internal" service in the trust tests).
  explicit FakeServer(Handler handler, Poco::Net::Context::Ptr tls = nullptr, std::string host = "127.0.0.1")
      : handler_(std::move(handler)),
        scheme_(tls ? "https" : "http"),
        host_(std::move(host)),
        socket_(listen(tls, host_)),
        server_(new Factory(*this), socket_, new Poco::Net::HTTPServerParams) {
    server_.start();
  }
  // Waits for handlers still running (tests must have unblocked them).
  ~FakeServer() {
    server_.stopAll(true);
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return running_ == 0; });
  }

  std::uint16_t port() const { return socket_.address().port(); }
  std::string url() const { return scheme_ + "://" + host_ + ":" + std::to_string(port()); }

  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  std::vector<Seen> seen_with_prefix(const std::string& prefix) const {
    std::vector<Seen> out;
    for (auto& s : seen()) {
      if (s.uri.starts_with(prefix)) out.push_back(s);
    }
    return out;
  }
  // Distinct TCP connections that carried requests.
  std::size_t connections() const {
    std::lock_guard lock(mu_);
    std::set<std::uint16_t> ports;
    for (auto& s : seen_) ports.insert(s.client_port);
    return ports.size();
  }

  static void send(Poco::Net::HTTPServerResponse& response, int status, const std::string& body,
                   const std::string& content_type = "application/json") {
    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
    response.setContentType(content_type);
    response.setContentLength64(static_cast<Poco::Int64>(body.size()));
    response.send() << body;
  }

 private:
  class Handle final : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handle(FakeServer& server) : server_(server) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
      server_.record(request);
      try {
        server_.handler_(server_, request, response);
      } catch (...) {
        server_.done();
        throw;
      }
      server_.done();
    }

   private:
    FakeServer& server_;
  };
  class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(FakeServer& server) : server_(server) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handle(server_);
    }

   private:
    FakeServer& server_;
  };

  static Poco::Net::ServerSocket listen(const Poco::Net::Context::Ptr& tls, const std::string& host) {
    Poco::Net::SocketAddress any_port(host, 0);
    if (tls) return Poco::Net::SecureServerSocket(any_port, 64, tls);
    return Poco::Net::ServerSocket(any_port);
  }

  void done() {
    std::lock_guard lock(mu_);
    --running_;
    idle_.notify_all();
  }

  // Also counts the handler as running until done().
  void record(const Poco::Net::HTTPServerRequest& request) {
    Seen s;
    s.method = request.getMethod();
    s.uri = request.getURI();
    for (const auto& [name, value] : request) {
      if (Poco::icompare(name, "Accept") == 0) s.accept.push_back(value);
    }
    s.has_authorization = request.has("Authorization");
    s.authorization = request.get("Authorization", "");
    s.user_agent = request.get("User-Agent", "");
    s.client_port = request.clientAddress().port();
    std::lock_guard lock(mu_);
    ++running_;
    seen_.push_back(std::move(s));
  }

  Handler handler_;
  const std::string scheme_;
  const std::string host_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  int running_ = 0;  // handlers in progress; guarded by mu_
  std::vector<Seen> seen_;
  Poco::Net::ServerSocket socket_;
  Poco::Net::HTTPServer server_;
};

class OneShotServer {
 public:
  // Every connection gets `response` (raw bytes) to its first request, then is closed.
  explicit OneShotServer(std::string response)
      : response_(std::move(response)),
        socket_(Poco::Net::SocketAddress("127.0.0.1", 0)),
        server_(new Factory(*this), socket_) {
    server_.start();
  }
  ~OneShotServer() { server_.stop(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(socket_.address().port()); }
  std::size_t connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }

 private:
  class Connection final : public Poco::Net::TCPServerConnection {
   public:
    Connection(const Poco::Net::StreamSocket& socket, OneShotServer& server)
        : TCPServerConnection(socket), server_(server) {}
    void run() override {
      {
        std::lock_guard lock(server_.mu_);
        ++server_.connections_;
      }
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        int n = socket().receiveBytes(buf, sizeof buf);
        if (n <= 0) return;
        request.append(buf, static_cast<std::size_t>(n));
      }
      socket().sendBytes(server_.response_.data(), static_cast<int>(server_.response_.size()));
      socket().shutdown();
    }

   private:
    OneShotServer& server_;
  };
  class Factory final : public Poco::Net::TCPServerConnectionFactory {
   public:
    explicit Factory(OneShotServer& server) : server_(server) {}
    Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
      return new Connection(socket, server_);
    }

   private:
    OneShotServer& server_;
  };

  const std::string response_;
  mutable std::mutex mu_;
  std::size_t connections_ = 0;
  Poco::Net::ServerSocket socket_;
  Poco::Net::TCPServer server_;
};

}  // namespace regcache::upstream::testing
