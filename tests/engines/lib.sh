# Shared by the real-engine tests in this folder; each test sources it and calls
#   engines_init "$@"        # $1: path to the regcache binary
# first (REGCACHE_ENGINES_KEEP=1 keeps the temp dir and its logs for a look
# afterwards). engines_init re-runs the test inside a private sandbox:
#   - a network namespace with only loopback, so an engine that falls back to a
#     public registry (dockerd does, on a mirror error) cannot leave the machine;
#   - a PID namespace whose init is the test itself (unshare --kill-child): when
#     the test ends or is killed, every process it started dies with it;
#   - a mount namespace with fresh tmpfs on /run, /etc/docker and
#     /var/lib/containers, so engines' runtime state never touches the host's;
#   - one temp dir under /tmp ($T), removed when the test ends.
# Inside, every daemon is started with `spawn` (its PID is recorded and killed
# by the EXIT trap) and waited for by polling a condition with a deadline.
# Checks print `ok - …` / `not ok - …`; `finish` prints `N passed, M failed`
# and exits non-zero when anything failed.

set -uo pipefail

ENGINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PASSED=0
FAILED=0
PIDS=()
declare -A PID_OF=()

engines_init() {
  REGCACHE=${1:-}
  if [ -z "$REGCACHE" ] || [ ! -x "$REGCACHE" ]; then
    echo "not ok - regcache binary given as the first argument (got '${REGCACHE}')"
    echo "0 passed, 1 failed"
    exit 1
  fi
  REGCACHE=$(readlink -f "$REGCACHE")
  if [ -z "${REGCACHE_ENGINES_TMP:-}" ]; then
    # Namespaces and the engines' daemons need root (CI runs as root): CTest
    # counts exit code 77 as skipped.
    if [ "$(id -u)" -ne 0 ]; then
      echo "# skipped: the real-engine tests need root (network/mount/PID namespaces, dockerd, containerd)"
      echo "0 passed, 0 failed"
      exit 77
    fi
    local tool missing=()
    for tool in unshare ip curl python3 docker-registry skopeo; do
      command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [ ${#missing[@]} -ne 0 ]; then
      echo "not ok - tools present (missing: ${missing[*]}; run .ci/install-engines)"
      echo "0 passed, 1 failed"
      exit 1
    fi
    sweep_stale_temp_dirs
    local t child rc
    t=$(mktemp -d /tmp/regcache-engines.XXXXXX)
    echo $$ >"$t/.owners"
    REGCACHE_ENGINES_TMP=$t unshare --net --mount --pid --fork --kill-child --mount-proc \
      --propagation private -- bash "$0" "$REGCACHE" &
    child=$!
    echo "$child" >>"$t/.owners"
    # On a signal (^C, a CTest timeout), ask the sandbox's init — this script's
    # inner run — to clean up (its EXIT trap stops every daemon), for at most
    # 30 s; then SIGKILL unshare (it ignores SIGTERM), and --kill-child SIGKILLs
    # the init and with it every process left in the sandbox.
    trap 'on_signal "$child" "$t"' INT TERM HUP
    wait "$child"
    rc=$?
    if [ -n "${REGCACHE_ENGINES_KEEP:-}" ]; then
      rm -f "$t/.owners"
      echo "# kept $t (REGCACHE_ENGINES_KEEP)"
    else
      rm -rf "$t"
    fi
    exit "$rc"
  fi

  T=$REGCACHE_ENGINES_TMP
  trap cleanup EXIT
  # Bash may run a trap while the interrupted command's redirections are still
  # in place (e.g. `docker pull >pull.log`): report on a saved copy of stdout.
  exec {RESULTS_FD}>&1
  trap 'trap - INT TERM HUP; { not_ok "interrupted by a signal"; finish; } >&$RESULTS_FD 2>&1' INT TERM HUP
  ip link set lo up || { not_ok "loopback up in the network namespace"; finish; }
  local d
  for d in /run /etc/docker /var/lib/containers; do
    [ -d "$d" ] && mount -t tmpfs -o mode=0755 tmpfs "$d"
  done
  mkdir -p "$T/home"
  export HOME=$T/home TMPDIR=$T
  unset DOCKER_HOST CONTAINER_HOST CONTAINERD_ADDRESS CONTAINERS_REGISTRIES_CONF
  echo "# sandbox: $T (network: $(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' '))"
}

# A test killed with SIGKILL (CTest's timeout kills the whole process tree)
# cannot remove its temp dir: the next test does, once every process named in
# the dir's .owners file is gone.
sweep_stale_temp_dirs() {
  local d pid live
  for d in /tmp/regcache-engines.*/; do
    [ -f "$d/.owners" ] || continue
    live=
    while read -r pid; do
      kill -0 "$pid" 2>/dev/null && live=1
    done <"$d/.owners"
    [ -z "$live" ] && rm -rf "$d"
  done
}

on_signal() { # UNSHARE_PID TEMP_DIR
  local init deadline=$((SECONDS + 30))
  init=$(cat "/proc/$1/task/$1/children" 2>/dev/null)
  [ -n "$init" ] && kill -TERM "$init" 2>/dev/null
  while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.1
  done
  if kill -0 "$1" 2>/dev/null; then
    kill -KILL "$1" 2>/dev/null
    echo "not ok - interrupted by a signal; the sandbox did not stop within 30 s and was killed"
    echo "0 passed, 1 failed"
  fi
  wait "$1" 2>/dev/null
  rm -rf "$2"
  exit 1
}

# Kills every spawned process, newest first: SIGTERM, up to 15 s, then SIGKILL.
cleanup() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ "$(proc_state "$pid")" != Z ] && [ $SECONDS -lt $deadline ]; do
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
}

