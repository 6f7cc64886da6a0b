#!/usr/bin/env bash
# Three regcache replicas behind haproxy, configured with the shipped example
# etc/haproxy-replicas.cfg as it stands (issue 18, "Push through replica 1,
# pull through replicas 2 and 3 ... dockerd through haproxy"):
#   - the replicas share one data dir (one SQLite database in WAL mode, one
#     blob store): the one-machine form of the shared metadata and blob store
#     that replicas on several machines get from PostgreSQL and S3;
#   - an image pushed with skopeo through replica 1 is pulled with skopeo
#     through replicas 2 and 3 and with dockerd through haproxy, same digests;
#     one pushed through haproxy (its upload's requests on one replica) is
#     whole on every replica;
#   - dockerd pulls Docker Hub-style names through haproxy as its
#     registry-mirrors entry; every request of one path reaches one replica
#     (the consistent hash), so each blob is fetched from the upstream once;
#   - haproxy refuses the replicas' internal fill endpoint from outside;
#   - the replica that served most, killed with SIGKILL: haproxy's /readyz checks take it out, and
#     a second pull after `docker rmi` succeeds through the other two.
# With REGCACHE_REPLICAS_S3_PEERS=PATH/TO/s3_peers (engines/replicas-haproxy-s3,
# replicas-haproxy-s3.sh) the replicas run in the issue's setup instead: one
# PostgreSQL database, one bucket on a single-node Ceph RGW (both started by
# s3_peers inside the sandbox, on its loopback), `cluster` set (the fill lease),
# and each replica its own data dir; every check above holds the same.
# Usage: [REGCACHE_REPLICAS_S3_PEERS=PATH/TO/s3_peers] replicas-haproxy.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v dockerd >/dev/null || { not_ok "dockerd installed (run .ci/install-engines)"; finish; }
command -v haproxy >/dev/null || { not_ok "haproxy installed (run .ci/install-deps)"; finish; }
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)

start_upstream hub
busybox_digest=$(push_image hub library/busybox latest "replicas busybox") || { not_ok "push library/busybox"; finish; }

# Three replicas, each with its own port and log: on one data dir, or (S3
# mode) on PostgreSQL + RGW with a data dir each.
STORE="one data dir"
EXTRA_CONFIG=""
if [ -n "${REGCACHE_REPLICAS_S3_PEERS:-}" ]; then
  STORE="PostgreSQL + one RGW bucket"
  spawn s3-peers "$REGCACHE_REPLICAS_S3_PEERS" "$T/peers"
  if ! wait_until 180 test -f "$T/peers/peers.env"; then
    not_ok "s3_peers starts PostgreSQL and RGW"
    show_log s3-peers 40
    finish
  fi
  # shellcheck disable=SC1091
  source "$T/peers/peers.env"
  ok "PostgreSQL and RGW run in the sandbox (RGW $S3_ENDPOINT, bucket $S3_BUCKET_1)"
  printf 'replicas-haproxy-cluster-secret-0123456789\n' >"$T/cluster-secret"
  chmod 600 "$T/cluster-secret"
  EXTRA_CONFIG=s3
fi
# The config (python3: jq is not among the engines' tools); the S3 mode's
# coordinates come from peers.env through the environment.
UP_URL=http://127.0.0.1:${UP_PORT[hub]} CLUSTER_SECRET=$T/cluster-secret S3_MODE=$EXTRA_CONFIG \
  PG_DSN_1=${PG_DSN_1:-} S3_ENDPOINT=${S3_ENDPOINT:-} S3_BUCKET_1=${S3_BUCKET_1:-} S3_REGION=${S3_REGION:-} \
  S3_ACCESS_KEY=${S3_ACCESS_KEY:-} S3_SECRET_KEY_FILE=${S3_SECRET_KEY_FILE:-} python3 - >"$T/replica.json" <<'PY' ||
import json, os
e = os.environ
c = {"upstreams": [{"name": "docker.io", "url": e["UP_URL"], "library_prefix": True, "tag_ttl_s": 3600}],
     "default_upstream": "docker.io", "hosted": ["local"], "log_level": "info"}
if e["S3_MODE"]:
    c["metadata"] = {"backend": "postgres", "dsn": e["PG_DSN_1"]}
    c["blobs"] = {"backend": "s3", "endpoint": e["S3_ENDPOINT"], "bucket": e["S3_BUCKET_1"], "region": e["S3_REGION"],
                  "access_key": e["S3_ACCESS_KEY"], "secret_key_file": e["S3_SECRET_KEY_FILE"]}
    c["cluster"] = {"secret_file": e["CLUSTER_SECRET"], "lease_ttl_s": 5}
