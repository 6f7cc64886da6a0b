#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are run through check and wait_until
# CI test of the regcache Debian package (issue "Debian package and hardened
# systemd service"). Needs root: it installs, upgrades, removes and purges the
# package on this machine.
#   packaging/test-package.sh            build the .deb unless build/ has a current one
#   packaging/test-package.sh --rebuild  always build it first
# Steps: build (or reuse) and lintian; apt-get install; files, owners, modes,
# conffile, user; systemd-analyze verify; run the installed binary as the
# regcache user with the installed config against a local docker-registry and
# pull an image through it with skopeo; READY=1 over NOTIFY_SOCKET once the port
# accepts; SIGTERM gives STOPPING=1 and exit 0; SIGHUP keeps it serving; an
# upgrade keeps an edited conffile and the cache and restarts the service;
# remove keeps config and cache; purge drops them.
# Everything listens on 127.0.0.1 on free ports. Ends with "N passed, M failed".
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2

if [ "$(id -u)" -ne 0 ]; then
  echo "test-package: must run as root (it installs and purges the package)" >&2
  exit 2
fi

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $1"; }
# check DESCRIPTION COMMAND...: runs COMMAND, counts it.
check() {
  local what="$1"
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# The final line, and the exit status.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
# A step that everything after it depends on failed.
abort() {
  not_ok "$1"
  echo "test-package: cannot go on after that failure" >&2
  finish
}

apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@"; }

# ---------------------------------------------------------------------------
# Temp dir and the processes this script starts; all cleaned up on exit.
T="$(mktemp -d /tmp/regcache-pkgtest.XXXXXX)"
chmod 0755 "$T"  # the regcache user must reach its data dir and the notify socket
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1"; }
v2_answers() { [ "$(http_status "http://127.0.0.1:$1/v2/")" = 200 ]; }
# Alive and not a zombie.
running() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
exited() { ! running "$1"; }
owner_mode() { stat -c '%U:%G %a' "$1" 2>/dev/null; }
package_status() { dpkg-query -W -f='${Status}' regcache 2>/dev/null; }

# ---------------------------------------------------------------------------
echo "# tools"
need=(curl python3 skopeo docker-registry systemd man-db gzip tar)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-package: installing ${missing[*]}"
  if ! { apt-get update -qq && apt_quiet install --no-install-recommends "${missing[@]}" >/dev/null; }; then
    abort "install the test tools: ${missing[*]}"
  fi
fi

# ---------------------------------------------------------------------------
echo "# build"
version="$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)"
arch="$(dpkg --print-architecture)"
deb="$root/build/regcache_${version}_${arch}.deb"
rebuild=0
[ "${1:-}" = "--rebuild" ] && rebuild=1
stamp="$root/build/deb/source.stamp"  # written by build-deb.sh when it copies the sources
if [ ! -f "$deb" ] || [ ! -f "$stamp" ] ||
  [ -n "$(find CMakeLists.txt common db upstream cache proxy etc packaging/debian packaging/build-deb.sh \
    -type f -newer "$stamp" -print -quit)" ]; then
  rebuild=1
fi
if [ "$rebuild" -eq 1 ]; then
  if packaging/build-deb.sh >"$T/build-deb.log" 2>&1; then
    ok "build-deb.sh builds $(basename "$deb") and lintian reports no errors and no warnings"
  else
    tail -n 40 "$T/build-deb.log"
    abort "build-deb.sh builds the package lintian-clean"
  fi
else
  echo "test-package: reusing $deb (built from the current sources)"
  lintian --fail-on error,warning "$deb" >"$T/lintian.log" 2>&1
  check "lintian reports no errors and no warnings on $(basename "$deb")" [ $? -eq 0 ]
  grep -E '^[EW]:' "$T/lintian.log"
fi

# ---------------------------------------------------------------------------
echo "# install"
if [ -n "$(package_status)" ]; then
  echo "test-package: purging the regcache package left from an earlier run"
  apt_quiet purge regcache >/dev/null 2>&1
fi
# The user is kept on purge, so an earlier run's user may exist: that is fine.
if apt_quiet install "$deb" >"$T/install.log" 2>&1; then
  ok "apt-get install ./$(basename "$deb")"
else
  cat "$T/install.log"
  abort "apt-get install ./$(basename "$deb")"
fi
check "dpkg reports regcache $version installed" \
  [ "$(dpkg-query -W -f='${Status} ${Version}' regcache)" = "install ok installed $version" ]

echo "# files, owners and modes"
check "/usr/bin/regcache is root:root 755" [ "$(owner_mode /usr/bin/regcache)" = "root:root 755" ]
check "regcache --version prints $version's upstream version" \
  [ "$(/usr/bin/regcache --version)" = "regcache ${version%-*}" ]
check "/etc/regcache is root:root 755" [ "$(owner_mode /etc/regcache)" = "root:root 755" ]
check "/etc/regcache/regcache.json is root:regcache 640 (may hold credentials)" \
  [ "$(owner_mode /etc/regcache/regcache.json)" = "root:regcache 640" ]
check "/etc/regcache/regcache.json is a conffile" \
  grep -q '^ /etc/regcache/regcache.json [0-9a-f]\{32\}$' <(dpkg-query -W -f='${Conffiles}\n' regcache)
unit=/lib/systemd/system/regcache.service
check "$unit is root:root 644" [ "$(owner_mode "$unit")" = "root:root 644" ]
man=/usr/share/man/man8/regcache.8.gz
check "$man is root:root 644" [ "$(owner_mode "$man")" = "root:root 644" ]
check "regcache(8) renders without warnings" \
  bash -c "MANWIDTH=80 man --warnings -l $man 2>&1 >/dev/null | { ! grep -q .; }"
check "copyright is installed" [ -f /usr/share/doc/regcache/copyright ]
check "changelog is installed" [ -f /usr/share/doc/regcache/changelog.Debian.gz ]
check "the haproxy example for replicas is installed" [ -f /usr/share/doc/regcache/examples/haproxy-replicas.cfg ]
has_user() { getent passwd regcache >/dev/null; }
check "the regcache system user exists" has_user
uid="$(id -u regcache 2>/dev/null || echo none)"
check "regcache is a system uid ($uid), group regcache, no login shell" \
  bash -c "[ $uid -lt 1000 ] && [ \"\$(id -gn regcache)\" = regcache ] &&
           [ \"\$(getent passwd regcache | cut -d: -f7)\" = /usr/sbin/nologin ]"
check "/var/lib/regcache is regcache:regcache 750" \
  [ "$(owner_mode /var/lib/regcache)" = "regcache:regcache 750" ]

echo "# conffile"
# JSON with comments -> JSON; prints every key path, or the value at one path.
cat >"$T/jsonc.py" <<'EOF'
import json, sys

def strip_comments(text):
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\":
                out.append(text[i + 1]); i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True; out.append(c)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)

def paths(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + k
            yield from paths(v, prefix + k + ".")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix[:-1] + "[%d]." % i)

doc = json.loads(strip_comments(open(sys.argv[1], encoding="utf-8").read()))
if len(sys.argv) == 2:
    print("\n".join(sorted(paths(doc))))
else:
    node = doc
    for part in sys.argv[2].split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    print(node)
EOF
conf=/etc/regcache/regcache.json
jsonc() { python3 "$T/jsonc.py" "$@"; }
check "the conffile has exactly the keys of etc/regcache.json" \
  diff <(jsonc etc/regcache.json) <(jsonc "$conf")
check "the conffile listens on 0.0.0.0:5000" [ "$(jsonc "$conf" listen)" = "0.0.0.0:5000" ]
check "the conffile keeps data in /var/lib/regcache" [ "$(jsonc "$conf" data_dir)" = "/var/lib/regcache" ]
check "the conffile's first upstream is Docker Hub" \
  [ "$(jsonc "$conf" upstreams.0.url)" = "https://registry-1.docker.io" ]
check "the conffile's default upstream is the first one" \
  [ "$(jsonc "$conf" default_upstream)" = "$(jsonc "$conf" upstreams.0.name)" ]

echo "# systemd unit"
if systemd-analyze verify "$unit" >"$T/verify.log" 2>&1 && ! grep -q . "$T/verify.log"; then
  ok "systemd-analyze verify $unit (no findings)"
else
  cat "$T/verify.log"
  not_ok "systemd-analyze verify $unit (no findings)"
fi
prop() { grep -qx "$1" "$unit"; }
# shellcheck disable=SC2016  # $MAINPID is literal unit text
for line in 'Type=notify' 'ExecStart=/usr/bin/regcache serve --config /etc/regcache/regcache.json' \
  'ExecReload=/bin/kill -HUP $MAINPID' 'User=regcache' 'StateDirectory=regcache' 'Restart=on-failure' \
  'LimitNOFILE=65536' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
  'PrivateDevices=yes' 'ProtectKernelTunables=yes' 'ProtectControlGroups=yes' \
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
  'CapabilityBoundingSet='; do
  check "unit has $line" prop "$line"
done
exposure="$(systemd-analyze security --offline=yes "$unit" 2>/dev/null |
  sed -n 's/.*Overall exposure level for regcache.service: \([0-9.]*\).*/\1/p')"
echo "  systemd-analyze security: exposure ${exposure:-?} (0 = locked down, 10 = unprotected)"
check "systemd-analyze security rates the unit at most 2.0 (OK)" \
  python3 -c "import sys; sys.exit(0 if '$exposure' and float('$exposure') <= 2.0 else 1)"

# ---------------------------------------------------------------------------
echo "# serving pulls as the regcache user"
up_port="$(free_port)"
mkdir -p "$T/up"
cat >"$T/up.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $T/up}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$up_port}
EOF
docker-registry serve "$T/up.yml" >"$T/up.log" 2>&1 &
up_pid=$!
pids+=("$up_pid")
wait_until 30 v2_answers "$up_port" || { cat "$T/up.log"; abort "docker-registry answers on 127.0.0.1:$up_port"; }

# A tiny OCI image: a config blob and one gzip'd tar layer of random bytes.
cat >"$T/mkimage.py" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile

layout, tag = sys.argv[1], sys.argv[2]
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)

def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    payload = os.urandom(64 * 1024)
    member = tarfile.TarInfo("regcache-test/payload.bin")
    member.size, member.mode, member.mtime = len(payload), 0o644, 0
    tar.addfile(member, io.BytesIO(payload))
tar_bytes = raw.getvalue()
layer_digest, layer_size = put(gzip.compress(tar_bytes, mtime=0))
config = {"architecture": "amd64", "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}}
config_digest, config_size = put(json.dumps(config, separators=(",", ":")).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer_size}]}
manifest_digest, manifest_size = put(json.dumps(manifest, separators=(",", ":")).encode())
index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"], "digest": manifest_digest,
         "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
