#pragma once
// RS256 JSON Web Tokens as the Docker token-auth flow uses them: the header carries
// the signing certificate in "x5c", so a registry configured with that certificate as
// its rootcertbundle accepts the token.
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace regcache::test {

std::string base64_std(std::string_view bytes);  // with padding
std::string base64url(std::string_view bytes);   // URL alphabet, no padding

class Rs256Signer {
 public:
  // PEM private key and PEM certificate (the certificate's DER goes into x5c).
  Rs256Signer(const std::filesystem::path& key_pem, const std::filesystem::path& cert_pem);
  ~Rs256Signer();
  Rs256Signer(const Rs256Signer&) = delete;
  Rs256Signer& operator=(const Rs256Signer&) = delete;

  // header.claims.signature
  std::string sign(const nlohmann::json& claims) const;

 private:
  struct Key;
  Key* key_;
  std::string cert_der_base64_;
};

}  // namespace regcache::test