print(json.dumps(c))
PY
  { not_ok "write the replicas' config"; finish; }
declare -A PORT_OF=()
for r in replica1 replica2 replica3; do
  PORT_OF[$r]=$(free_port)
  data=$T/shared
  [ -n "$EXTRA_CONFIG" ] && data=$T/data-$r
  mkdir -p "$data"
  spawn "$r" "$REGCACHE" serve --listen "127.0.0.1:${PORT_OF[$r]}" --data-dir "$data" --config "$T/replica.json"
done
for r in replica1 replica2 replica3; do
  if ! wait_until 20 v2_status_is "${PORT_OF[$r]}" 200; then
    not_ok "$r answers /v2/"
    show_log "$r"
    finish
  fi
done
ok "three replicas on $STORE answer /v2/"

FRONT_PORT=$(free_port)
export REGCACHE_FRONTEND=127.0.0.1:$FRONT_PORT REGCACHE_REPLICA1=127.0.0.1:${PORT_OF[replica1]} \
  REGCACHE_REPLICA2=127.0.0.1:${PORT_OF[replica2]} REGCACHE_REPLICA3=127.0.0.1:${PORT_OF[replica3]}
HAPROXY_CFG=$ENGINES_DIR/../../etc/haproxy-replicas.cfg
check "the shipped haproxy example is valid (haproxy -c)" haproxy -c -q -f "$HAPROXY_CFG"
spawn haproxy haproxy -db -f "$HAPROXY_CFG"
if ! wait_until 20 v2_status_is "$FRONT_PORT" 200; then
  not_ok "haproxy answers /v2/ from a replica"
  show_log haproxy
  finish
fi
ok "haproxy answers /v2/ from a replica"
check_eq "haproxy refuses the replicas' internal fill endpoint (403)" 403 \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FRONT_PORT/_regcache/internal/fills/sha256:$(printf '%064d' 0)?ns=docker.io")"

# Push through replica 1, pull through replicas 2 and 3.
app_dir=$T/images/app
app_digest=$(python3 "$ENGINES_DIR/make-image.py" "$app_dir" 1.0 "replicas app") || { not_ok "make the app image"; finish; }
if skopeo copy -q --dest-tls-verify=false "oci:$app_dir:1.0" \
  "docker://127.0.0.1:${PORT_OF[replica1]}/local/app:1.0" >"$T/push.log" 2>&1; then
  ok "skopeo push of local/app:1.0 through replica 1"
else
  not_ok "skopeo push of local/app:1.0 through replica 1"
  diag <"$T/push.log"
  show_log replica1
fi
for r in replica2 replica3; do
  if skopeo copy -q --src-tls-verify=false --digestfile "$T/$r.digest" \
    "docker://127.0.0.1:${PORT_OF[$r]}/local/app:1.0" "oci:$T/pulled-$r:1.0" >"$T/pull-$r.log" 2>&1; then
    check_eq "skopeo pull of local/app:1.0 through $r: the pushed digest" "$app_digest" "$(cat "$T/$r.digest")"
  else
    not_ok "skopeo pull of local/app:1.0 through $r"
    diag <"$T/pull-$r.log"
    show_log "$r"
  fi
done

# A push through haproxy: every request of one upload (POST, PATCH, PUT)
# reaches one replica, and the image is then whole on each replica.
if skopeo copy -q --dest-tls-verify=false "oci:$app_dir:1.0" \
  "docker://127.0.0.1:$FRONT_PORT/local/app2:1.0" >"$T/push2.log" 2>&1; then
  ok "skopeo push of local/app2:1.0 through haproxy"
else
  not_ok "skopeo push of local/app2:1.0 through haproxy"
  diag <"$T/push2.log"
fi
for r in replica1 replica2 replica3; do
  check_eq "local/app2:1.0 through $r: the pushed digest" "$app_digest" \
    "$(registry_digest "${PORT_OF[$r]}" local/app2 1.0)"
done

# dockerd: haproxy is its registry mirror, and the registry of local/app.
cat >"$T/daemon.json" <<EOF
{"registry-mirrors": ["http://127.0.0.1:$FRONT_PORT"], "insecure-registries": ["127.0.0.1:$FRONT_PORT"]}
EOF
spawn dockerd dockerd --config-file "$T/daemon.json" --data-root "$T/docker-root" --exec-root "$T/docker-exec" \
  --pidfile "$T/docker.pid" -H "unix://$T/docker.sock" --iptables=false --ip6tables=false --bridge=none \
  --storage-driver=vfs
