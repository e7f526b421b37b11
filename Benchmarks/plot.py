#!/usr/bin/env python3
"""Draw the benchmark's charts (PNG) from `scrollback-bench --json` files.

    python3 Benchmarks/plot.py RUN.json [MORE.json ...] [-o bench.png]
                               [--bands Benchmarks/bands.json] [--bands-output bands.png]
                               [--metric p50|p99|both]

Chart 1 (from the first RUN.json): one group of bars per query, one bar per engine (log
scale, microseconds), p50 as the bar and p99 as a thin marker above it. The title names the
dataset, machine, commit and date.

Chart 2 (the bands): p50 (solid) and p99 (dashed) of latest 20, keyset page, unread count
(29 days back, 10k+ room) and the feed against the dataset size, one line per engine, plus
the load rate and bytes per message. Its points come from --bands (Benchmarks/bands.json,
where separate band runs accumulate) and from the `bands` section of every RUN.json given;
for the same band and engine the latest run wins.

Needs matplotlib (`python3 -m pip install matplotlib`; `make bench-plot` installs it).
"""
import argparse
import json
import sys

ENGINES = ["scrollback", "sqlite-rowid", "sqlite-clustered", "lmdb", "rocksdb"]
ENGINE_COLORS = {
    "scrollback": "#1f77b4",
    "sqlite-rowid": "#ff7f0e",
    "sqlite-clustered": "#2ca02c",
    "lmdb": "#9467bd",
    "rocksdb": "#d62728",
}
BAND_QUERIES = [
    ("latest20", "latest 20"),
    ("keyset", "keyset page (heavy room)"),
    ("unreadFarHeavy", "unread count, 29 d back, 10k+ room"),
    ("feed", "feed of 20, top 50"),
]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def run_title(run, what):
    c = run["configuration"]
    m = run.get("machine", {})
    return "%s — %s messages, %s conversations, durability %s, cache %d MiB\n%s, %s cores; commit %s%s; %s" % (
        what, "{:,}".format(c["messages"]), "{:,}".format(c["conversations"]), c["durability"], c["cache_bytes"] >> 20,
        m.get("cpu_model", "?"), m.get("nproc", "?"), run.get("commit", "?")[:10],
        " (dirty)" if run.get("dirty") else "", run.get("date", "?"))


def draw_queries(plt, run, output, metric):
    queries = [q for q in run.get("queries", []) if q.get("engines")]
    if not queries:
        sys.exit("no query latencies in the run")
    engines = [e for e in ENGINES if e in run["configuration"]["engines"] and any(e in q["engines"] for q in queries)]
    n = len(queries)
    width = 0.84 / max(1, len(engines))
    fig, ax = plt.subplots(figsize=(max(12, 1.05 * n + 3), 7))
    for k, engine in enumerate(engines):
        xs, p50, p99 = [], [], []
        for i, q in enumerate(queries):
            s = q["engines"].get(engine)
            if not s or s.get("p50_us") is None:
                continue
            xs.append(i + (k - (len(engines) - 1) / 2) * width)
            p50.append(s["p50_us"])
            p99.append(s["p99_us"])
        color = ENGINE_COLORS.get(engine)
        if metric in ("p50", "both"):
            ax.bar(xs, p50, width=width * 0.95, label="%s p50" % engine, color=color)
        if metric == "p99":
            ax.bar(xs, p99, width=width * 0.95, label="%s p99" % engine, color=color)
        elif metric == "both":
            ax.scatter(xs, p99, marker="_", s=90, color=color, linewidths=2, label="%s p99" % engine, zorder=3)
    ax.set_yscale("log")
    ax.set_ylabel("latency per call (µs, log scale)")
    ax.set_xticks(range(n))
    ax.set_xticklabels([q["title"] for q in queries], rotation=35, ha="right", fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(engines), loc="upper left")
    ax.set_title(run_title(run, "Scrollback vs SQLite, LMDB, RocksDB"), fontsize=9)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print("wrote %s" % output)


def collect_bands(bands_path, runs):
    """{(band, messages): {engine: record}}, the latest record per band and engine."""
    entries = []
    if bands_path:
        try:
            entries += load_json(bands_path).get("entries", [])
        except FileNotFoundError:
            pass
    for run in runs:
        entries += run.get("bands", [])
    out = {}
    for e in entries:
        key = (e.get("band"), e.get("messages"))
        for engine, record in (e.get("engines") or {}).items():
            slot = out.setdefault(key, {})
            old = slot.get(engine)
            if old is None or record.get("date", "") >= old.get("date", ""):
                slot[engine] = record
    return out


def draw_bands(plt, bands, output):
    if not bands:
        print("no band figures: %s not drawn" % output)
        return
    sizes = sorted(bands)
    engines = [e for e in ENGINES if any(e in bands[k] for k in sizes)]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    panels = list(BAND_QUERIES) + [("load", "bulk load (messages/s)"), ("bytes", "bytes on disk per message after load")]
    for ax, (key, title) in zip(axes.flat, panels):
        for engine in engines:
            xs, p50, p99, ys = [], [], [], []
            for size in sizes:
                r = bands[size].get(engine)
                if not r:
                    continue
                messages = size[1]
                if key == "load":
                    if r.get("load_messages_per_second"):
                        xs.append(messages)
                        ys.append(r["load_messages_per_second"])
                elif key == "bytes":
                    if r.get("bytes_after_load"):
                        xs.append(messages)
                        ys.append(r["bytes_after_load"] / messages)
                else:
                    q = (r.get("queries") or {}).get(key)
                    if q and q.get("p50_us") is not None:
                        xs.append(messages)
                        p50.append(q["p50_us"])
                        p99.append(q["p99_us"])
            color = ENGINE_COLORS.get(engine)
            if key in ("load", "bytes"):
                if xs:
                    ax.plot(xs, ys, "o-", color=color, label=engine)
            elif xs:
                ax.plot(xs, p50, "o-", color=color, label="%s p50" % engine)
                ax.plot(xs, p99, "s--", color=color, alpha=0.7, label="%s p99" % engine)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("messages in the store", fontsize=8)
        ax.set_ylabel("µs" if key not in ("load", "bytes") else ("messages/s" if key == "load" else "bytes"), fontsize=8)
        ax.grid(which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(10, len(labels)), fontsize=7)
    bands_named = ", ".join("%s %s" % (b, "{:,}".format(m)) for b, m in sizes)
    fig.suptitle("Growth across the bands (%s): p50 solid, p99 dashed; the goal is latest 20's p99 within 2× from 1M to 100M"
                 % bands_named, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(output, dpi=100)
    print("wrote %s" % output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", nargs="+", help="output of scrollback-bench --json (the first one draws chart 1)")
    parser.add_argument("-o", "--output", help="PNG of chart 1 (default: the first JSON path with .png)")
    parser.add_argument("--metric", choices=["p50", "p99", "both"], default="both")
    parser.add_argument("--bands", help="bands.json, where band runs accumulate")
    parser.add_argument("--bands-output", help="PNG of chart 2 (default: none)")
    args = parser.parse_args(argv)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib: python3 -m pip install matplotlib")

    runs = [load_json(p) for p in args.json]
    output = args.output or (args.json[0].rsplit(".", 1)[0] + ".png")
    draw_queries(plt, runs[0], output, args.metric)
    if args.bands_output:
        draw_bands(plt, collect_bands(args.bands, runs), args.bands_output)


if __name__ == "__main__":
    main()
