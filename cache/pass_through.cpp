#include "cache/pass_through.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"

namespace regcache::cache {

PassThrough::PassThrough(std::shared_ptr<upstream::Client> client, std::unique_ptr<upstream::BodyStream> body,
                         Digest digest, std::uint64_t size, BlobSource* prefix_source, std::uint64_t prefix)
    : client_(std::move(client)),
      body_(std::move(body)),
      digest_(std::move(digest)),
      size_(size),
      offset_(prefix),
      hasher_(digest_.algorithm()) {
  std::vector<char> buffer(256 << 10);
  for (std::uint64_t at = 0; at < prefix;) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), prefix - at));
    std::size_t n = 0;
    std::string why = "the spool is too short";
    try {
      if (prefix_source) n = prefix_source->read_at(at, buffer.data(), want);
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (n == 0)
      throw RegistryError(ErrorCode::Internal, "cannot re-read the first " + std::to_string(prefix) + " bytes of " +
                                                   digest_.str() + " from its spool: " + why);
    hasher_.update(buffer.data(), n);
    at += n;
  }
  // Skip the upstream's copy of the prefix: the client has those bytes already.
  while (upstream_at_ < prefix) {
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), prefix - upstream_at_));
    std::size_t n = read(buffer.data(), want);
    if (n == 0) break;
  }
}

std::size_t PassThrough::read(char* buf, std::size_t n) {
  if (ended_) return 0;
  std::size_t got = 0;
  try {
    got = body_->read(buf, n);
  } catch (const upstream::TransportError& e) {
    throw RegistryError(ErrorCode::Unavailable, "upstream broke off the pass-through of " + digest_.str() + ": " + e.what());
  }
  if (got == 0) {
    ended_ = true;
    if (upstream_at_ != size_)
      throw RegistryError(ErrorCode::Unavailable, "upstream sent " + std::to_string(upstream_at_) + " of " +
                                                      std::to_string(size_) + " bytes of " + digest_.str());
    return 0;
  }
  if (upstream_at_ + got > size_)
    throw RegistryError(ErrorCode::UpstreamInvalid, "upstream sent more than the " + std::to_string(size_) +
                                                        " bytes of " + digest_.str());
  std::uint64_t start = upstream_at_;
  upstream_at_ += got;
  if (upstream_at_ <= offset_) return got;  // still inside the prefix (only while constructing)
  // Bytes below offset_ were hashed from the spool; hash the rest.
  std::size_t skip = start < offset_ ? static_cast<std::size_t>(offset_ - start) : 0;
  if (skip > 0) std::memmove(buf, buf + skip, got - skip);
  got -= skip;
  hasher_.update(buf, got);
  offset_ += got;
  return got;
}

bool PassThrough::verified() {
  if (!ended_ || upstream_at_ != size_ || offset_ != size_) return false;
  if (!verdict_) verdict_ = hasher_.finish() == digest_;
  return *verdict_;
}

}  // namespace regcache::cache