docker_() { DOCKER_CONFIG=$T/docker-cli "$DOCKER_CLI" -H "unix://$T/docker.sock" "$@"; }
if ! wait_until 60 docker_ version; then
  not_ok "dockerd starts"
  show_log dockerd 40
  finish
fi
ok "dockerd starts"

pull() { # WHAT REF
  if docker_ pull -q "$2" >"$T/docker-pull.log" 2>&1; then
    ok "$1"
  else
    not_ok "$1"
    tail -15 "$T/docker-pull.log" | diag
    for r in replica1 replica2 replica3; do show_log "$r" 5; done
    return 1
  fi
}
repo_digest() { docker_ image inspect --format '{{index .RepoDigests 0}}' "$1" 2>&1; }
app=127.0.0.1:$FRONT_PORT/local/app:1.0

blobs_before=$(upstream_blob_requests hub)
if pull "docker pull busybox through haproxy (registry mirror)" busybox; then
  check_eq "busybox's RepoDigest is the upstream's" "busybox@$busybox_digest" "$(repo_digest busybox)"
  check_eq "docker run --rm --network none busybox" "replicas busybox" "$(docker_ run --rm --network none busybox 2>&1)"
fi
if pull "docker pull $app (pushed through replica 1) through haproxy" "$app"; then
  check_eq "local/app's RepoDigest is the pushed digest" "127.0.0.1:$FRONT_PORT/local/app@$app_digest" \
    "$(repo_digest "$app")"
fi

# Every request of one path goes to one replica: each busybox blob path,
# asked three more times through haproxy, is in exactly one replica's log;
# and the upstream sent each blob once.
paths=$(cat "$T"/replica[123].log | grep -oE ' GET /v2/library/busybox/blobs/sha256:[0-9a-f]{64} ' | sort -u)
for p in $paths; do
  [[ $p == /v2/* ]] || continue
  for _ in 1 2 3; do curl -fsS -o /dev/null "http://127.0.0.1:$FRONT_PORT$p" || echo "# GET $p through haproxy failed"; done
done
for r in replica1 replica2 replica3; do log_sync "${PORT_OF[$r]}" "$T/$r.log" 2>/dev/null; done
spread_ok=1
for p in $paths; do
  [[ $p == /v2/* ]] || continue
  n=$(grep -lF " GET $p " "$T"/replica[123].log | wc -l)
  [ "$n" -eq 1 ] || spread_ok=0
done
check "each busybox blob path was served by exactly one replica (consistent hash)" \
  test "$spread_ok" -eq 1 -a -n "$paths"
served_by=$(grep -lE ' /v2/(library/busybox|local/app)/' "$T"/replica[123].log | wc -l)
echo "# replicas that served the docker pulls: $served_by"
blob_gets=$(($(upstream_blob_requests hub) - blobs_before))
check "the upstream sent busybox's blobs once each (blob requests: $blob_gets; busybox has 3)" test "$blob_gets" -eq 3

# Kill the replica that served most of busybox: haproxy's /readyz checks (or
# the connection refused) send everything to the other two.
victim=replica1 most=-1
for r in replica1 replica2 replica3; do
  n=$(grep -c ' /v2/library/busybox/' "$T/$r.log")
  if [ "$n" -gt "$most" ]; then victim=$r most=$n; fi
done
echo "# killing $victim ($most busybox requests)"
kill -KILL "${PID_OF[$victim]}"
wait "${PID_OF[$victim]}" 2>/dev/null
docker_ rmi busybox "$app" >/dev/null 2>&1
check_eq "docker rmi removed both images" "" "$(docker_ images -q)"
if pull "docker pull busybox through haproxy with $victim killed" busybox &&
  pull "docker pull $app through haproxy with $victim killed" "$app"; then
  check_eq "same digests with a replica down" "busybox@$busybox_digest 127.0.0.1:$FRONT_PORT/local/app@$app_digest" \
    "$(repo_digest busybox) $(repo_digest "$app")"
fi

for r in replica1 replica2 replica3; do
  [ "$r" = "$victim" ] && continue
  pid=${PID_OF[$r]}
  kill -TERM "$pid"
  wait "$pid"
  check_eq "$r exits 0 on SIGTERM" 0 "$?"
done
finish