proc_state() { awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# spawn NAME CMD… — runs CMD in the background, output in $T/NAME.log.
spawn() {
  local name=$1
  shift
  "$@" >"$T/$name.log" 2>&1 &
  PID_OF[$name]=$!
  PIDS+=("$!")
}

alive() { kill -0 "${PID_OF[$1]}" 2>/dev/null && [ "$(proc_state "${PID_OF[$1]}")" != Z ]; }

# wait_until SECONDS CMD… — polls CMD every 0.1 s until it succeeds; 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# --- results --------------------------------------------------------------

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }
diag() { sed 's/^/#   /'; }

# check WHAT CMD… — ok when CMD succeeds; otherwise not ok with CMD's output.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    ok "$what"
  else
    not_ok "$what"
    printf '%s\n' "$out" | tail -20 | diag
  fi
}

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then
    ok "$1"
  else
    not_ok "$1"
    printf 'expected: %s\nactual:   %s\n' "$2" "$3" | diag
  fi
}

# show_log NAME [LINES] — the tail of a spawned process's log, as diagnostics.
show_log() {
  echo "#   --- last ${2:-25} lines of $1.log"
  tail -n "${2:-25}" "$T/$1.log" 2>/dev/null | diag
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && exit 0
  exit 1
}

# --- upstream registries (docker-registry) --------------------------------

declare -A UP_PORT=()

# start_upstream NAME — a docker-registry on a free port; access log in $T/NAME.log.
start_upstream() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$T/$name"
  cat >"$T/$name.yml" <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $T/$name}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
  spawn "$name" docker-registry serve "$T/$name.yml"
  UP_PORT[$name]=$port
  if ! wait_until 20 curl -fsS "http://127.0.0.1:$port/v2/"; then
    not_ok "upstream $name answers /v2/"
    show_log "$name"
    finish
  fi
}

