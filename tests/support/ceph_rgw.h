#pragma once
// A real S3 endpoint for tests: single-node Ceph (1 mon, 1 bluestore OSD on a sparse
// file, no mgr, no cephx) with radosgw in front, all on 127.0.0.1 with free ports
// (the mon's v1/v2 ports too, so two test processes can each run one), per the
// recipe in ../shared/RECIPES.md. Start-up takes ~17 s, so a test process starts it
// once (shared()) and gives each test its own bucket.
//
// Every daemon runs in the foreground (-f) as a Process this object owns; stop() and
// the destructor kill them by PID in the order rgw, osd, mon, and PR_SET_PDEATHSIG
// kills them if the test process dies first.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/temp_dir.h"

namespace regcache::test {

class CephRgw {
 public:
  // RGW's `rgw dns name`: virtual-host requests use Host "<bucket>.s3.rgw.test:PORT"
  // (never resolved: clients connect to 127.0.0.1 and only the Host header names it).
  static constexpr const char* kVirtualHostDomain = "s3.rgw.test";

  // Builds the cluster and waits until radosgw answers HTTP and the S3 user exists.
  // Throws std::runtime_error (with the tail of the failing daemon's log) on failure.
  CephRgw();
  ~CephRgw();
  CephRgw(const CephRgw&) = delete;
  CephRgw& operator=(const CephRgw&) = delete;

  // The one cluster of this test process, started on first use.
  static CephRgw& shared();

  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  int port() const { return rgw_port_; }
  const std::string& access_key() const { return access_key_; }
  const std::string& secret_key() const { return secret_key_; }
  const std::string& region() const { return region_; }
  // A fresh bucket name for one test ("t-<n>-<suffix>"), not yet created.
  std::string unique_bucket_name(const std::string& suffix);
  // True while radosgw runs and answers.
  bool rgw_answers() const;
  // Stops radosgw only (the cluster stays up) / starts it again on the same port.
  void stop_rgw();
  void start_rgw();
  // SIGSTOP / SIGCONT radosgw: its port still accepts connections, nothing answers.
  void pause_rgw();
  void resume_rgw();
  void stop();

  // radosgw's own request counters (perf dump of its admin socket, section
  // "rgw"): object PUTs (multipart parts included) and GETs, and their bytes.
  // They count for the whole process; tests compare before and after.
  struct Counters {
    long long put_ops = 0;
    long long put_bytes = 0;
    long long get_ops = 0;
    long long get_bytes = 0;
  };
  Counters counters();

 private:
  void run(const std::vector<std::string>& argv, const std::string& what);
  std::string capture(const std::vector<std::string>& argv, const std::string& what);
  std::string log_tail(const std::string& name) const;
  std::vector<std::string> ceph(std::vector<std::string> args) const;

  TempDir dir_;
  std::filesystem::path conf_;
  int rgw_port_ = 0;
  int mon_v1_port_ = 0;
  int mon_v2_port_ = 0;
  std::string access_key_ = "RCTESTKEY";
  std::string secret_key_ = "RCTESTSECRET0123456789";
  std::string region_ = "us-east-1";
  int bucket_counter_ = 0;
  std::unique_ptr<Process> mon_;
  std::unique_ptr<Process> osd_;
  std::unique_ptr<Process> rgw_;
};

}  // namespace regcache::test
