#pragma once
// Runs `skopeo copy` as a child process, hermetically: its own HOME, XDG dirs, auth
// file, TMPDIR, an empty registries.conf and --insecure-policy, so nothing from the
// machine's configuration (mirrors, credentials, blob-info cache) leaks into a test.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace regcache::test {

struct SkopeoResult {
  int exit_code = -1;  // 0 on success; 128 + signal if killed
  std::string stdout_text;
  std::string stderr_text;
  std::string command;  // for failure messages
};

// `work_dir` holds skopeo's home, temp files and logs (one set per call).
SkopeoResult skopeo_copy(const std::filesystem::path& work_dir, const std::string& source,
                         const std::string& destination, const std::vector<std::string>& extra_args = {},
                         std::chrono::seconds timeout = std::chrono::seconds(300));

// Image layout -> registry over plain HTTP, digests preserved. `credentials` "user:pass" or "".
SkopeoResult skopeo_push(const std::filesystem::path& work_dir, const std::string& oci_reference,
                         const std::string& registry_host, const std::string& repo_and_tag,
                         const std::string& credentials = {}, bool all = false);

// Registry over plain HTTP -> a fresh OCI layout `out_dir`, tag `out_tag`.
SkopeoResult skopeo_pull(const std::filesystem::path& work_dir, const std::string& registry_host,
                         const std::string& repo_and_tag, const std::filesystem::path& out_dir,
                         const std::string& out_tag, const std::string& credentials = {}, bool all = false);

}  // namespace regcache::test
