#!/usr/bin/env python3
"""Helpers for bench/run.

  util.py ports N                    N free loopback TCP ports, one a line
  util.py wrk2json < wrk-output      wrk --latency output -> JSON
  util.py ulog FILE FROM TO          classify upstream access-log lines FROM+1..TO -> JSON
  util.py ms T0 T1                   (T1-T0)*1000 for two $EPOCHREALTIME values
  util.py report RECORDS META OUT    print the comparison table, write the JSON
"""
import json
import re
import socket
import statistics
import sys


def ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
        s.close()


UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def wrk2json():
    out = sys.stdin.read()
    r = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None,
         "non2xx": 0, "socket_errors": {}, "raw_tail": out.strip().splitlines()[-12:]}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    print(json.dumps(r))


LOG_RE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


def ulog(path, frm, to):
    frm, to = int(frm), int(to)
    counts = {}
    total = 0
    with open(path, errors="replace") as f:
        for i, line in enumerate(f, 1):
            if i <= frm or i > to:
                continue
            m = LOG_RE.search(line)
            if not m:
                continue
            method, url, status = m.groups()
            url = url.split("?", 1)[0]
            if url in ("/v2/", "/v2"):
                kind = "ping"
            elif "/manifests/" in url:
                kind = "manifest"
            elif "/blobs/" in url:
                kind = "blob"
            else:
                kind = "other"
            key = "%s %s %s" % (method, kind, status)
            counts[key] = counts.get(key, 0) + 1
            total += 1
    print(json.dumps({"total": total, "by_kind": counts,
                      "blob_gets": sum(v for k, v in counts.items() if k.startswith("GET blob")),
                      "pings": sum(v for k, v in counts.items() if " ping " in k)}))


def ms(t0, t1):
    print("%.3f" % ((float(t1) - float(t0)) * 1000))


# ---------------------------------------------------------------- report

SERVERS = ("U", "N", "P", "regcache")


def fmt(v, unit):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if unit in ("req/s", "MiB/s", "count"):
        return "%d" % round(v)
    if unit in ("ms",):
        return "%.1f" % v if v < 100 else "%d" % round(v)
    if unit == "per-req":
        return "%.3f" % v
    if unit == "s":
        return "%.2f" % v
    return "%.1f" % v


