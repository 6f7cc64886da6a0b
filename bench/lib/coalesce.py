#!/usr/bin/env python3
"""N clients GET the same URL at the same instant (all connected first, then
released together), each hashing the body it receives.

usage: coalesce.py HOST PORT PATH N EXPECTED_SHA256_HEX EXPECTED_SIZE
PORT may be a comma-separated list (replicas): client i connects to the (i mod k)-th.
prints JSON: ok count, per-client failures, wall time, TTFB/total percentiles.
"""
import hashlib
import json
import socket
import sys
import threading
import time


def main():
    host, ports, path, n = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3], int(sys.argv[4])
    want_hex, want_size = sys.argv[5], int(sys.argv[6])
    barrier = threading.Barrier(n + 1)
    results = [None] * n
    start = [0.0]

    def client(i):
        port = ports[i % len(ports)]
        r = {"status": None, "bytes": 0, "sha256_ok": False, "error": None, "cache": None}
        try:
            s = socket.create_connection((host, port), timeout=120)
        except OSError as e:
            r["error"] = "connect: %s" % e
            results[i] = r
            barrier.wait()
            return
        barrier.wait()
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                       % (path, host, port)).encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed before headers")
                if not buf:
                    r["ttfb_s"] = time.monotonic() - start[0]
                buf += chunk
            head, body = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            r["status"] = int(lines[0].split()[1])
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            r["cache"] = hdrs.get("x-cache-status")
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                raise OSError("chunked body not supported by this client")
            clen = int(hdrs["content-length"]) if "content-length" in hdrs else None
            h = hashlib.sha256()
            h.update(body)
            got = len(body)
            mv = bytearray(1 << 20)
            while clen is None or got < clen:
                k = s.recv_into(mv)
                if k == 0:
                    break
                h.update(memoryview(mv)[:k])
                got += k
            r["bytes"] = got
            r["content_length"] = clen
            r["sha256_ok"] = (h.hexdigest() == want_hex and got == want_size)
        except Exception as e:  # noqa: BLE001 - report whatever the client saw
            r["error"] = str(e)
        finally:
            r["total_s"] = time.monotonic() - start[0]
            s.close()
        results[i] = r

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start[0] = time.monotonic()
    barrier.wait()
    start[0] = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - start[0]
    good = [r["status"] == 200 and r["sha256_ok"] and not r["error"] for r in results]
    ok = [r for r, g in zip(results, good) if g]
    bad = [dict(r, client=i) for i, (r, g) in enumerate(zip(results, good)) if not g]
    totals = sorted(r["total_s"] for r in results)
    ttfbs = sorted(r.get("ttfb_s", float("nan")) for r in results if "ttfb_s" in r)
    caches = {}
    for r in results:
        caches[str(r["cache"])] = caches.get(str(r["cache"]), 0) + 1

    def med(xs):
        return xs[len(xs) // 2] if xs else None

    print(json.dumps({
        "clients": n, "ok": len(ok), "failed": bad[:10], "failed_count": len(bad),
        "wall_s": round(wall, 4),
        "ttfb_median_ms": round(med(ttfbs) * 1000, 2) if ttfbs else None,
        "ttfb_max_ms": round(ttfbs[-1] * 1000, 2) if ttfbs else None,
        "total_median_ms": round(med(totals) * 1000, 2),
        "total_max_ms": round(totals[-1] * 1000, 2),
        "x_cache_status": caches,
    }))


if __name__ == "__main__":
    main()
