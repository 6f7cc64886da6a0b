// Unit tests for shared blob fills (cache/blob_fill.h: BlobFill, FillCoordinator).
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "cache/blob_fill.h"
#include "cache/blob_store.h"
#include "common/digest.h"
#include "common/error.h"
#include "sync_util.h"
#include "temp_dir.h"

using namespace regcache::cache;
using regcache::Digest;
using regcache::ErrorCode;
using regcache::RegistryError;
using regcache::sha256_of;
using regcache_test::eventually;
using regcache_test::Gate;
using regcache_test::OpenAtExit;
using regcache_test::TempDir;

namespace {

using State = BlobFill::State;

// Up to `n` bytes at `offset` of a spool, through read_at().
std::string read_all(const BlobSourcePtr& source, std::size_t n, std::uint64_t offset = 0) {
  if (!source) return "<no spool>";
  std::string buf(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    std::size_t r = source->read_at(offset + got, buf.data() + got, n - got);
    if (r == 0) break;
    got += r;
  }
  buf.resize(got);
  return buf;
}

// A spool over a descriptor the test owns (a pipe: no file at all).
class FdSource final : public BlobSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  std::optional<int> native_fd() const override { return fd_; }
  std::size_t read_at(std::uint64_t, char*, std::size_t) override { return 0; }

 private:
  int fd_;
};

