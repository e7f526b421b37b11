#!/usr/bin/env python3
"""Turn a `scrollback-bench --json` file into a latency chart (PNG).

    python3 Benchmarks/plot.py bench.json [-o bench.png] [--metric p50|p99|both]

One group of bars per query, one bar per engine (log scale, microseconds), p50 as the bar
and p99 as a thin marker above it. The title names the dataset, machine, commit and date.
Needs matplotlib (`pip install matplotlib`).
"""
import argparse
import json
import sys

ENGINE_COLORS = {
    "scrollback": "#1f77b4",
    "sqlite-rowid": "#ff7f0e",
    "sqlite-clustered": "#2ca02c",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", help="output of scrollback-bench --json")
    parser.add_argument("-o", "--output", help="PNG path (default: the JSON path with .png)")
    parser.add_argument("--metric", choices=["p50", "p99", "both"], default="both")
    args = parser.parse_args(argv)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py needs matplotlib: pip install matplotlib")

    with open(args.json) as f:
        run = json.load(f)

    queries = [q for q in run.get("queries", []) if q.get("engines")]
    if not queries:
        sys.exit("no query latencies in %s" % args.json)
    engines = [e for e in run["configuration"]["engines"] if any(e in q["engines"] for q in queries)]

    titles = [q["title"] for q in queries]
    n = len(queries)
    width = 0.8 / max(1, len(engines))
    fig, ax = plt.subplots(figsize=(max(10, 0.9 * n + 3), 6.5))
    for k, engine in enumerate(engines):
        xs, p50, p99 = [], [], []
        for i, q in enumerate(queries):
            s = q["engines"].get(engine)
            if not s:
                continue
            xs.append(i + (k - (len(engines) - 1) / 2) * width)
            p50.append(s["p50_us"])
            p99.append(s["p99_us"])
        color = ENGINE_COLORS.get(engine)
        if args.metric in ("p50", "both"):
            ax.bar(xs, p50, width=width * 0.95, label="%s p50" % engine, color=color)
        if args.metric == "p99":
            ax.bar(xs, p99, width=width * 0.95, label="%s p99" % engine, color=color)
        elif args.metric == "both":
            ax.scatter(xs, p99, marker="_", s=120, color=color, linewidths=2,
                       label="%s p99" % engine, zorder=3)

    ax.set_yscale("log")
    ax.set_ylabel("latency per call (µs, log scale)")
    ax.set_xticks(range(n))
    ax.set_xticklabels(titles, rotation=35, ha="right", fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)

    c = run["configuration"]
    m = run.get("machine", {})
    title = "Scrollback vs SQLite — %s messages, %s conversations, durability %s, cache %d MiB\n%s, %s cores; commit %s%s; %s" % (
        "{:,}".format(c["messages"]), "{:,}".format(c["conversations"]), c["durability"], c["cache_bytes"] >> 20,
        m.get("cpu_model", "?"), m.get("nproc", "?"), run.get("commit", "?")[:10],
        " (dirty)" if run.get("dirty") else "", run.get("date", "?"))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    output = args.output or (args.json.rsplit(".", 1)[0] + ".png")
    fig.savefig(output, dpi=120)
    print("wrote %s" % output)


if __name__ == "__main__":
    main()
