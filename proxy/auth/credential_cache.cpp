#include "proxy/auth/credential_cache.h"

#include <openssl/evp.h>

namespace regcache::proxy::auth {

std::string credential_key(const std::string& authorization) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // Fetched once: an implicit fetch per call costs more than the hash.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_Digest(authorization.data(), authorization.size(), digest, &length, sha256, nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace regcache::proxy::auth