# push_image UPSTREAM REPO TAG ID [--multi] — builds a test image (make-image.py)
# and copies it to the upstream with skopeo; prints the digest TAG resolves to.
push_image() {
  local up=$1 repo=$2 tag=$3 id=$4 multi=${5:-} dir digest all=()
  dir=$T/images/${up}_${repo//\//_}_$tag
  digest=$(python3 "$ENGINES_DIR/make-image.py" "$dir" "$tag" "$id" ${multi:+"$multi"}) || return 1
  [ -n "$multi" ] && all=(--all)
  skopeo copy -q "${all[@]}" --dest-tls-verify=false "oci:$dir:$tag" \
    "docker://127.0.0.1:${UP_PORT[$up]}/$repo:$tag" >"$T/push.log" 2>&1 || {
    cat "$T/push.log" >&2
    return 1
  }
  echo "$digest"
}

ACCEPT_ALL=(-H "Accept: application/vnd.oci.image.index.v1+json"
  -H "Accept: application/vnd.oci.image.manifest.v1+json"
  -H "Accept: application/vnd.docker.distribution.manifest.list.v2+json"
  -H "Accept: application/vnd.docker.distribution.manifest.v2+json")

# registry_digest PORT PATH_REPO TAG [QUERY] — Docker-Content-Digest of a HEAD.
registry_digest() {
  curl -fsS -I "${ACCEPT_ALL[@]}" "http://127.0.0.1:$1/v2/$2/manifests/$3${4:-}" |
    tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}'
}

# A server may write a request's log line just after the client has the
# response. Before reading a log, log_sync sends the server a marker request
# (GET /v2/?log-sync=UUID) and waits for its line: requests that completed
# before it are then logged too. (Often called in $(…): no shell state kept.)
log_sync() { # PORT LOGFILE
  local marker
  marker=$(cat /proc/sys/kernel/random/uuid)
  curl -s -o /dev/null "http://127.0.0.1:$1/v2/?log-sync=$marker"
  wait_until 10 grep -q "/v2/?log-sync=$marker " "$2" || echo "# no log line for log-sync=$marker in $2" >&2
}

# upstream_blob_requests NAME — blob requests in the upstream's access log so far.
upstream_blob_requests() {
  log_sync "${UP_PORT[$1]}" "$T/$1.log"
  grep -cE '"(GET|HEAD) /v2/[^ ]*/blobs/sha256:[0-9a-f]{64}[^ ]* HTTP' "$T/$1.log"
}

# upstream_requests NAME — all /v2/ requests in the upstream's access log so
# far, but log_sync's markers.
upstream_requests() {
  log_sync "${UP_PORT[$1]}" "$T/$1.log"
  grep -E '"[A-Z]+ /v2/[^ ]* HTTP' "$T/$1.log" | grep -vc '/v2/?log-sync='
}

# --- regcache ----------------------------------------------------------------

REGCACHE_PORT=

# start_regcache CONFIG_JSON [STATUS] — regcache on a free port, up once GET /v2/
# answers STATUS (200; 401 with client auth); log in $T/regcache.log.
v2_status_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/")" = "$2" ]; }
start_regcache() {
  REGCACHE_PORT=$(free_port)
  printf '%s\n' "$1" >"$T/regcache.json"
  spawn regcache "$REGCACHE" serve --listen "127.0.0.1:$REGCACHE_PORT" \
    --data-dir "$T/regcache-data" --config "$T/regcache.json"
  if ! wait_until 20 v2_status_is "$REGCACHE_PORT" "${2:-200}"; then
    not_ok "regcache answers /v2/"
    show_log regcache
    finish
  fi
}

# start_hub_mirror — regcache mirroring the upstream "hub" as docker.io (library/ prefix).
start_hub_mirror() {
  start_regcache "$(cat <<EOF
{"upstreams": [{"name": "docker.io", "url": "http://127.0.0.1:${UP_PORT[hub]}",
                "library_prefix": true, "tag_ttl_s": 3600}],
 "default_upstream": "docker.io", "log_level": "info"}
EOF
)"
}

# write_mirror_registries_conf FILE — a containers-registries.conf(5) for podman and
# skopeo: docker.io's primary location is a port nothing listens on, so only the
# regcache mirror can serve.
write_mirror_registries_conf() {
  cat >"$1" <<EOF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
[[registry]]
prefix = "docker.io"
location = "127.0.0.1:$(free_port)"
insecure = true
[[registry.mirror]]
location = "127.0.0.1:$REGCACHE_PORT"
insecure = true
EOF
}