print(manifest_digest, config_digest, layer_digest)
EOF
read -r manifest_digest config_digest layer_digest < <(python3 "$T/mkimage.py" "$T/image" v1)
[ -n "${layer_digest:-}" ] || abort "generate a test OCI image"

skopeo_copy() {
  mkdir -p "$T/skopeo/home" "$T/skopeo/tmp"
  : >"$T/skopeo/registries.conf"
  HOME="$T/skopeo/home" TMPDIR="$T/skopeo/tmp" REGISTRY_AUTH_FILE="$T/skopeo/auth.json" \
    timeout 120 skopeo --insecure-policy --registries-conf "$T/skopeo/registries.conf" \
    --tmpdir "$T/skopeo/tmp" copy --retry-times 0 --preserve-digests "$@"
}
repo=regcache-pkgtest/tiny
if skopeo_copy --dest-tls-verify=false "oci:$T/image:v1" "docker://127.0.0.1:$up_port/$repo:v1" \
  >"$T/push.log" 2>&1; then
  ok "push the test image to docker-registry"
else
  cat "$T/push.log"
  abort "push the test image to docker-registry"
fi

# The notification socket the test owns. The receiver records each datagram
# and whether, at that moment, regcache's port answers HTTP.
rc_port="$(free_port)"
cat >"$T/notify.py" <<'EOF'
import json, os, socket, sys, urllib.request

path, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)  # regcache runs as another user
open(out + ".bound", "w").close()
sock.settimeout(120)
with open(out, "a") as log:
    while True:
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        try:
            status = urllib.request.urlopen("http://127.0.0.1:%d/v2/" % port, timeout=5).status
        except Exception as e:
            status = getattr(e, "code", None) or repr(e)
        log.write(json.dumps({"state": data.split("\n"), "v2_status": status}) + "\n")
        log.flush()
        if "STOPPING=1" in data.split("\n"):
            break
EOF
python3 "$T/notify.py" "$T/notify.sock" "$rc_port" "$T/notify.log" &
notify_pid=$!
pids+=("$notify_pid")
wait_until 10 test -e "$T/notify.log.bound" || abort "the notification receiver binds $T/notify.sock"

mkdir "$T/data"
chown regcache:regcache "$T/data"
# start_regcache LOG [ENV=VALUE...]: the installed binary as the regcache user
# with the installed config; sets rc_pid.
start_regcache() {
  local log="$1"
  shift
  env "$@" setpriv --reuid=regcache --regid=regcache --init-groups --inh-caps=-all \
    /usr/bin/regcache serve --config "$conf" --data-dir "$T/data" --listen "127.0.0.1:$rc_port" \
    --upstream "http://127.0.0.1:$up_port" >"$log" 2>&1 &
  rc_pid=$!
  pids+=("$rc_pid")
}
start_regcache "$T/regcache.log" NOTIFY_SOCKET="$T/notify.sock"
if wait_until 30 v2_answers "$rc_port"; then
  ok "the installed regcache serves /v2/ on 127.0.0.1:$rc_port with the installed config"
