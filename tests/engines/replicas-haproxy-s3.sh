#!/usr/bin/env bash
# replicas-haproxy.sh with the replicas on PostgreSQL + a Ceph RGW bucket (the
# issue 18 setup; see its header). Usage: replicas-haproxy-s3.sh REGCACHE S3_PEERS
# (S3_PEERS: the s3_peers binary of the build, tests/s3/peers_main.cpp).
if [ ! -x "${2:-}" ]; then
  echo "not ok - s3_peers binary given as the second argument (got '${2:-}')"
  echo "0 passed, 1 failed"
  exit 1
fi
REGCACHE_REPLICAS_S3_PEERS=$(readlink -f "$2") exec bash "$(dirname "${BASH_SOURCE[0]}")/replicas-haproxy.sh" "$1"
