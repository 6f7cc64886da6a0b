#include "cache/no_fd_blob_store.h"

#include <utility>

namespace regcache::cache {
namespace {

class NoFdSource final : public BlobSource {
 public:
  explicit NoFdSource(BlobSourcePtr inner) : inner_(std::move(inner)) {}
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    return inner_->read_at(offset, buf, n);
  }

 private:
  BlobSourcePtr inner_;
};

class NoFdReader final : public BlobReader {
 public:
  explicit NoFdReader(BlobReaderPtr inner) : inner_(std::move(inner)) {}
  std::uint64_t size() const override { return inner_->size(); }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    return inner_->read_at(offset, buf, n);
  }

 private:
  BlobReaderPtr inner_;
};

// A fill's writer (Base BlobWriter) or an upload session (BlobUpload).
template <class Base>
class NoFdWriterOf : public Base {
 public:
  explicit NoFdWriterOf(std::unique_ptr<Base> inner) : inner_(std::move(inner)) {}
  void write(const char* data, std::size_t size) override { inner_->write(data, size); }
  std::uint64_t size() const override { return inner_->size(); }
  void commit(const Digest& expected) override { inner_->commit(expected); }
  BlobSourcePtr source() override { return std::make_shared<NoFdSource>(inner_->source()); }

 protected:
  std::unique_ptr<Base> inner_;
};

using NoFdWriter = NoFdWriterOf<BlobWriter>;

class NoFdUpload final : public NoFdWriterOf<BlobUpload> {
 public:
  using NoFdWriterOf::NoFdWriterOf;
  void end_chunk() override { inner_->end_chunk(); }
};

class NoFdStore final : public BlobStore {
 public:
  explicit NoFdStore(BlobStorePtr inner) : inner_(std::move(inner)) {}
  BlobWriterPtr create_writer() override {
    return std::make_unique<NoFdWriter>(inner_->create_writer());
  }
  BlobReaderPtr open(const Digest& digest) override {
    auto r = inner_->open(digest);
    return r ? std::make_unique<NoFdReader>(std::move(r)) : nullptr;
  }
  bool exists(const Digest& digest) override { return inner_->exists(digest); }
  Presence presence(const Digest& digest) override { return inner_->presence(digest); }
  std::optional<std::uint64_t> free_bytes() const override { return inner_->free_bytes(); }
  void remove(const Digest& digest) override { inner_->remove(digest); }
  std::vector<StoredBlob> list() override { return inner_->list(); }
  std::size_t remove_orphan_spools() override { return inner_->remove_orphan_spools(); }
  BlobUploadPtr open_upload(const std::string& id, bool create) override {
    auto u = inner_->open_upload(id, create);
    return u ? std::make_unique<NoFdUpload>(std::move(u)) : nullptr;
  }
  std::optional<std::uint64_t> upload_size(const std::string& id) override { return inner_->upload_size(id); }
  void remove_upload(const std::string& id) override { inner_->remove_upload(id); }
  std::vector<std::string> list_uploads() override { return inner_->list_uploads(); }
  std::optional<std::int64_t> written_at(const Digest& digest) override { return inner_->written_at(digest); }
  std::optional<std::string> quarantine(const Digest& digest) override { return inner_->quarantine(digest); }
  std::optional<std::string> redirect_url(const Digest& digest, std::chrono::seconds expires) override {
    return inner_->redirect_url(digest, expires);
  }
  std::optional<std::string> check_reachable() override { return inner_->check_reachable(); }

 private:
  BlobStorePtr inner_;
};

}  // namespace

BlobStorePtr without_native_fds(BlobStorePtr inner) { return std::make_unique<NoFdStore>(std::move(inner)); }

}  // namespace regcache::cache
