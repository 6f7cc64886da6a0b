#pragma once
// An in-process Docker token server (the realm of a "Bearer" registry), on a free
// 127.0.0.1 port. It creates its own RSA key and self-signed certificate (openssl CLI)
// in `dir`; give cert_path() to the registry as its rootcertbundle.
//
//   GET  /token?service=S&scope=repository:R:pull[&scope=...]&account=U   (Basic auth)
//   POST /token  form grant_type=password&username&password&scope&service&client_id
//
// answers {"token","access_token","expires_in":300,"issued_at"} with an RS256 JWT
// granting exactly the requested actions. When credentials are required, a request
// without them or with wrong ones gets 401. Every request is recorded.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace regcache::test {

struct TokenServerOptions {
  std::string username = "user";
  std::string password = "pass";
  bool require_credentials = true;  // false: anonymous requests get tokens too
  std::string service = "test-registry";
  std::string issuer = "test-issuer";
};

struct TokenRequestRecord {
  std::string method;               // GET or POST
  std::string account;              // user name presented (Basic or form), "" if anonymous
  std::vector<std::string> scopes;  // as requested
  int status = 0;                   // what we answered
};

class TokenServer {
 public:
  explicit TokenServer(const std::filesystem::path& dir, TokenServerOptions options = {});
  ~TokenServer();
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;

  int port() const;
  std::string realm() const;  // http://127.0.0.1:PORT/token
  const std::string& service() const;
  const std::string& issuer() const;
  const std::filesystem::path& cert_path() const;

  std::size_t request_count() const;
  std::size_t tokens_issued() const;  // requests answered 200
  std::vector<TokenRequestRecord> requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace regcache::test
