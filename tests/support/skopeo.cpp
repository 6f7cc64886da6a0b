#include "support/skopeo.h"

#include <atomic>

#include "support/files.h"
#include "support/process.h"

namespace regcache::test {

SkopeoResult skopeo_copy(const std::filesystem::path& work_dir, const std::string& source,
                         const std::string& destination, const std::vector<std::string>& extra_args,
                         std::chrono::seconds timeout) {
  static std::atomic<int> counter{0};
  const auto dir = work_dir / ("skopeo-" + std::to_string(++counter));
  std::filesystem::create_directories(dir / "home");
  std::filesystem::create_directories(dir / "tmp");
  std::filesystem::create_directories(dir / "run");
  write_file(dir / "registries.conf", "");

  std::vector<std::string> argv{"skopeo", "--insecure-policy", "--registries-conf", (dir / "registries.conf").string(),
                                "--tmpdir", (dir / "tmp").string(), "copy", "--retry-times", "0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  argv.push_back(source);
  argv.push_back(destination);

  Process skopeo({argv,
                  {{"HOME", (dir / "home").string()},
                   {"XDG_RUNTIME_DIR", (dir / "run").string()},
                   {"XDG_CONFIG_HOME", (dir / "home" / ".config").string()},
                   {"XDG_DATA_HOME", (dir / "home" / ".local" / "share").string()},
                   {"XDG_CACHE_HOME", (dir / "home" / ".cache").string()},
                   {"REGISTRY_AUTH_FILE", (dir / "auth.json").string()},
                   {"TMPDIR", (dir / "tmp").string()}},
                  dir / "stdout",
                  dir / "stderr"});
  SkopeoResult result;
  result.command = skopeo.command_line();
  auto code = skopeo.wait_for(timeout);
  result.exit_code = code ? *code : skopeo.stop(SIGKILL);
  result.stdout_text = skopeo.stdout_text();
  result.stderr_text = skopeo.stderr_text();
  if (!code) result.stderr_text += "\n[test harness: skopeo timed out and was killed]";
  return result;
}

SkopeoResult skopeo_push(const std::filesystem::path& work_dir, const std::string& oci_reference,
                         const std::string& registry_host, const std::string& repo_and_tag,
                         const std::string& credentials, bool all) {
  std::vector<std::string> args{"--dest-tls-verify=false", "--preserve-digests"};
  if (!credentials.empty()) args.insert(args.end(), {"--dest-creds", credentials});
  if (all) args.push_back("--all");
  return skopeo_copy(work_dir, oci_reference, "docker://" + registry_host + "/" + repo_and_tag, args);
}

SkopeoResult skopeo_pull(const std::filesystem::path& work_dir, const std::string& registry_host,
                         const std::string& repo_and_tag, const std::filesystem::path& out_dir,
                         const std::string& out_tag, const std::string& credentials, bool all) {
  std::vector<std::string> args{"--src-tls-verify=false", "--preserve-digests"};
  if (!credentials.empty()) args.insert(args.end(), {"--src-creds", credentials});
  if (all) args.push_back("--all");
  return skopeo_copy(work_dir, "docker://" + registry_host + "/" + repo_and_tag,
                     "oci:" + out_dir.string() + ":" + out_tag, args);
}

}  // namespace regcache::test
