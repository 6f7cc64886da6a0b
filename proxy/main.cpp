// regcache: a pull-through caching OCI registry.
//   regcache serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--upstream URL]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "proxy/commands.h"
#include "proxy/cmd_maintenance.h"
#include "proxy/config.h"
#include "proxy/sd_notify.h"
#include "proxy/server.h"
#include "proxy/warm_scheduler.h"

namespace {

constexpr int kExitUsage = 2;  // bad flags or bad configuration

const char* kUsage =
    "Usage: regcache serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--upstream URL|none]\n"
    "                      [--hosted PREFIX]... [--offline]\n"
    "       regcache warm [--server URL] [--platform LIST] [--referrers] [--file LIST] REF...\n"
    "       regcache export [--config FILE | --data-dir DIR] (--all | REF...) --output DIR|FILE.tar\n"
    "       regcache import [--config FILE | --data-dir DIR] [--into NS/REPO[:TAG]] SRC\n"
    "       regcache ls [--config FILE | --data-dir DIR] [PATTERN] [--json]\n"
    "       regcache du [--config FILE | --data-dir DIR] [--json]\n"
    "       regcache gc [--config FILE | --data-dir DIR] [--dry-run] [--min-age SECONDS]\n"
    "       regcache scrub [--config FILE | --data-dir DIR] [--repair] [--rate BYTES_PER_S]\n"
    "       regcache fsck [--config FILE | --data-dir DIR] [--repair] [--min-age SECONDS]\n"
    "       regcache --version | --help\n"
    "\n"
    "serve   run the registry. Flags override the config file; without one:\n"
    "        listen 127.0.0.1:5000, data dir ./data, upstream https://registry-1.docker.io\n"
    "  --config FILE       JSON configuration (every key documented in etc/regcache.json)\n"
    "  --listen HOST:PORT  address to listen on\n"
    "  --data-dir DIR      where blobs and the metadata database live\n"
    "  --upstream URL      URL of the default upstream registry; 'none': a plain registry\n"
    "  --hosted PREFIX     repositories under PREFIX/ live here and accept pushes (repeatable)\n"
    "  --offline           never contact an upstream: serve only what is cached\n"
    "\n"
    "warm, export, import, ls: the offline lab mirror;\n"
    "du, gc, scrub, fsck: store maintenance, safe while the server runs or stopped;\n"
    "'regcache COMMAND --help' for each.\n";

struct ServeFlags {
  std::optional<std::string> config, listen, data_dir, upstream;
  std::vector<std::string> hosted;
  bool offline = false;
};

// Parses the flags after "serve"; accepts "--flag value" and "--flag=value".
bool parse_serve_flags(const std::vector<std::string>& args, ServeFlags& out, std::string& error) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--offline") {
      out.offline = true;
      continue;
    }
    std::string flag = args[i], value;
    std::optional<std::string> hosted_value;
    bool inline_value = false;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    std::optional<std::string>* slot = flag == "--config"     ? &out.config
                                       : flag == "--listen"   ? &out.listen
                                       : flag == "--data-dir" ? &out.data_dir
                                       : flag == "--upstream" ? &out.upstream
                                       : flag == "--hosted"   ? &hosted_value
                                                              : nullptr;
    if (!slot) {
      error = "unknown argument '" + args[i] + "'";
      return false;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        error = flag + " needs a value";
        return false;
      }
      value = args[++i];
    }
    *slot = value;
    if (hosted_value) out.hosted.push_back(*hosted_value);
  }
  return true;
}

// The configuration the flags ask for: the file (or the defaults), then the
// flags on top. Throws ConfigError.
regcache::proxy::Config build_config(const ServeFlags& flags) {
  using namespace regcache;
  proxy::Config config = flags.config ? proxy::load_config(*flags.config) : proxy::default_config();
  if (flags.listen) proxy::set_listen(config, *flags.listen);
  if (flags.data_dir) {
    if (flags.data_dir->empty()) throw proxy::ConfigError("--data-dir", "must not be empty");
    config.data_dir = *flags.data_dir;
  }
  if (flags.upstream) proxy::set_default_upstream_url(config, *flags.upstream);
  if (flags.offline) config.offline = true;
  for (const auto& prefix : flags.hosted) proxy::add_hosted_prefix(config, prefix);
  proxy::check_config_files(config);  // CA bundles and the TLS pair load, or the key is named
  if (config.cluster.enabled) proxy::cluster_advertise_url(config);  // one is known, or the key is named
  return config;
}