// The RegistryError wait_started() throws, or nullopt when it returns.
std::optional<RegistryError> start_error(BlobFill& fill) {
  try {
    fill.wait_started();
  } catch (const RegistryError& e) {
    return e;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("blob fill: concurrent requests for one digest share a single transfer") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  const std::string content = "layer bytes";
  const Digest digest = sha256_of(content);
  std::shared_ptr<BlobWriter> writer = store.create_writer();
  std::atomic<int> transfers{0}, second_transfers{0};
  Gate entered, release;

  FillCoordinator coordinator;
  OpenAtExit guard{&release};

  auto transfer = [&](BlobFill& fill) {
    ++transfers;
    entered.open();
    release.wait();
    fill.started(writer->source(), content.size(), nullptr);
    writer->write(content.data(), content.size());
    fill.spooled(writer->size());
    writer->commit(fill.digest());
    fill.committed();
  };

  bool first_started = false, second_started = true;
  BlobFillPtr first = coordinator.join_or_start(FillKey{"ns", digest}, transfer, &first_started);
  REQUIRE(first);
  CHECK(first_started);
  entered.wait();  // the transfer is running and blocked

  BlobFillPtr second =
      coordinator.join_or_start(FillKey{"ns", digest}, [&](BlobFill& f) { ++second_transfers; f.failed(RegistryError(ErrorCode::Internal, "must not run")); },
                                &second_started);
  CHECK_FALSE(second_started);
  CHECK(first.get() == second.get());
  CHECK(second->digest() == digest);
  CHECK(coordinator.running() == 1);
  CHECK(second->progress().state == State::Connecting);
  CHECK(second->progress().spooled == 0);

  release.open();
  auto size = second->wait_started();
  REQUIRE(size.has_value());
  CHECK(*size == content.size());
  auto end = first->wait_ended();
  CHECK(end.state == State::Committed);
  CHECK(end.spooled == content.size());
  CHECK(read_all(second->spool(), 64) == content);
  CHECK(second->failure().empty());

  CHECK(transfers == 1);
  CHECK(second_transfers == 0);
  CHECK(store.exists(digest));
  CHECK(eventually([&] { return coordinator.running() == 0; }));
}

TEST_CASE("blob fill: fills of different digests run independently") {
  std::atomic<int> transfers{0};
  Gate entered_a, release_a;
  FillCoordinator coordinator;
  OpenAtExit guard{&release_a};

  bool started_a = false, started_b = false;
  auto a = coordinator.join_or_start(FillKey{"ns", sha256_of("a")}, [&](BlobFill& f) {
    ++transfers;
    entered_a.open();
    release_a.wait();
    f.failed(RegistryError(ErrorCode::Unavailable, "a gave up"));
  }, &started_a);
  entered_a.wait();
  auto b = coordinator.join_or_start(FillKey{"ns", sha256_of("b")}, [&](BlobFill& f) {
    ++transfers;
    f.failed(RegistryError(ErrorCode::BlobUnknown, "b unknown"));
  }, &started_b);
  CHECK(started_a);
  CHECK(started_b);
  CHECK(a.get() != b.get());
  // b ends while a is still blocked.
  CHECK(b->wait_ended().state == State::Failed);
  CHECK(a->progress().state == State::Connecting);
  release_a.open();
  CHECK(a->wait_ended().state == State::Failed);
  CHECK(transfers == 2);
}

TEST_CASE("blob fill: wait_started throws the transfer's RegistryError when it fails before starting") {
  FillCoordinator coordinator;

  SUBCASE("the transfer throws a RegistryError") {
    auto fill = coordinator.join_or_start(FillKey{"ns", sha256_of("x")}, [](BlobFill&) {
      throw RegistryError(ErrorCode::BlobUnknown, "blob unknown: upstream hub answered 404");
    });
    auto error = start_error(*fill);
    REQUIRE(error.has_value());
    CHECK(error->code() == ErrorCode::BlobUnknown);
    CHECK(std::string(error->what()) == "blob unknown: upstream hub answered 404");
    auto end = fill->wait_ended();
    CHECK(end.state == State::Failed);
    CHECK(end.spooled == 0);
    CHECK(fill->failure() == "blob unknown: upstream hub answered 404");
    CHECK(fill->spool() == nullptr);
  }

  SUBCASE("the transfer reports failed() itself") {
    auto fill = coordinator.join_or_start(FillKey{"ns", sha256_of("x")}, [](BlobFill& f) {
      RegistryError e(ErrorCode::TooManyRequests, "rate limited");
      e.retry_after = "12";
      f.failed(e);
    });
    auto error = start_error(*fill);
    REQUIRE(error.has_value());
    CHECK(error->code() == ErrorCode::TooManyRequests);
    REQUIRE(error->retry_after.has_value());
    CHECK(*error->retry_after == "12");
  }

  SUBCASE("the transfer throws something else: INTERNAL") {
    auto fill = coordinator.join_or_start(FillKey{"ns", sha256_of("x")}, [](BlobFill&) { throw std::runtime_error("disk full"); });
    auto error = start_error(*fill);
    REQUIRE(error.has_value());
    CHECK(error->code() == ErrorCode::Internal);
    CHECK(std::string(error->what()) == "disk full");
    CHECK(fill->failure() == "disk full");
  }
}

TEST_CASE("blob fill: readers follow the spool as it grows and see the failure") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  const std::string content = "0123456789";
  const Digest digest = sha256_of("the real content");  // the upstream sends other bytes
  std::shared_ptr<BlobWriter> writer = store.create_writer();
  Gate first_part, second_part, finish;

  FillCoordinator coordinator;
  OpenAtExit guard{&first_part, &second_part, &finish};

  BlobSourcePtr spool = writer->source();
  auto fill = coordinator.join_or_start(FillKey{"ns", digest}, [&](BlobFill& f) {
    f.started(spool, content.size(), nullptr);
    first_part.wait();
    writer->write(content.data(), 4);
    f.spooled(writer->size());
    second_part.wait();
    writer->write(content.data() + 4, 6);
    f.spooled(writer->size());
    finish.wait();
    writer->commit(f.digest());  // throws DIGEST_INVALID: the coordinator records the failure
    f.committed();
  });

  auto size = fill->wait_started();
  REQUIRE(size.has_value());
  CHECK(*size == 10);
  CHECK(fill->spool() == spool);
  CHECK(fill->progress().state == State::Streaming);
  CHECK(fill->progress().spooled == 0);

  first_part.open();
  auto p = fill->wait_beyond(0);
  CHECK(p.spooled == 4);
  CHECK(p.state == State::Streaming);
  CHECK(read_all(fill->spool(), 64) == "0123");

  second_part.open();
  p = fill->wait_beyond(4);
  CHECK(p.spooled == 10);
  CHECK(p.state == State::Streaming);
  CHECK(read_all(fill->spool(), 64, 4) == "456789");

  finish.open();
  p = fill->wait_beyond(10);
  CHECK(p.state == State::Failed);
  CHECK(p.spooled == 10);
  CHECK(fill->wait_ended().state == State::Failed);
  CHECK(fill->failure().find("does not match") != std::string::npos);
  // It failed after it started: wait_started reports the start, not the failure.
  CHECK_NOTHROW(fill->wait_started());
  CHECK_FALSE(store.exists(digest));
  CHECK_FALSE(store.exists(sha256_of(content)));
}