def report(records_path, meta_path, out_path):
    meta = json.load(open(meta_path))
    recs = [json.loads(l) for l in open(records_path) if l.strip()]
    samples = {}
    details = {}
    for r in recs:
        samples.setdefault((r["fig"], r["srv"]), []).append(r["v"])
        if r.get("x") is not None:
            details.setdefault(r["fig"], {}).setdefault(r["srv"], []).append(r["x"])

    def med(fig, srv):
        xs = [x for x in samples.get((fig, srv), []) if x is not None]
        return statistics.median(xs) if xs else None

    blobs = meta["blobs"]
    big = blobs[-1]["name"]
    rows = []  # (label, unit, {col: (fig, srv)}, target-fn or None, target text)

    def row(label, unit, cols, target=None, ttext=""):
        rows.append((label, unit, cols, target, ttext))

    same4 = lambda fig, rc="R": {"U": (fig, "U"), "N": (fig, "N"), "P": (fig, "P"), "regcache": (fig, rc)}
    # 1. cold
    for b in blobs:
        t = tt = None
        if b["name"] == big:
            t = lambda v: v["regcache"] is not None and v["U"] is not None and v["regcache"] <= 1.2 * v["U"]
            tt = "≤ 1.2× U"
        row("cold GET %s blob, total (ms; U, N direct)" % b["name"], "ms", same4("cold_total_" + b["name"]), t, tt)
    for b in blobs:
        t = tt = None
        if b["name"] == big:
            t = lambda v: v["regcache"] is not None and v["U"] is not None and v["regcache"] <= v["U"] + 5
            tt = "≤ U + 5 ms"
        row("cold GET %s blob, first byte (ms; U, N direct)" % b["name"], "ms", same4("cold_ttfb_" + b["name"]), t, tt)
    row("skopeo copy of the image, cold cache (s; U, N direct)", "s", same4("skopeo_cold"))
    row("skopeo copy of the image, warm cache (s; U, N direct)", "s", same4("skopeo_warm"))
    nobj = 1 + len(blobs)
    row("upstream requests for a cold pull of 1 manifest + %d blobs" % len(blobs), "count",
        {"P": ("ureq_cold_pull", "P"), "regcache": ("ureq_cold_pull", "R")},
        lambda v: v["regcache"] is not None and v["regcache"] <= nobj + 1, "≤ %d (+1 auth/ping)" % nobj)
    row("upstream requests for a warm pull (tag within TTL)", "count",
        {"P": ("ureq_warm_pull", "P"), "regcache": ("ureq_warm_pull", "R")})
    # 2. warm manifests
    for c in meta["conns"]:
        for method in ("GET", "HEAD"):
            for ref, rc, label in (("tag", "R", "by tag, within tag_ttl"), ("tag", "R0", "by tag, tag_ttl 0"),
                                   ("digest", "R", "by digest")):
                fig = "m_%s_%s_c%d" % (method, ref, c)
                t = tt = None
                if method == "GET" and rc == "R":
                    t = lambda v: v["regcache"] is not None and v["N"] and v["regcache"] >= 0.3 * v["N"]
                    tt = "≥ 0.3× N"
                elif method == "GET" and rc == "R0":
                    t = lambda v: v["regcache"] is not None and v["P"] and v["regcache"] >= 2 * v["P"]
                    tt = "≥ 2× P"
                row("warm %s manifest %s, c%d (req/s)" % (method, label, c), "req/s",
                    same4(fig + "_rps", rc), t, tt)
                row("  … p50 / p99 latency (ms)", "p50/p99", {s: ((fig + "_p50", f[1]), (fig + "_p99", f[1]))
                                                         for s, f in same4(fig, rc).items()})
                if ref == "tag":
                    row("  … upstream requests per request (%d requests at c%d)" % (meta["ureq_per_conn"] * c, c), "per-req",
                        {"P": ("ureq_%s_tag_c%d" % (method, c), "P"), "regcache": ("ureq_%s_tag_c%d" % (method, c), rc)})
    for method in ("GET", "HEAD"):
        for rc, label in (("R", "within tag_ttl"), ("R0", "tag_ttl 0")):
            fig = "ureq_%s_tag_c1" % method
            row("upstream requests per %s manifest by tag, %s, one at a time (20 requests, c1)" % (method, label),
                "per-req", {"P": (fig, "P"), "regcache": (fig, rc)})
    # 3. warm blobs
    for k in meta["blob_clients"]:
        row("warm %s blob, %d client%s (MiB/s total)" % (big, k, "s" if k > 1 else ""), "MiB/s",
            same4("blob_mibs_%d" % k),
            lambda v: v["regcache"] is not None and v["N"] and v["regcache"] >= 0.9 * v["N"], "≥ 0.9× N")
    # 5. coalescing
    row("upstream GETs for %d simultaneous cold GETs of the %s blob" % (meta["coalesce_clients"], meta["coalesce_blob"]),
        "count", {"P": ("coal_upstream_gets", "P"), "regcache": ("coal_upstream_gets", "R")},
        lambda v: v["regcache"] == 1, "= 1")
    row("  … clients that got every byte right (sha256)", "count",
        {"P": ("coal_ok", "P"), "regcache": ("coal_ok", "R")},
        lambda v: v["regcache"] == meta["coalesce_clients"], "= %d" % meta["coalesce_clients"])
    row("  … wall time until the last client finished (ms)", "ms",
        {"P": ("coal_wall_ms", "P"), "regcache": ("coal_wall_ms", "R")})
    # 4. RSS
    row("idle RSS after start (MiB)", "MiB", same4("rss_idle"))
    for phase, label in meta["rss_phases"]:
        t = tt = None
        cols = same4("hwm_" + phase)
        if phase in ("manifests_c256", "blob_8"):
            t = lambda v: v["regcache"] is not None and v["regcache"] <= 64
            tt = "≤ 64 MiB"
        row("peak RSS, %s (MiB)" % label, "MiB", cols, t, tt)
        if phase.startswith("manifests_"):
            row("peak RSS, %s, tag_ttl 0 instance (MiB)" % label, "MiB", {"regcache": ("hwm_" + phase, "R0")})

    figures = []
    lines = ["| figure | U | N | P | regcache | regcache/P | regcache/N | target |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for label, unit, cols, target, ttext in rows:
        vals, cells, fig_json = {}, {}, {"label": label, "unit": unit, "values": {}}
        for s in SERVERS:
            if s not in cols:
                vals[s] = None
                cells[s] = "–"
                continue
            if unit == "p50/p99":
                (f50, s50), (f99, s99) = cols[s]
                a, b = med(f50, s50), med(f99, s99)
                vals[s] = (a, b)
                cells[s] = "–" if a is None else "%s / %s" % (fmt(a, "ms"), fmt(b, "ms"))
                fig_json["values"][s] = {"p50_ms": a, "p99_ms": b,
                                         "p50_samples": samples.get((f50, s50)), "p99_samples": samples.get((f99, s99))}
            else:
                f, srv = cols[s]
                vals[s] = med(f, srv)
                cells[s] = fmt(vals[s], unit)
                fig_json["values"][s] = {"median": vals[s], "samples": samples.get((f, srv)), "id": f, "server": srv}
                if details.get(f, {}).get(srv):
                    fig_json["values"][s]["details"] = details[f][srv]

        def ratio(o):
            a, b = vals["regcache"], vals[o]
            if unit == "p50/p99":
                if a is None or b is None or not b[0] or not b[1]:
                    return None, "–"
                r = (a[0] / b[0], a[1] / b[1])
                return r, "%.2f / %.2f" % r
            if a is None or b is None or b == 0:
                return None, "–"
            return a / b, "%.2f" % (a / b)

        rp, rps_ = ratio("P")
        rn, rns_ = ratio("N")
        fig_json["ratio_regcache_P"] = rp
        fig_json["ratio_regcache_N"] = rn
        ttxt = ""
        if target:
            met = bool(target(vals))
            fig_json["target"] = ttext
            fig_json["target_met"] = met
            ttxt = "%s %s" % (ttext, "met" if met else "**not met**")
        figures.append(fig_json)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, cells["U"], cells["N"], cells["P"], cells["regcache"], rps_, rns_, ttxt))

    table = "\n".join(lines)
    print(table)
    if meta.get("notes"):
        print()
        for n in meta["notes"]:
            print("- " + n)
    result = {"meta": meta, "figures": figures, "table_markdown": table,
              "details": {k: v for k, v in details.items()}}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"ports": ports, "wrk2json": wrk2json, "ulog": ulog, "ms": ms, "report": report}[cmd](*args)


if __name__ == "__main__":
    main()