int serve(const ServeFlags& flags) {
  using namespace regcache;
  proxy::Config config;
  try {
    config = build_config(flags);
  } catch (const proxy::ConfigError& e) {
    std::cerr << "regcache: configuration error: " << e.what() << "\n";
    return kExitUsage;
  }

  // Termination signals are taken synchronously by this thread; every thread
  // started from here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up mid-sendfile is an error return, not a death

  std::unique_ptr<proxy::Server> server;
  std::unique_ptr<proxy::WarmScheduler> warm;  // the `warm` key: re-warms on a schedule
  try {
    server = std::make_unique<proxy::Server>(config);
    server->start();
    warm = std::make_unique<proxy::WarmScheduler>(proxy::own_listener_url(config, server->port()));
    warm->configure(config.warm, config.offline);
    proxy::notify_systemd("READY=1\nSTATUS=serving");  // under systemd (Type=notify): the port accepts now
    if (const long long period = proxy::systemd_watchdog_period_usec(); period > 0)
      log::info("systemd watchdog on: WATCHDOG=1 every " + std::to_string(period / 1000) + " ms from the event loop");
  } catch (const std::exception& e) {
    std::cerr << "regcache: cannot start: " << e.what() << "\n";
    return 1;
  }

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    // SIGHUP: re-read the configuration; a bad one is refused and the running
    // one stays.
    proxy::notify_systemd_reloading();
    log::info("received SIGHUP, reloading " + (flags.config ? *flags.config : std::string("the built-in defaults")));
    // Everything is validated (numbers, files) before anything is swapped:
    // build_config throws before the server sees the new configuration, and
    // Server::reload builds the new upstream clients before it installs them.
    // Whatever fails, the running configuration stays and the process lives.
    try {
      proxy::Config fresh = build_config(flags);
      warm->configure(fresh.warm, fresh.offline);
      server->reload(std::move(fresh));
    } catch (const proxy::ConfigError& e) {
      log::error(std::string("reload refused, configuration unchanged: ") + e.what());
    } catch (const std::exception& e) {
      log::error(std::string("reload refused, configuration unchanged: ") + e.what());
    }
    proxy::notify_systemd("READY=1");
  }
  log::info(std::string("received ") + (received == SIGTERM ? "SIGTERM" : "SIGINT") + ", shutting down");
  proxy::notify_systemd("STOPPING=1");
  warm->stop();
  if (!server->stop(server->shutdown_grace())) {
    // Fills still running belong to no client; their spools are removed at the
    // next start. Leave without waiting for them.
    log::warn("shutdown grace expired with work in flight; exiting anyway");
    std::fflush(stderr);
    std::_Exit(0);
  }
  server.reset();
  log::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "regcache " REGCACHE_VERSION "\n";
    return 0;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (args[0] == "warm") return regcache::proxy::run_warm({args.begin() + 1, args.end()});
  if (args[0] == "export") return regcache::proxy::run_export({args.begin() + 1, args.end()});
  if (args[0] == "import") return regcache::proxy::run_import({args.begin() + 1, args.end()});
  if (args[0] == "ls") return regcache::proxy::run_ls({args.begin() + 1, args.end()});
  if (args[0] == "du") return regcache::proxy::run_du({args.begin() + 1, args.end()});
  if (args[0] == "gc") return regcache::proxy::run_gc({args.begin() + 1, args.end()});
  if (args[0] == "scrub") return regcache::proxy::run_scrub({args.begin() + 1, args.end()});
  if (args[0] == "fsck") return regcache::proxy::run_fsck({args.begin() + 1, args.end()});
  if (args[0] != "serve") {
    std::cerr << "regcache: unknown command '" << args[0] << "'\n" << kUsage;
    return kExitUsage;
  }
  ServeFlags flags;
  std::string error;
  if (!parse_serve_flags({args.begin() + 1, args.end()}, flags, error)) {
    std::cerr << "regcache: " << error << "\n" << kUsage;
    return kExitUsage;
  }
  return serve(flags);
}