TEST_CASE("blob fill: after a fill ends the next request starts a fresh transfer") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  const std::string content = "retry me";
  const Digest digest = sha256_of(content);
  std::shared_ptr<BlobWriter> writer = store.create_writer();
  std::atomic<int> transfers{0};

  FillCoordinator coordinator;
  auto transfer = [&](BlobFill& f) {
    if (++transfers == 1) throw RegistryError(ErrorCode::Unavailable, "upstream unreachable");
    f.started(writer->source(), content.size(), nullptr);
    writer->write(content.data(), content.size());
    f.spooled(writer->size());
    writer->commit(f.digest());
    f.committed();
  };

  bool started = false;
  auto first = coordinator.join_or_start(FillKey{"ns", digest}, transfer, &started);
  CHECK(started);
  CHECK(first->wait_ended().state == State::Failed);
  REQUIRE(eventually([&] { return coordinator.running() == 0; }));

  started = false;
  auto second = coordinator.join_or_start(FillKey{"ns", digest}, transfer, &started);
  CHECK(started);
  CHECK(second.get() != first.get());
  CHECK(second->wait_ended().state == State::Committed);
  CHECK(transfers == 2);
  CHECK(first->progress().state == State::Failed);  // the old fill keeps its outcome
  CHECK(store.exists(digest));
}

TEST_CASE("blob fill: destroying the coordinator waits for running fills") {
  std::atomic<bool> finished{false};
  Gate entered, release;
  auto coordinator = std::make_unique<FillCoordinator>();
  auto fill = coordinator->join_or_start(FillKey{"ns", sha256_of("slow")}, [&](BlobFill& f) {
    entered.open();
    release.wait();
    f.failed(RegistryError(ErrorCode::Unavailable, "done"));
    finished = true;
  });
  entered.wait();
  std::thread opener([&] { release.open(); });
  coordinator.reset();  // must block until the transfer returned
  CHECK(finished);
  opener.join();
  CHECK(fill->progress().state == State::Failed);
}

TEST_CASE("blob fill: BlobFill state machine without a coordinator") {
  BlobFill fill(sha256_of("direct"));
  CHECK(fill.digest() == sha256_of("direct"));
  CHECK(fill.progress().state == State::Connecting);
  CHECK(fill.failure().empty());

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto owner = std::shared_ptr<void>(nullptr, [r = fds[0], w = fds[1]](void*) {
    ::close(r);
    ::close(w);
  });
  auto source = std::make_shared<FdSource>(fds[0]);
  fill.started(source, std::nullopt, owner);
  CHECK_FALSE(fill.wait_started().has_value());  // the upstream announced no size
  CHECK(fill.spool() == source);
  CHECK(fill.spool()->native_fd() == fds[0]);
  fill.spooled(3);
  CHECK(fill.wait_beyond(2).spooled == 3);
  fill.committed();
  auto p = fill.wait_beyond(3);  // ended: returns without more bytes
  CHECK(p.state == State::Committed);
  CHECK(p.spooled == 3);
  CHECK(fill.wait_ended().state == State::Committed);
}

TEST_CASE("blob fill: verified() before a slow commit lets readers finish - a later failure keeps it verified") {
  BlobFill fill(sha256_of("x"));
  CHECK_FALSE(fill.progress().verified);
  std::atomic<bool> woke{false};
  std::thread reader([&] {
    auto p = fill.wait_verified();
    CHECK(p.verified);
    CHECK(p.state == BlobFill::State::Streaming);
    woke = true;
  });
  fill.started(nullptr, 1, nullptr);
  fill.spooled(1);
  CHECK_FALSE(fill.progress().verified);
  fill.verified();
  reader.join();
  CHECK(woke);
  fill.not_stored(RegistryError(ErrorCode::Unavailable, "the bucket does not answer"));
  auto p = fill.progress();
  CHECK(p.state == BlobFill::State::Failed);
  CHECK(p.verified);
}

TEST_CASE("blob fill: Committed counts as verified") {
  BlobFill fill(sha256_of("x"));
  fill.started(nullptr, 1, nullptr);
  fill.spooled(1);
  fill.committed();
  CHECK(fill.wait_verified().verified);
}
