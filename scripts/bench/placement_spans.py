#!/usr/bin/env python3
"""placement_spans.py JAEGER_URL START_US END_US [LIMIT]: where placements' time goes.

Reads the api-gateway traces of the window from Jaeger's query API, keeps those of an
order placement (a gateway root with order-service spans below it), and prints a
Markdown table: per (service, span name), the median and p90 of its duration and of
its self time (its duration less the time its children cover), once the window's spans
have stopped arriving. Standard library only;
scripts/bench/commerce.sh runs it with BENCH_OTLP=1."""
import json, sys, time, urllib.request, urllib.parse, statistics, collections
base, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = int(sys.argv[4]) if len(sys.argv) > 4 else 300
q = urllib.parse.urlencode({"service": "api-gateway", "start": start, "end": end, "limit": limit})
def fetch():
    return json.load(urllib.request.urlopen(f"{base}/api/traces?{q}", timeout=60))["data"]
# The services' batch exporters send their last spans after the run: read until the
# window's span count has stayed the same for QUIET seconds (several export periods
# of OTEL_BSP_SCHEDULE_DELAY, which commerce.sh sets to 200 ms), or DEADLINE passes.
QUIET, DEADLINE = 1.0, 60.0
data, seen, since, began = fetch(), -1, time.monotonic(), time.monotonic()
while time.monotonic() - began < DEADLINE:
    spans = sum(len(t["spans"]) for t in data)
    if spans != seen or spans == 0:
        seen, since = spans, time.monotonic()
    elif time.monotonic() - since >= QUIET:
        break
    time.sleep(0.2)
    data = fetch()
dur = collections.defaultdict(list); selft = collections.defaultdict(list); roots = []
def union(iv):
    iv = sorted(iv); tot = 0; cs = ce = None
    for s, e in iv:
        if cs is None or s > ce:
            if cs is not None: tot += ce - cs
            cs, ce = s, e
        else: ce = max(ce, e)
    if cs is not None: tot += ce - cs
    return tot
for t in data:
    procs = {k: v["serviceName"] for k, v in t["processes"].items()}
    spans = {s["spanID"]: s for s in t["spans"]}
    kids = collections.defaultdict(list)
    root = None
    for s in t["spans"]:
        parent = next((r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF" and r["spanID"] in spans), None)
        if parent: kids[parent].append(s)
        elif procs[s["processID"]] == "api-gateway": root = s
    if not root or "order" not in (root["operationName"] + json.dumps(root.get("tags", []))): continue
    if not any(procs[s["processID"]] == "order-service" for s in t["spans"]): continue
    roots.append(root["duration"])
    for s in t["spans"]:
        key = (procs[s["processID"]], s["operationName"])
        dur[key].append(s["duration"])
        ch = [(c["startTime"], c["startTime"] + c["duration"]) for c in kids[s["spanID"]]]
        selft[key].append(s["duration"] - union(ch))
def p(v, q): v = sorted(v); return v[min(len(v) - 1, int(q * len(v)))] / 1000
if not roots:
    sys.exit(f"no order placement among the {len(data)} api-gateway traces of the window")
print(f"{len(roots)} placements; gateway span p50 {p(roots, .5):.1f} ms p90 {p(roots, .9):.1f} ms")
print("| service | span | count | duration p50 ms | p90 ms | self time p50 ms | p90 ms |")
print("|---|---|---:|---:|---:|---:|---:|")
for key in sorted(dur, key=lambda k: -statistics.median(dur[k])):
    print(f"| {key[0]} | {key[1][:60]} | {len(dur[key])} | {p(dur[key], .5):.2f} | {p(dur[key], .9):.2f} | {p(selft[key], .5):.2f} | {p(selft[key], .9):.2f} |")
