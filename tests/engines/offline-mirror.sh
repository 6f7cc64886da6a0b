#!/usr/bin/env bash
# The offline lab mirror end to end (issue 14), with real engines:
#   a connected regcache in front of a local docker-registry standing in for
#   Docker Hub; `regcache warm` a list holding a two-platform index
#   (library/multi:1.0) and a single-platform image (library/busybox); `regcache
#   export` to a tar; everything stopped; `regcache import` into a fresh data
#   dir; regcache started --offline with the upstream gone; dockerd
#   (registry-mirrors) and podman (registries.conf mirror) pull both references
#   by tag, with the upstream's digests. The old upstream address gets a
#   listener that counts connections: it must see none, and regcache's log no
#   upstream attempt.
# Usage: offline-mirror.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v dockerd >/dev/null || { not_ok "dockerd installed (run .ci/install-engines)"; finish; }
command -v podman >/dev/null || { not_ok "podman installed (run .ci/install-engines)"; finish; }
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)

# --- the connected machine -------------------------------------------------
start_upstream hub
busybox_digest=$(push_image hub library/busybox latest "offline busybox") || { not_ok "push library/busybox"; finish; }
multi_digest=$(push_image hub library/multi 1.0 "offline multi" --multi) || { not_ok "push library/multi"; finish; }
start_hub_mirror
online_port=$REGCACHE_PORT

cat >"$T/lab-images.txt" <<LIST
# the lab's images
docker.io/library/busybox:latest
docker.io/library/multi:1.0      # two platforms
LIST
if "$REGCACHE" warm --server "http://127.0.0.1:$online_port" --file "$T/lab-images.txt" >"$T/warm.log" 2>&1; then
  ok "regcache warm of the list (an index with two platforms and an image)"
else
  not_ok "regcache warm of the list"
  diag <"$T/warm.log"
  finish
fi
check "warm fetched both platforms of the index" grep -q "multi:1.0 $multi_digest \[linux/amd64,linux/arm64\]" "$T/warm.log"
if "$REGCACHE" warm --server "http://127.0.0.1:$online_port" --file "$T/lab-images.txt" >"$T/warm2.log" 2>&1; then
  check "a second warm fetches nothing new" grep -q ": nothing new" "$T/warm2.log"
else
  not_ok "second regcache warm"
  diag <"$T/warm2.log"
fi
mkdir -p "$T/usb"
check "regcache export --all to a tar while the server runs" \
  "$REGCACHE" export --data-dir "$T/regcache-data" --all --output "$T/usb/lab.tar"

# Stop everything of the connected side.
stop_spawned() { # NAME
  local pid=${PID_OF[$1]} deadline=$((SECONDS + 20))
  kill -TERM "$pid" 2>/dev/null
  while alive "$1" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
stop_spawned regcache
stop_spawned hub
check "the connected regcache and the upstream are stopped" test -z "$(alive regcache && echo r)$(alive hub && echo h)"

# --- the isolated machine ----------------------------------------------------
check "regcache import of the tar into a fresh data dir" \
  "$REGCACHE" import --data-dir "$T/offline-data" "$T/usb/lab.tar"
"$REGCACHE" ls --data-dir "$T/offline-data" >"$T/ls.txt" 2>&1
check "regcache ls shows both imported tags" grep -qE 'docker.io +library/multi +1.0 .*linux/amd64,linux/arm64' "$T/ls.txt"

# Whatever listens on the old upstream address counts connections: there must be none.
cat >"$T/listener.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    print("connection", flush=True)
    c.close()
PY
spawn old-upstream python3 "$T/listener.py" "${UP_PORT[hub]}"
wait_until 10 grep -q listening "$T/old-upstream.log" || not_ok "listener on the old upstream address"

# The same upstream configured, with tag_ttl_s 0: were regcache not offline,
# every tag request would revalidate there and the listener would count it.
cat >"$T/offline.json" <<EOF2
{"upstreams": [{"name": "docker.io", "url": "http://127.0.0.1:${UP_PORT[hub]}",
                "library_prefix": true, "tag_ttl_s": 0}],
 "default_upstream": "docker.io", "log_level": "info"}
EOF2
REGCACHE_PORT=$(free_port)
spawn regcache "$REGCACHE" serve --listen "127.0.0.1:$REGCACHE_PORT" --data-dir "$T/offline-data" \
  --config "$T/offline.json" --offline
if ! wait_until 20 curl -fsS "http://127.0.0.1:$REGCACHE_PORT/v2/"; then
  not_ok "the offline regcache answers /v2/"
  show_log regcache
  finish
fi
ok "regcache --offline serves the imported data dir"

# dockerd
echo "{\"registry-mirrors\": [\"http://127.0.0.1:$REGCACHE_PORT\"]}" >"$T/daemon.json"
spawn dockerd dockerd --config-file "$T/daemon.json" --data-root "$T/docker-root" --exec-root "$T/docker-exec" \
  --pidfile "$T/docker.pid" -H "unix://$T/docker.sock" --iptables=false --ip6tables=false --bridge=none \
  --storage-driver=vfs
docker_() { DOCKER_CONFIG=$T/docker-cli "$DOCKER_CLI" -H "unix://$T/docker.sock" "$@"; }
if wait_until 60 docker_ version; then
  ok "dockerd starts"
  for ref in busybox:latest library/multi:1.0; do
    if docker_ pull -q "$ref" >"$T/docker-pull.log" 2>&1; then
      ok "docker pull $ref from the offline mirror"
    else
      not_ok "docker pull $ref from the offline mirror"
      tail -15 "$T/docker-pull.log" | diag
      show_log regcache 15
    fi
  done
  check_eq "docker: busybox's RepoDigest is the upstream's" "busybox@$busybox_digest" \
    "$(docker_ image inspect --format '{{index .RepoDigests 0}}' busybox 2>&1)"
  check_eq "docker: multi's RepoDigest is the upstream index's" "multi@$multi_digest" \
    "$(docker_ image inspect --format '{{index .RepoDigests 0}}' multi:1.0 2>&1)"
  check_eq "docker run --rm --network none busybox runs the imported image" "offline busybox" \
    "$(docker_ run --rm --network none busybox 2>&1)"
else
  not_ok "dockerd starts"
  show_log dockerd 40
fi
stop_spawned dockerd

# podman
write_mirror_registries_conf "$T/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
podman_() {
  podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
for ref in docker.io/library/busybox:latest docker.io/library/multi:1.0; do
  if podman_ pull -q "$ref" >"$T/podman-pull.log" 2>&1; then
    ok "podman pull $ref from the offline mirror"
  else
    not_ok "podman pull $ref from the offline mirror"
    tail -15 "$T/podman-pull.log" | diag
  fi
done
check_eq "podman: busybox's digest is the upstream's" "$busybox_digest" \
  "$(podman_ image inspect --format '{{.Digest}}' docker.io/library/busybox:latest 2>&1)"
check_eq "podman: multi's digest is the upstream index's" "$multi_digest" \
  "$(podman_ image inspect --format '{{.Digest}}' docker.io/library/multi:1.0 2>&1)"

check_eq "zero connections to the old upstream address" 0 "$(grep -c connection "$T/old-upstream.log")"
check "regcache's log shows no upstream attempt and nothing it lacked" \
  bash -c "! grep -E 'unreachable|broke off|not cached, and regcache is offline' '$T/regcache.log'"
check_eq "every manifest and blob was a cache hit (no miss, no stale)" 0 \
  "$(grep -cE ' (miss|stale|revalidated)$' "$T/regcache.log")"
check_regcache_stops
finish
