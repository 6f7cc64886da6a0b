#pragma once
// The registry's own bearer tokens (Docker registry token spec): compact JWS
// signed with ES256 (ECDSA P-256, SHA-256) using OpenSSL 3's EVP interface.
// The signing key is a PEM file; generated at first start when missing
// (mode 600). Verification accepts only ES256 with this key — never "none",
// never a key named by the token — then checks iss, aud, exp and nbf (with a
// small leeway) and reads the access claim.
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/auth/access_policy.h"

namespace regcache::proxy::auth {

class TokenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string base64url_encode(std::string_view bytes);
// nullopt for bytes outside the URL alphabet or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);

// What a token grants: actions per repository name (as the client wrote it in
// the scope), and whether it may read the catalog.
struct TokenGrant {
  std::string subject;  // user name; empty for an anonymous token
  std::vector<std::pair<std::string, Actions>> repositories;
  bool catalog = false;
  std::chrono::system_clock::time_point expires;

  Actions actions_on(std::string_view repository) const;
};

struct TokenRules {
  std::string issuer;
  std::string audience;  // the service name
  std::chrono::seconds leeway{30};
};

class TokenKey {
 public:
  // Reads a PEM EC P-256 private key. Throws TokenError naming the file.
  static std::shared_ptr<const TokenKey> load(const std::filesystem::path& pem);
  // Reads `pem`, or creates it (mode 600, parent directories as needed) with a
  // fresh key when it does not exist.
  static std::shared_ptr<const TokenKey> load_or_create(const std::filesystem::path& pem);
  static std::shared_ptr<const TokenKey> generate();
  ~TokenKey();
  TokenKey(const TokenKey&) = delete;
  TokenKey& operator=(const TokenKey&) = delete;

  // header.claims.signature
  std::string sign(const nlohmann::json& claims) const;
  // The claims of a token whose signature this key made. Throws TokenError.
  nlohmann::json verify_signature(std::string_view token) const;

 private:
  struct Impl;
  explicit TokenKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The claims a token for `grant` carries (iss, sub, aud, exp, nbf, iat, jti, access).
nlohmann::json token_claims(const TokenGrant& grant, const TokenRules& rules, std::chrono::system_clock::time_point now);
// Checks the claims of a verified token against the rules at `now`. Throws
// TokenError saying what is wrong (expired, not yet valid, issuer, audience).
TokenGrant check_claims(const nlohmann::json& claims, const TokenRules& rules, std::chrono::system_clock::time_point now);

}  // namespace regcache::proxy::auth
