"""Turns the JSON lines of bench/compare.sh into a Markdown table with ratios to rawsse."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]


def key(r):
    return (r["scenario"], r["args"].replace(f"--target {r['target']}", ""))


def figure(r):
    """The headline figure of a run, its unit, and whether higher is better."""
    s = r["scenario"]
    if s == "idle":
        return r["rss_per_stream_bytes"] / 1024, "KiB/stream", False
    if s in ("broadcast", "large"):
        return r["deliveries_per_s"], "deliveries/s", True
    if s == "peruser":
        return r["latency_p99_us"] / 1000, "p99 ms", False
    if s == "publish":
        return r["published_per_s"], "events/s", True
    if s == "reconnect":
        return r["connects_per_s"], "reconnects/s", True
    return 0, "", True


def label(r):
    a = r["args"].split()
    opts = dict(zip(a[::2], a[1::2]))
    parts = [r["scenario"], f"{r['streams']} streams" if r["streams"] else ""]
    if r["scenario"] == "peruser":
        parts.append(f"{opts.get('--rate')} ev/s")
    if "--batch" in opts:
        parts.append(f"batch {opts['--batch']}")
    if "--tls-ca" in opts:
        parts.append("TLS")
    if "--http2-streams" in opts:
        parts.append(f"HTTP/2, {opts['--http2-streams']} per connection")
    return ", ".join(p for p in parts if p)


floor = {}
for r in rows:
    if r["target"] == "rawsse":
        floor[label(r)] = figure(r)[0]

targets = []
for r in rows:
    if r["target"] not in targets:
        targets.append(r["target"])
labels = []
for r in rows:
    if label(r) not in labels:
        labels.append(label(r))
by = {(label(r), r["target"]): r for r in rows}

print("| scenario | unit | " + " | ".join(targets) + " |")
print("|---|---|" + "---|" * len(targets))
for l in labels:
    unit = next(figure(by[(l, t)])[1] for t in targets if (l, t) in by)
    cells = []
    for t in targets:
        r = by.get((l, t))
        if r is None:
            cells.append("–")
            continue
        value, _, _ = figure(r)
        cell = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        base = floor.get(l)
        if base and t != "rawsse":
            cell += f" ({value / base:.2f}×)"
        if r["lost"] or r["duplicates"]:
            cell += f" [lost {r['lost']}, dup {r['duplicates']}]"
        if r["errors"]:
            cell += " [errors]"
        cells.append(cell)
    print(f"| {l} | {unit} | " + " | ".join(cells) + " |")
