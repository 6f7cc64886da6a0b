// regcache warm: pre-fill a running regcache through its HTTP API.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "common/image_ref.h"
#include "proxy/cmd_common.h"
#include "proxy/commands.h"
#include "proxy/warm.h"
#include "proxy/warm_scheduler.h"

namespace regcache::proxy {

const char* const kWarmUsage =
    "Usage: regcache warm [--config FILE] [--server URL] [--platform OS/ARCH[,...]] [--referrers]\n"
    "                     [--newest N] [--file LIST] [--username USER --password-file FILE] REF...\n"
    "\n"
    "Pre-fills a running regcache: requests every manifest and blob of each REF through its\n"
    "HTTP API, as a pull would. REF: docker.io/library/alpine:3.19, ghcr.io/org/app@sha256:...,\n"
    "quay.io/org/app:* (every tag) or a glob such as quay.io/org/app:v1.*; a first component\n"
    "that is an upstream's name routes there (UPSTREAM/REPO:TAG).\n"
    "  --server URL        the regcache to fill (default: the --config file's listen address,\n"
    "                      else http://127.0.0.1:5000)\n"
    "  --config FILE       read the listen address, and the warm.references when no REF is given\n"
    "  --platform LIST     only these platforms of an image index (default: all of them)\n"
    "  --referrers         also warm each manifest's referrers (signatures, SBOMs)\n"
    "  --newest N          for :* and globs, only the last N tags in version order (tags/list\n"
    "                      has no dates: \"newest\" means highest version, e.g. v1.10 after v1.9)\n"
    "  --file LIST         more references, one per line, # comments\n"
    "  --username USER, --password-file FILE   Basic credentials for the server\n"
    "Exit 0 when every reference was warmed; 1 naming each one that failed; 2 on bad flags.\n";

namespace {

std::string rate(std::uint64_t bytes, std::chrono::steady_clock::duration elapsed) {
  double s = std::chrono::duration<double>(elapsed).count();
  return s > 0 ? format_bytes(static_cast<std::uint64_t>(static_cast<double>(bytes) / s)) + "/s" : "-";
}

}  // namespace

int run_warm(const std::vector<std::string>& argv) {
  ParsedArgs args;
  Config config;
  WarmOptions options;
  std::vector<std::string> references;
  try {
    args = parse_args(argv,
                      {"--config", "--server", "--platform", "--newest", "--file", "--username", "--password-file"},
                      {"--referrers", "--help"});
    if (args.has("--help")) {
      std::cout << kWarmUsage;
      return 0;
    }
    config = config_from(args);
    options.server_url = args.last("--server") ? *args.last("--server") : own_listener_url(config, config.listen_port);
    references = args.positional;
    if (auto f = args.last("--file"))
      for (auto& line : read_reference_lines(read_text_file(*f, "--file"))) references.push_back(line);
    std::vector<std::string> platform_texts;
    if (args.values.count("--platform")) {
      platform_texts = args.values["--platform"];
    } else if (args.positional.empty() && !args.last("--file")) {
      platform_texts = config.warm.platforms;
    }
    for (const auto& text : platform_texts) {
      std::string error;
      auto p = parse_platforms(text, error);
      if (!p) throw UsageError("--platform: " + error);
      options.platforms.insert(options.platforms.end(), p->begin(), p->end());
    }
    if (references.empty() && args.last("--config")) {
      references = config.warm.references;
      options.referrers = config.warm.referrers;
      options.newest = config.warm.newest;
    }
    if (references.empty()) throw UsageError("no references to warm");
    if (args.has("--referrers")) options.referrers = true;
    if (auto n = args.last("--newest")) {
      if (n->empty() || n->find_first_not_of("0123456789") != std::string::npos || n->size() > 9)
        throw UsageError("--newest must be a whole number, not '" + *n + "'");
      options.newest = std::stoul(*n);
    }
    if (auto u = args.last("--username")) {
      options.username = *u;
      if (!args.last("--password-file")) throw UsageError("--username needs --password-file");
      options.password = read_text_file(*args.last("--password-file"), "--password-file");
      while (!options.password.empty() && (options.password.back() == '\n' || options.password.back() == '\r'))
        options.password.pop_back();
    } else if (args.last("--password-file")) {
      throw UsageError("--password-file needs --username");
    }
  } catch (const UsageError& e) {
    std::cerr << "regcache warm: " << e.what() << "\n" << kWarmUsage;
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::cerr << "regcache warm: configuration error: " << e.what() << "\n";
    return kExitUsage;
  }

  // Every reference is parsed before anything is fetched: a typo fails fast.
  std::vector<ImageRef> refs;
  for (const auto& text : references) {
    std::string error;
    auto ref = parse_image_ref(text, error);
    if (!ref) {
      std::cerr << "regcache warm: " << text << ": " << error << "\n";
      return kExitUsage;
    }
    refs.push_back(*ref);
  }

  ProgressLine progress;
  const auto started = std::chrono::steady_clock::now();
  WarmObserver observer;
  observer.object_done = [&](const WarmCounts& c, const std::string& reference) {
    progress.update(std::to_string(c.objects) + " objects, " + std::to_string(c.fetched) + " fetched, " +
                    format_bytes(c.bytes_fetched) + " (" + rate(c.bytes_fetched, std::chrono::steady_clock::now() - started) +
                    ") " + reference);
  };
  observer.reference_done = [&](const WarmResult& r) {
    progress.clear();
    if (!r.ok) {
      std::printf("FAILED %s: %s\n", r.reference.c_str(), r.error.c_str());
    } else {
      std::string platforms;
      for (const auto& p : r.platforms) platforms += (platforms.empty() ? " [" : ",") + p;
      if (!platforms.empty()) platforms += "]";
      std::printf("warmed %s %s%s: %zu objects, %zu fetched (%s), %zu already cached%s\n", r.reference.c_str(),
                  r.digest.c_str(), platforms.c_str(), r.counts.objects, r.counts.fetched,
                  format_bytes(r.counts.bytes_fetched).c_str(), r.counts.cached,
                  r.counts.revalidated ? (", " + std::to_string(r.counts.revalidated) + " revalidated").c_str() : "");
    }
    std::fflush(stdout);
  };

  std::unique_ptr<Warmer> warmer;
  try {
    warmer = std::make_unique<Warmer>(options, observer);
  } catch (const std::exception& e) {
    std::cerr << "regcache warm: " << e.what() << "\n";
    return kExitUsage;
  }
  std::vector<std::string> failed;
  std::size_t done = 0;
  for (const auto& ref : refs) {
    for (const auto& r : warmer->warm(ref)) {
      ++done;
      if (!r.ok) failed.push_back(r.reference);
    }
  }
  progress.clear();
  const auto& t = warmer->totals();
  auto elapsed = std::chrono::steady_clock::now() - started;
  std::printf("warm: %zu references, %zu objects (%s), %zu fetched from upstreams (%s, %s), %zu already cached%s\n",
              done, t.objects, format_bytes(t.bytes_total).c_str(), t.fetched, format_bytes(t.bytes_fetched).c_str(),
              rate(t.bytes_fetched, elapsed).c_str(), t.cached,
              t.fetched == 0 && failed.empty() ? ": nothing new" : "");
  std::fflush(stdout);
  if (!failed.empty()) {
    std::string names;
    for (const auto& f : failed) names += (names.empty() ? "" : ", ") + f;
    std::cerr << "regcache warm: " << failed.size() << " of " << done << " references failed: " << names << "\n";
    return kExitFailed;
  }
  return 0;
}

}  // namespace regcache::proxy
