#!/usr/bin/env python3
"""Readers in other processes on a live store: their throughput with and without a writer,
and how long a stale reader holds back page reuse.

Real processes only: `scrollback exec --read-only STORE` per reader (each request moves it to
the writer's newest durable state first), `scrollback exec STORE` as the writer (every append
durable before its answer), `scrollback stats --json` for the page file and the reader table.

    python3 Benchmarks/live_readers.py [--tool .build/release/scrollback] [--messages 200000]

Prints one table; the figures go into the notes of the processes issue. Not part of `make
test` (timings are not tests).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time


class Session:
    """One `scrollback exec` process spoken to one line at a time."""

    def __init__(self, tool, store, read_only):
        args = [tool, "exec"] + (["--read-only"] if read_only else []) + [store]
        # Buffered pipes (an unbuffered readline reads one byte per system call).
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.out = self.process.stdout

    def send(self, request):
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        line = self.out.readline()
        answer = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"{request} -> {answer}")
        return answer

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)

    def kill(self):
        self.process.kill()
        self.process.wait()


def query_mix(rng, conversations, users):
    c = rng.choice(conversations)
    roll = rng.random()
    if roll < 0.4:
        return {"op": "latest", "conversation": c, "limit": 20}
    if roll < 0.7:
        return {"op": "unread", "user": rng.choice(users), "conversation": c}
    if roll < 0.9:
        return {"op": "page", "conversation": c, "limit": 20, "order": "newestFirst", "cursor": None}
    return {"op": "feed", "conversations": rng.sample(conversations, 5), "limit": 20}


def run_readers(tool, store, count, seconds, conversations, users):
    """`count` reader processes, each looping over the query mix; answers/s and p50/p99 µs."""
    latencies = []
    lock = threading.Lock()
    sessions = [Session(tool, store, read_only=True) for _ in range(count)]
    stop = time.monotonic() + seconds

    def loop(session, seed):
        rng = random.Random(seed)
        own = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            session.send(query_mix(rng, conversations, users))
            own.append(time.perf_counter() - start)
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=loop, args=(s, i)) for i, s in enumerate(sessions)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    for s in sessions:
        s.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6
    return len(latencies) / elapsed, pick(0.5), pick(0.99)


class Writer:
    """A writer process appending durably at `rate` per second until stopped."""

    def __init__(self, tool, store, rate, conversations, body_bytes=None):
        self.session = Session(tool, store, read_only=False)
        self.body_bytes = body_bytes
        self.prefix = f"live-{time.time_ns()}"
        self.rate = rate
        self.conversations = conversations
        self.acked = 0
        self.running = True
        self.thread = threading.Thread(target=self.loop)
        self.thread.start()

    def loop(self):
        rng = random.Random(7)
        next_at = time.monotonic()
        serial = 0
        while self.running:
            serial += 1
            self.session.send({"op": "append", "id": f"{self.prefix}-{serial}",
                               "conversation": rng.choice(self.conversations), "sender": "writer",
                               "createdAt": 1_767_225_600_000 + serial, "kind": "text",
                               "body": "x" * self.body_bytes if self.body_bytes else "a live message " * rng.randint(1, 8)})
            self.acked += 1
            if self.rate:
                next_at += 1 / self.rate
                time.sleep(max(0, next_at - time.monotonic()))

    def stop(self):
        self.running = False
        self.thread.join()
        self.session.close()


def stats(tool, store):
    return json.loads(subprocess.run([tool, "stats", "--json", store], check=True, capture_output=True).stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", default=".build/release/scrollback")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="scrollback-live-readers-")
    store = os.path.join(work, "store")
    try:
        subprocess.run([args.tool, "generate", "--messages", str(args.messages), "--out", store, "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
        listing = Session(args.tool, store, read_only=True)
        conversations = [c["id"] for c in listing.send({"op": "conversations", "limit": 500})["conversations"]]
        listing.close()
        users = [f"synuser{i}" for i in range(1, 200)]

        print(f"store: {args.messages:,} messages (scrollback generate), {args.seconds:g} s per row")
        print("| reader processes | writer | answers/s | p50 / p99 µs | writer appends/s |")
        print("|---:|---|---:|---:|---:|")
        for count in (1, 2, 4):
            for rate in (None, 200):
                writer = Writer(args.tool, store, rate, conversations) if rate else None
                time.sleep(0.5 if writer else 0)
                before = writer.acked if writer else 0
                rps, p50, p99 = run_readers(args.tool, store, count, args.seconds, conversations, users)
                achieved = (writer.acked - before) / args.seconds if writer else 0
                if writer:
                    writer.stop()
                label = f"durable appends, target {rate}/s" if rate else "none"
                print(f"| {count} | {label} | {rps:,.0f} | {p50:,.0f} / {p99:,.0f} | {achieved:,.0f} |")

        # A stale reader: one request, then it holds that snapshot while the writer appends
        # (32 KiB bodies, so the default checkpoint thresholds — 64 MiB of log, 16 MiB of dirty
        # pages — are crossed every ~2,000 appends and the page file's reuse shows).
        print()
        stale = Session(args.tool, store, read_only=True)
        stale.send({"op": "count", "conversation": conversations[0], "after": 0})
        writer = Writer(args.tool, store, None, conversations, body_bytes=32 << 10)
        samples = []

        def sample(phase):
            s = stats(args.tool, store)
            readers = s.get("readers") or {}
            samples.append((phase, writer.acked, s["pageFileBytes"], readers))

        def sample_every_2000_appends(phase, count=4):
            for _ in range(count):
                target = writer.acked + 2000
                while writer.acked < target:
                    if not writer.thread.is_alive():
                        raise RuntimeError("the writer stopped")
                    time.sleep(0.05)
                sample(phase)

        sample("held")
        sample_every_2000_appends("held")
        stale.kill()
        sample_every_2000_appends("released")
        writer.stop()
        print("| phase | appends acknowledged | page file bytes | reader table |")
        print("|---|---:|---:|---|")
        for phase, acked, size, readers in samples:
            print(f"| {phase} | {acked:,} | {size:,} | {json.dumps(readers)} |")
        held = [s for s in samples if s[0] == "held"]
        released = [s for s in samples if s[0] == "released"]
        grow_held = (held[-1][2] - held[0][2]) / max(1, held[-1][1] - held[0][1])
        grow_released = (released[-1][2] - released[0][2]) / max(1, released[-1][1] - released[0][1])
        print(f"\npage file growth per append: {grow_held:,.0f} bytes while the stale reader held its snapshot, "
              f"{grow_released:,.0f} bytes after it was killed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
