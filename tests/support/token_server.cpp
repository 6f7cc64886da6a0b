#include "support/token_server.h"

#include <Poco/Net/HTMLForm.h>
#include <Poco/Net/HTTPBasicCredentials.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <openssl/rand.h>

#include <chrono>
#include <ctime>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "support/jwt.h"
#include "support/process.h"

namespace regcache::test {
namespace {

void make_key_and_certificate(const std::filesystem::path& dir, const std::string& issuer) {
  Process openssl({{"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
                    "/CN=" + issuer, "-keyout", (dir / "token.key").string(), "-out", (dir / "token.crt").string()},
                   {},
                   dir / "openssl.out",
                   dir / "openssl.err"});
  auto code = openssl.wait_for(std::chrono::seconds(60));
  if (!code || *code != 0)
    throw std::runtime_error("openssl req failed: " + openssl.stderr_text());
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  RAND_bytes(raw.data(), static_cast<int>(raw.size()));
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

// "repository:name/with/slashes:pull,push" -> access entry; scope lists may be space-separated.
nlohmann::json access_for(const std::vector<std::string>& scopes) {
  nlohmann::json access = nlohmann::json::array();
  for (const auto& scope_param : scopes) {
    std::istringstream words(scope_param);
    std::string scope;
    while (words >> scope) {
      auto first = scope.find(':');
      auto last = scope.rfind(':');
      if (first == std::string::npos || first == last) continue;
      nlohmann::json actions = nlohmann::json::array();
      std::istringstream list(scope.substr(last + 1));
      std::string action;
      while (std::getline(list, action, ','))
        if (!action.empty()) actions.push_back(action);
      access.push_back({{"type", scope.substr(0, first)},
                        {"name", scope.substr(first + 1, last - first - 1)},
                        {"actions", actions}});
    }
  }
  return access;
}

}  // namespace

struct TokenServer::Impl {
  TokenServerOptions options;
  std::filesystem::path cert;
  std::unique_ptr<Rs256Signer> signer;
  Poco::ThreadPool pool{2, 16};
  std::unique_ptr<Poco::Net::HTTPServer> server;
  int port = 0;

  mutable std::mutex mutex;
  std::vector<TokenRequestRecord> records;

  struct Handler : Poco::Net::HTTPRequestHandler {
    explicit Handler(Impl& impl) : impl(impl) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) override {
      impl.handle(request, response);
    }
    Impl& impl;
  };

  // Owned by the HTTPServer; refers back to the Impl, which outlives the server.
  struct Factory : Poco::Net::HTTPRequestHandlerFactory {
    explicit Factory(Impl& impl) : impl(impl) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handler(impl);
    }
    Impl& impl;
  };

  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
    TokenRequestRecord record;
    record.method = request.getMethod();
    Poco::URI uri(request.getURI());
    std::string service, user, password;
    bool have_credentials = false;
    for (const auto& [name, value] : uri.getQueryParameters()) {
      if (name == "scope") record.scopes.push_back(value);
      if (name == "service") service = value;
    }
    if (request.getMethod() == Poco::Net::HTTPRequest::HTTP_POST) {
      Poco::Net::HTMLForm form(request, request.stream());
      for (const auto& [name, value] : form) {
        if (name == "scope") record.scopes.push_back(value);
        if (name == "service") service = value;
        if (name == "username") user = value, have_credentials = true;
        if (name == "password") password = value;
      }
    }
    if (request.hasCredentials()) {
      std::string scheme, info;
      request.getCredentials(scheme, info);
      if (Poco::icompare(scheme, "basic") == 0) {
        Poco::Net::HTTPBasicCredentials basic(info);
        user = basic.getUsername();
        password = basic.getPassword();
        have_credentials = true;
      }
    }
    record.account = user;

    bool credentials_ok = have_credentials && user == options.username && password == options.password;
    if (uri.getPath() != "/token") {
      record.status = 404;
    } else if ((options.require_credentials || have_credentials) && !credentials_ok) {
      record.status = 401;
    } else {
      record.status = 200;
    }

    response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(record.status));
    response.setContentType("application/json");
    std::string body;
    if (record.status == 200) {
      const std::time_t now = std::time(nullptr);
      nlohmann::json claims = {{"iss", options.issuer},
                               {"sub", user},
                               {"aud", service.empty() ? options.service : service},
                               {"exp", now + 300},
                               {"nbf", now - 1},
                               {"iat", now},
                               {"jti", random_hex(16)},
                               {"access", access_for(record.scopes)}};
      std::string token = signer->sign(claims);
      body = nlohmann::json{{"token", token}, {"access_token", token}, {"expires_in", 300}, {"issued_at", rfc3339(now)}}
                 .dump();
    } else {
      if (record.status == 401) response.set("WWW-Authenticate", "Basic realm=\"token\"");
      body = R"({"details":"access denied"})";
    }
    {
      std::lock_guard lock(mutex);
      records.push_back(record);
    }
    response.setContentLength64(static_cast<Poco::Int64>(body.size()));
    response.send() << body;
  }
};

TokenServer::TokenServer(const std::filesystem::path& dir, TokenServerOptions options) : impl_(std::make_unique<Impl>()) {
  std::filesystem::create_directories(dir);
  make_key_and_certificate(dir, options.issuer);
  impl_->options = std::move(options);
  impl_->cert = dir / "token.crt";
  impl_->signer = std::make_unique<Rs256Signer>(dir / "token.key", impl_->cert);

  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  impl_->port = socket.address().port();
  auto params = new Poco::Net::HTTPServerParams;
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(5, 0));
  params->setMaxThreads(16);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(new Impl::Factory(*impl_), impl_->pool, socket, params);
  impl_->server->start();
}

TokenServer::~TokenServer() {
  impl_->server->stopAll(true);
  impl_->pool.joinAll();
}

int TokenServer::port() const { return impl_->port; }
std::string TokenServer::realm() const { return "http://127.0.0.1:" + std::to_string(impl_->port) + "/token"; }
const std::string& TokenServer::service() const { return impl_->options.service; }
const std::string& TokenServer::issuer() const { return impl_->options.issuer; }
const std::filesystem::path& TokenServer::cert_path() const { return impl_->cert; }

std::size_t TokenServer::request_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->records.size();
}

std::size_t TokenServer::tokens_issued() const {
  std::lock_guard lock(impl_->mutex);
  std::size_t n = 0;
  for (const auto& r : impl_->records) n += r.status == 200;
  return n;
}

std::vector<TokenRequestRecord> TokenServer::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->records;
}

}  // namespace regcache::test
