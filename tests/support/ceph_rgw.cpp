#include "support/ceph_rgw.h"

#include <signal.h>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/UUIDGenerator.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "support/ports.h"
#include "support/wait.h"

namespace regcache::test {

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail(const std::string& s, std::size_t n = 3000) {
  return s.size() <= n ? s : s.substr(s.size() - n);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::vector<std::string> CephRgw::ceph(std::vector<std::string> args) const {
  std::vector<std::string> argv{args.front(), "-c", conf_.string()};
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return argv;
}

void CephRgw::run(const std::vector<std::string>& argv, const std::string& what) {
  (void)capture(argv, what);
}

std::string CephRgw::capture(const std::vector<std::string>& argv, const std::string& what) {
  const auto out = dir_ / ("log/" + what + ".out");
  const auto err = dir_ / ("log/" + what + ".err");
  std::filesystem::remove(out);
  Process p({argv, {}, out, err});
  const auto code = p.wait_for(std::chrono::seconds(60));
  if (!code) p.stop(SIGKILL);
  if (!code || *code != 0)
    throw std::runtime_error("ceph_rgw: " + p.command_line() + " failed (" +
                             (code ? "exit " + std::to_string(*code) : std::string("timeout")) +
                             "): " + tail(read_file(err)));
  return read_file(out);
}

std::string CephRgw::log_tail(const std::string& name) const {
  return tail(read_file(dir_ / ("log/" + name + ".log")) + read_file(dir_ / ("log/" + name + ".err")));
}

CephRgw::CephRgw() : dir_("regcache-rgw") {
  const auto d = dir_.path().string();
  for (const char* sub : {"mon.a", "osd.0", "run", "log"}) std::filesystem::create_directories(dir_ / sub);
  rgw_port_ = free_port();
  mon_v1_port_ = free_port();
  mon_v2_port_ = free_port();
  while (mon_v2_port_ == mon_v1_port_ || mon_v2_port_ == rgw_port_) mon_v2_port_ = free_port();
  while (mon_v1_port_ == rgw_port_) mon_v1_port_ = free_port();
  const std::string mon_addr = "[v2:127.0.0.1:" + std::to_string(mon_v2_port_) + ",v1:127.0.0.1:" +
                               std::to_string(mon_v1_port_) + "]";
  const std::string fsid = Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
  conf_ = dir_ / "ceph.conf";
  {
    std::ofstream c(conf_);
    // The recipe's traps: crc mode for the rgw's mon client (else it hangs on
    // get_initial_auth_request -13), cluster/public addr on loopback (else the OSD binds
    // 0.0.0.0), mon data avail crit lowered (else the mon stops itself on a fullish disk).
    c << "[global]\nfsid=" << fsid << "\nmon host=" << mon_addr
      << "\npublic addr=127.0.0.1\ncluster addr=127.0.0.1\npublic network=127.0.0.0/8\n"
         "cluster network=127.0.0.0/8\nauth cluster required=none\nauth service required=none\n"
         "auth client required=none\nrun dir="
      << d << "/run\npid file=" << d << "/run/$name.pid\nlog file=" << d
      << "/log/$name.log\nosd pool default size=1\nosd pool default min size=1\n"
         "osd pool default pg num=8\nmon allow pool size one=true\nmon data avail crit=1\n"
         "osd crush chooseleaf type=0\n"
         "[mon]\nmon data="
      << d << "/mon.$id\nmon cluster log file=" << d
      << "/log/cluster.log\n[osd]\nosd data=" << d
      << "/osd.$id\nosd objectstore=bluestore\nbluestore block size=10737418240\n"
         "[client.rgw.a]\nms mon client mode=crc\nrgw dns name=" << kVirtualHostDomain << "\nrgw frontends=beast endpoint=127.0.0.1:"
      << rgw_port_ << "\n";
  }
  try {
    run({"monmaptool", "--create", "--fsid", fsid, "--addv", "a", mon_addr, d + "/monmap"}, "monmaptool");
    run({"ceph-authtool", "--create-keyring", d + "/keyring", "--gen-key", "-n", "mon.", "--cap", "mon",
         "allow *"},
        "authtool");
    run(ceph({"ceph-mon", "-i", "a", "--mkfs", "--monmap", d + "/monmap", "--keyring", d + "/keyring"}),
        "mon-mkfs");
    mon_ = std::make_unique<Process>(
        ProcessOptions{ceph({"ceph-mon", "-f", "-i", "a"}), {}, {}, dir_ / "log/mon.err"});
    const std::string uuid = Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
    const std::string id = trim(capture(ceph({"ceph", "--connect-timeout", "30", "osd", "new", uuid}), "osd-new"));
    run(ceph({"ceph-osd", "-i", id, "--mkfs", "--osd-uuid", uuid}), "osd-mkfs");
    osd_ = std::make_unique<Process>(
        ProcessOptions{ceph({"ceph-osd", "-f", "-i", id}), {}, {}, dir_ / "log/osd.err"});
    start_rgw();
    run(ceph({"radosgw-admin", "user", "create", "--uid=regcache-test", "--display-name=regcache test",
              "--access-key=" + access_key_, "--secret=" + secret_key_}),
        "user-create");
  } catch (...) {
    stop();
    throw;
  }
}

CephRgw::~CephRgw() { stop(); }

CephRgw& CephRgw::shared() {
  static CephRgw cluster;
  return cluster;
}

std::string CephRgw::endpoint() const { return "http://127.0.0.1:" + std::to_string(rgw_port_); }

std::string CephRgw::unique_bucket_name(const std::string& suffix) {
  std::string name = "t-" + std::to_string(++bucket_counter_) + "-" + suffix;
  for (auto& c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) c = '-';
  return name.substr(0, 63);
}

bool CephRgw::rgw_answers() const {
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(rgw_port_));
    session.setTimeout(Poco::Timespan(2, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/", Poco::Net::HTTPMessage::HTTP_1_1);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    session.receiveResponse(response).ignore(1 << 20);
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

void CephRgw::start_rgw() {
  rgw_ = std::make_unique<Process>(
      ProcessOptions{ceph({"radosgw", "-f", "-n", "client.rgw.a"}), {}, {}, dir_ / "log/rgw.err"});
  // RGW creates its pools on first start (~10 s after the OSD is up).
  const bool up = wait_until([&] { return rgw_->alive() && rgw_answers(); }, std::chrono::seconds(120));
  if (!up)
    throw std::runtime_error("ceph_rgw: radosgw did not answer on " + endpoint() +
                             "; log: " + log_tail("client.rgw.a") + "\nosd: " + log_tail("osd.0"));
}

void CephRgw::stop_rgw() {
  if (rgw_) rgw_->stop(SIGTERM, std::chrono::seconds(10));
  rgw_.reset();
}

void CephRgw::pause_rgw() {
  if (!rgw_) throw std::runtime_error("ceph_rgw: radosgw is not running");
  ::kill(rgw_->pid(), SIGSTOP);
}

void CephRgw::resume_rgw() {
  if (rgw_) ::kill(rgw_->pid(), SIGCONT);
}

void CephRgw::stop() {
  stop_rgw();
  if (osd_) osd_->stop(SIGTERM, std::chrono::seconds(10));
  osd_.reset();
  if (mon_) mon_->stop(SIGTERM, std::chrono::seconds(10));
  mon_.reset();
}

CephRgw::Counters CephRgw::counters() {
  // A client daemon's socket is run dir/ceph-client.rgw.a.<pid>.<cctid>.asok.
  if (!rgw_) throw std::runtime_error("ceph_rgw: radosgw is not running");
  const std::string prefix = "ceph-client.rgw.a." + std::to_string(rgw_->pid()) + ".";
  std::filesystem::path socket;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "run"))
    if (e.path().filename().string().rfind(prefix, 0) == 0 && e.path().extension() == ".asok") socket = e.path();
  if (socket.empty()) throw std::runtime_error("ceph_rgw: no admin socket " + prefix + "*.asok in " + (dir_ / "run").string());
  const auto dump = nlohmann::json::parse(capture({"ceph", "--admin-daemon", socket.string(), "perf", "dump"}, "perf-dump"));
  const auto& rgw = dump.at("rgw");
  Counters c;
  c.put_ops = rgw.at("put").get<long long>();
  c.put_bytes = rgw.at("put_b").get<long long>();
  c.get_ops = rgw.at("get").get<long long>();
  c.get_bytes = rgw.at("get_b").get<long long>();
  return c;
}

}  // namespace regcache::test