else
  cat "$T/regcache.log"
  abort "the installed regcache serves /v2/ on 127.0.0.1:$rc_port with the installed config"
fi
check "regcache runs as uid regcache (real, effective, saved, fs)" \
  grep -qE "^Uid:[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}[[:space:]]+${uid}$" "/proc/$rc_pid/status"

if skopeo_copy --src-tls-verify=false "docker://127.0.0.1:$rc_port/$repo:v1" "oci:$T/out:v1" >"$T/pull.log" 2>&1; then
  ok "skopeo pulls $repo:v1 through regcache"
else
  cat "$T/pull.log"
  not_ok "skopeo pulls $repo:v1 through regcache"
fi
pulled_digest="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' \
  "$T/out/index.json" 2>/dev/null)"
check "the pulled manifest digest equals the pushed one ($manifest_digest)" [ "$pulled_digest" = "$manifest_digest" ]
blobs_match() {
  local d
  for d in "$config_digest" "$layer_digest"; do
    cmp -s "$T/image/blobs/sha256/${d#sha256:}" "$T/out/blobs/sha256/${d#sha256:}" || return 1
  done
}
check "the pulled config and layer are byte for byte the pushed ones" blobs_match
check "the cached layer is stored in the temp data dir, owned by regcache" \
  [ "$(stat -c %U "$T/data/blobs/sha256/${layer_digest:7:2}/${layer_digest#sha256:}" 2>/dev/null)" = regcache ]
check "a second fetch of the layer is a cache hit" \
  grep -qi '^x-cache-status: hit' <(curl -s -o /dev/null -D - --max-time 10 \
    "http://127.0.0.1:$rc_port/v2/$repo/blobs/$layer_digest")

echo "# readiness notification"
ready_line="$(grep -m1 '"READY=1"' "$T/notify.log" 2>/dev/null)"
if [ -n "$ready_line" ]; then
  ok "READY=1 arrives on NOTIFY_SOCKET"
  check "when READY=1 arrives the port already answers HTTP (GET /v2/ -> 200)" \
    python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["v2_status"] == 200 else 1)' "$ready_line"
else
  not_ok "READY=1 arrives on NOTIFY_SOCKET (got: $(tr '\n' ' ' <"$T/notify.log" 2>/dev/null))"
fi

echo "# stop"
# stop_regcache: SIGTERM, then the exit status (or 255 if it does not exit).
stop_regcache() {
  kill -TERM "$rc_pid" 2>/dev/null
  wait_until 30 exited "$rc_pid" || return 255
  wait "$rc_pid"
}
stop_regcache
check "SIGTERM: regcache exits 0" [ $? -eq 0 ]
check "STOPPING=1 arrives on NOTIFY_SOCKET on shutdown" \
  wait_until 5 grep -q '"STOPPING=1"' "$T/notify.log"
kill "$notify_pid" 2>/dev/null
wait "$notify_pid" 2>/dev/null

echo "# anonymous pushes"
# As the packaged service runs: on all interfaces (the conffile's 0.0.0.0, on a
# free port here), reached by this test only through 127.0.0.1.
any_port="$(free_port)"
env setpriv --reuid=regcache --regid=regcache --init-groups --inh-caps=-all \
  /usr/bin/regcache serve --config "$conf" --data-dir "$T/data" --listen "0.0.0.0:$any_port" \
  --upstream "http://127.0.0.1:$up_port" >"$T/regcache-any.log" 2>&1 &
any_pid=$!
pids+=("$any_pid")
if wait_until 30 v2_answers "$any_port"; then
  check "a fresh install refuses an anonymous push into local/ with 401" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:$any_port/v2/local/app/blobs/uploads/")" = 401 ]
  check "the 401 tells the admin how to add a user" \
    grep -q 'htpasswd -B' <(curl -s --max-time 10 -X POST "http://127.0.0.1:$any_port/v2/local/app/blobs/uploads/")
  check "the start-up log says anonymous clients may not push" \
    grep -q 'anonymous clients may pull but not push' "$T/regcache-any.log"
  check "anonymous pulls still work ($repo:v1)" \
    [ "$(http_status "http://127.0.0.1:$any_port/v2/$repo/manifests/v1")" = 200 ]
else
  cat "$T/regcache-any.log"
  not_ok "regcache serves /v2/ on 0.0.0.0:$any_port (reached through 127.0.0.1)"
fi
kill -TERM "$any_pid" 2>/dev/null
wait_until 30 exited "$any_pid"
wait "$any_pid" 2>/dev/null

echo "# reload"
start_regcache "$T/regcache2.log"
wait_until 30 v2_answers "$rc_port" || { cat "$T/regcache2.log"; abort "regcache starts again on its cache"; }
kill -HUP "$rc_pid"
# A process killed by the signal is gone at once; one that handles it keeps
# answering, from its cache.
if v2_answers "$rc_port" && running "$rc_pid" &&
  grep -qi '^x-cache-status: hit' <(curl -s -o /dev/null -D - --max-time 10 \
    "http://127.0.0.1:$rc_port/v2/$repo/blobs/$layer_digest") && running "$rc_pid"; then
  ok "SIGHUP (systemctl reload) leaves regcache running and serving its cache"
else
  not_ok "SIGHUP (systemctl reload) leaves regcache running and serving its cache"
  tail -n 3 "$T/regcache2.log"
fi
if running "$rc_pid"; then
  stop_regcache
  check "SIGTERM after SIGHUP: regcache exits 0" [ $? -eq 0 ]
else
  wait "$rc_pid" 2>/dev/null
  echo "  regcache exited with status $? on SIGHUP"
fi

# ---------------------------------------------------------------------------
# Upgrade, then remove, in a mount namespace where /run/systemd/system exists
# (so the maintainer scripts act as under systemd) and systemctl and
# deb-systemd-invoke are stand-ins that log what they are asked to do.
mkdir -p "$T/fakebin"
for tool in systemctl deb-systemd-invoke; do
  cat >"$T/fakebin/$tool" <<EOF
#!/bin/sh
echo "$tool \$*" >>"$T/systemd-calls.log"
EOF
  chmod 0755 "$T/fakebin/$tool"
done
# apt gives maintainer scripts the PATH of DPkg::Path.
apt_as_if_systemd() {
  : >"$T/systemd-calls.log"
  unshare --mount --propagation private sh -c \
    'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' sh \
    env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 \
    -o DPkg::Path="$T/fakebin:/usr/sbin:/usr/bin:/sbin:/bin" "$@"
}

echo "# upgrade"
# The same package as a later version.
next="${version}+pkgtest1"
dpkg-deb -R "$deb" "$T/repack"
sed -i "s/^Version: .*/Version: $next/" "$T/repack/DEBIAN/control"
dpkg-deb --root-owner-group -b "$T/repack" "$T/regcache_${next}_${arch}.deb" >/dev/null
sed -i 's/"log_level": "info"/"log_level": "warn"/' "$conf"
cp "$conf" "$T/edited.json"
setpriv --reuid=regcache --regid=regcache --init-groups sh -c 'echo cached >/var/lib/regcache/marker'
if apt_as_if_systemd install "$T/regcache_${next}_${arch}.deb" >"$T/upgrade.log" 2>&1; then
  ok "apt-get install upgrades $version -> $next"
else
  cat "$T/upgrade.log"
  not_ok "apt-get install upgrades $version -> $next"
fi
check "dpkg reports $next installed" [ "$(dpkg-query -W -f='${Version}' regcache)" = "$next" ]
check "upgrade keeps the edited conffile" cmp -s "$conf" "$T/edited.json"
check "upgrade keeps the conffile root:regcache 640" [ "$(owner_mode "$conf")" = "root:regcache 640" ]
check "upgrade keeps the cache in /var/lib/regcache" [ "$(cat /var/lib/regcache/marker 2>/dev/null)" = cached ]
check "upgrade restarts the service" grep -qx 'deb-systemd-invoke restart regcache.service' "$T/systemd-calls.log"

echo "# remove"
if apt_as_if_systemd remove regcache >"$T/remove.log" 2>&1; then
  ok "apt-get remove regcache"
else
  cat "$T/remove.log"
  not_ok "apt-get remove regcache"
fi
check "remove stops the service" grep -qx 'deb-systemd-invoke stop regcache.service' "$T/systemd-calls.log"
check "remove leaves the package in state config-files" \
  [ "$(package_status)" = "deinstall ok config-files" ]
check "remove deletes /usr/bin/regcache" [ ! -e /usr/bin/regcache ]
check "remove deletes the unit" [ ! -e "$unit" ]
check "remove keeps the edited /etc/regcache/regcache.json" cmp -s "$conf" "$T/edited.json"
check "remove keeps /var/lib/regcache and its content" [ "$(cat /var/lib/regcache/marker 2>/dev/null)" = cached ]

echo "# purge"
if apt_quiet purge regcache >"$T/purge.log" 2>&1; then
  ok "apt-get purge regcache"
else
  cat "$T/purge.log"
  not_ok "apt-get purge regcache"
fi
check "purge leaves no trace in dpkg's database" [ -z "$(package_status)" ]
check "purge deletes /etc/regcache" [ ! -e /etc/regcache ]
check "purge deletes /var/lib/regcache" [ ! -e /var/lib/regcache ]
check "purge drops the conffile's statoverride" \
  bash -c '! dpkg-statoverride --list /etc/regcache/regcache.json >/dev/null'
# Kept on purge by design, as usual for Debian system users: see README.Debian.
check "purge keeps the regcache system user (documented in README.Debian)" has_user

finish
