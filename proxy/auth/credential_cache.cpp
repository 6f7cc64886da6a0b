#include "proxy/auth/credential_cache.h"

#include <openssl/evp.h>

namespace regcache::proxy::auth {

std::string credential_key(const std::string& authorization) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(authorization.data(), authorization.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace regcache::proxy::auth
