#pragma once
// A client for S3-compatible object stores (AWS S3, Ceph RGW), on Poco, signed with
// SigV4 (sigv4.h). One bucket per client.
//
// Promises:
//  * Bounded memory: object bodies are streamed both ways in 64 KiB chunks (PUT and
//    UploadPart read from an istream, GET writes to a sink); only XML answers are read
//    whole, and those are capped (max_xml_bytes) and refuse DTDs.
//  * Hostile answers are checked: a GET body must match its Content-Length and the
//    requested range, listings must stay within the page size asked for, a 200 that
//    carries an <Error> (CompleteMultipartUpload does that) is an error.
//  * Retries with exponential backoff and jitter on 5xx (incl. 503 SlowDown), 429 and
//    connection failures, but only while nothing was handed to the caller's sink and
//    the request body can be rewound. A GET that fails mid-body throws.
//  * Thread-safe. Keep-alive connections are kept in a small pool per client (and its
//    copies): a call takes an idle one or opens one, and gives it back only after the
//    whole answer was read and the server kept it open; on any error it is dropped.
//    A pooled connection the server closed meanwhile (the request fails before any
//    answer arrived) is retried once on a fresh connection, not counted as an attempt.
//  * 404 is an answer, not an error, where the caller can use it (head/get: nullopt).
//  * All failures throw S3Error, which says the operation, the key, the HTTP status
//    (0 when no answer came) and S3's error code.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cache/s3/sigv4.h"

namespace regcache::s3 {

enum class Addressing { path, virtual_host };

struct ClientConfig {
  std::string endpoint;  // "http://127.0.0.1:7480" or "https://s3.example.com"
  std::string bucket;
  std::string region = "us-east-1";
  Credentials credentials;
  Addressing addressing = Addressing::path;
  // Connect here instead of resolving the endpoint's (or virtual host's) name, like
  // curl --connect-to; the Host header and signature still use the names. Empty: resolve.
  std::string connect_host;
  int max_attempts = 4;                           // 1 = no retries
  std::chrono::milliseconds backoff_base{100};    // doubled per attempt, with jitter
  std::chrono::milliseconds backoff_max{3000};
  std::chrono::seconds timeout{30};               // per socket operation
  std::size_t max_xml_bytes = 8u << 20;           // listings of 1000 keys fit easily
  std::size_t max_idle_connections = 8;           // kept open for reuse; 0: one connection per call
};

// The secret key from a file: the first line, surrounding whitespace removed. Throws
// std::runtime_error naming the file when it is unreadable or empty.
std::string read_secret_key_file(const std::filesystem::path& path);

class S3Error : public std::runtime_error {
 public:
  S3Error(const std::string& what, int status, std::string code)
      : std::runtime_error(what), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }            // 0: no HTTP answer (connection, hostile reply)
  const std::string& code() const { return code_; }  // S3's <Code>, e.g. "NoSuchUpload"; may be empty

 private:
  int status_;
  std::string code_;
};

struct ObjectInfo {
  std::uint64_t size = 0;  // of the whole object
  std::string etag;        // without quotes
  std::string last_modified;  // HTTP date as sent (HEAD only)
};

struct ListedObject {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
};

struct ListPage {
  std::vector<ListedObject> objects;
  std::optional<std::string> next_token;  // set while IsTruncated
};

struct IncompleteUpload {
  std::string key;
  std::string upload_id;
  std::string initiated;  // ISO 8601 as S3 sent it
};

struct CompletedPart {
  int number = 0;
  std::string etag;
};

// Inclusive byte range; `last` empty = to the end.
struct ByteRange {
  std::uint64_t first = 0;
  std::optional<std::uint64_t> last;
};

using Sink = std::function<void(const char* data, std::size_t size)>;

class Client {
 public:
  explicit Client(ClientConfig config);

  const ClientConfig& config() const { return config_; }

  // PUT bucket; succeeds when it exists already and is ours.
  void create_bucket() const;
  // DELETE bucket (must be empty).
  void delete_bucket() const;

  // PUT object from `body` (exactly `size` bytes from its current position). Pass the
  // hex SHA-256 of the body when known so it is signed; UNSIGNED-PAYLOAD otherwise.
  // Returns the ETag.
  std::string put_object(const std::string& key, std::istream& body, std::uint64_t size,
                         const std::string& payload_sha256 = std::string(kUnsignedPayload)) const;
  std::string put_object(const std::string& key, std::string_view body) const;

  // GET (whole or `range`), the body streamed to `sink`. nullopt when the object does not
  // exist. Throws S3Error with status 416 for a range outside the object.
  std::optional<ObjectInfo> get_object(const std::string& key, const Sink& sink,
                                       std::optional<ByteRange> range = std::nullopt) const;
  // HEAD: nullopt only on 404; any other failure throws.
  std::optional<ObjectInfo> head_object(const std::string& key) const;
  // DELETE: succeeds whether or not the object existed.
  void delete_object(const std::string& key) const;

  // ListObjectsV2, one page (max_keys 1..1000).
  ListPage list_objects(const std::string& prefix, const std::optional<std::string>& continuation = std::nullopt,
                        int max_keys = 1000) const;
  // Every object under `prefix`, following continuation tokens.
  void for_each_object(const std::string& prefix, const std::function<void(const ListedObject&)>& fn) const;

  // Multipart upload.
  std::string create_multipart_upload(const std::string& key) const;  // upload id
  std::string upload_part(const std::string& key, const std::string& upload_id, int part_number,
                          std::istream& body, std::uint64_t size,
                          const std::string& payload_sha256 = std::string(kUnsignedPayload)) const;  // ETag
  std::string complete_multipart_upload(const std::string& key, const std::string& upload_id,
                                        const std::vector<CompletedPart>& parts) const;
  // Abort; succeeds when the upload is already gone (404 NoSuchUpload).
  void abort_multipart_upload(const std::string& key, const std::string& upload_id) const;
  // Every incomplete upload under `prefix`, following the markers.
  std::vector<IncompleteUpload> list_multipart_uploads(const std::string& prefix = "") const;

  // A presigned GET URL for `key`, valid for `expires` (<= 7 days).
  std::string presigned_get_url(const std::string& key, std::chrono::seconds expires) const;

 private:
  struct Target;
  struct Body;
  struct Answer;
  Target target(const std::string& key) const;
  Answer perform(const std::string& operation, const std::string& method, const std::string& key,
                 const Params& query, const Headers& extra, Body* body, const Sink* sink,
                 std::optional<ByteRange> range) const;

  struct Pool;  // idle keep-alive connections, shared by copies of this client
  std::shared_ptr<Pool> pool_;
  ClientConfig config_;
  std::string scheme_;
  std::string host_;  // endpoint host (no port)
  int port_ = 0;
  bool default_port_ = true;
};

}  // namespace regcache::s3