# check_regcache_stops — regcache is still running, and on SIGTERM exits 0
# within 30 s (under AddressSanitizer this also catches leaks and errors).
check_regcache_stops() {
  local pid=${PID_OF[regcache]} rc deadline=$((SECONDS + 30))
  if ! alive regcache; then
    not_ok "regcache is still running at the end"
    show_log regcache
    return
  fi
  ok "regcache is still running at the end"
  kill -TERM "$pid"
  while alive regcache && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if alive regcache; then
    not_ok "regcache exits within 30 s of SIGTERM"
    return
  fi
  wait "$pid"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    ok "regcache exits 0 on SIGTERM"
  else
    not_ok "regcache exits 0 on SIGTERM (exit code $rc)"
    show_log regcache 40
  fi
}

# regcache_lines — the number of lines in regcache's log now;
# regcache_log_since N — regcache's log lines after line N.
regcache_lines() {
  log_sync "$REGCACHE_PORT" "$T/regcache.log"
  wc -l <"$T/regcache.log"
}
regcache_log_since() {
  log_sync "$REGCACHE_PORT" "$T/regcache.log"
  tail -n "+$(($1 + 1))" "$T/regcache.log"
}

# logged_since N ERE — regcache logged a line matching ERE after line N.
logged_since() { regcache_log_since "$1" | grep -E "$2" >/dev/null; }

# blob_hits_since N — blob requests regcache answered from its cache after line N.
blob_hits_since() {
  regcache_log_since "$1" | grep -cE ' (GET|HEAD) /v2/[^ ]*/blobs/sha256:[0-9a-f]{64}[^ ]* 20[06] .* hit( id=[^ ]*)?$'
}

# tls_hello_answered — sends a TLS ClientHello to regcache's plain-HTTP port, as
# skopeo and podman do first; succeeds when regcache answers with an HTTP 400 or
# closes the connection within 10 s (not when it hangs).
tls_hello_answered() {
  python3 - "$REGCACHE_PORT" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context()
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(hello)
data = b""
try:
    while len(data) < 4096:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            break
except socket.timeout:
    print("no answer and no close within 10 s; got %r" % data[:200])
    sys.exit(1)
except ConnectionResetError:
    pass
status_line = data.split(b"\r\n", 1)[0]
print("answer: %r" % (status_line or b"(closed without data)"))
sys.exit(0 if data == b"" or (status_line.startswith(b"HTTP/1.") and b" 400" in status_line) else 1)
EOF
}

# check_tls_fallback ENGINE LOG — from the engine's debug output in LOG: with
# `insecure = true` it first pinged regcache over TLS, got an HTTP answer
# (regcache's 400), then pinged over HTTP and went on. The engine's own account
# is used because regcache's "TLS handshake … answered 400" log line is
# sometimes missing (when the client has closed before regcache logs).
check_tls_fallback() {
  local log=$2 url=127.0.0.1:$REGCACHE_PORT/v2/
  check "$1 sent a TLS ClientHello to the plain-HTTP port and got an HTTP answer" \
    grep -q "Ping https://$url err .*server gave HTTP response to HTTPS client" "$log"
  check "$1 then pinged over plain HTTP (200) and carried on" grep -q "Ping http://$url status 200" "$log"
}

# check_tls_hello — the check around tls_hello_answered, showing regcache's answer.
check_tls_hello() {
  local answer
  if answer=$(tls_hello_answered 2>&1); then
    ok "regcache answers a raw TLS ClientHello on its plain-HTTP port with 400 or a close ($answer)"
  else
    not_ok "regcache answers a raw TLS ClientHello on its plain-HTTP port with 400 or a close"
    printf '%s\n' "$answer" | diag
  fi
  check "regcache answers /v2/ after that ClientHello" curl -fsS "http://127.0.0.1:$REGCACHE_PORT/v2/"
}
