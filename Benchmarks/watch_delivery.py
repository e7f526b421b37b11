#!/usr/bin/env python3
"""Change delivery across processes: `scrollback exec STORE` writes durable appends at a fixed
rate while `scrollback watch` processes follow the store; per change and watcher, the time from
sending the append request to the writer until the watcher printed its line.

    python3 Benchmarks/watch_delivery.py [--tool .build/release/scrollback] [--watchers 4]
        [--rate 200] [--seconds 5] [--poll-ms 10]

Prints one line of figures for the notes of the service issue. Not part of `make test`
(timings are not tests).
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", default=".build/release/scrollback")
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--poll-ms", type=int, default=10)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="scrollback-watch-")
    store = os.path.join(directory, "store")
    try:
        writer = subprocess.Popen([args.tool, "exec", store], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)

        def send(request):
            writer.stdin.write((json.dumps(request) + "\n").encode())
            writer.stdin.flush()
            answer = json.loads(writer.stdout.readline())
            assert answer.get("ok"), answer

        send({"op": "append", "id": "first", "conversation": "c", "sender": "s", "createdAt": 0, "kind": "text",
              "body": "x"})
        count = args.rate * args.seconds
        sent = {}
        received = []
        lock = threading.Lock()

        def follow(process):
            process.stdout.readline()  # the start line
            seen = 0
            while seen < count:
                line = process.stdout.readline()
                if not line:
                    return
                now = time.monotonic()
                change = json.loads(line)
                if change.get("op") != "append":
                    continue
                seen += 1
                with lock:
                    received.append((change["message"]["id"], now))

        watchers = []
        threads = []
        for _ in range(args.watchers):
            process = subprocess.Popen([args.tool, "watch", store, "--poll-ms", str(args.poll_ms)],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            watchers.append(process)
            thread = threading.Thread(target=follow, args=(process,))
            thread.start()
            threads.append(thread)
        time.sleep(0.5)
        start = time.monotonic()
        for k in range(count):
            due = start + k / args.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            identifier = "m%d" % k
            sent[identifier] = time.monotonic()
            send({"op": "append", "id": identifier, "conversation": "c%d" % (k % 50), "sender": "s", "createdAt": k,
                  "kind": "text", "body": "hello"})
        for thread in threads:
            thread.join(timeout=30)
        for process in watchers:
            process.terminate()
            process.wait()
        writer.stdin.close()
        writer.wait()
        latencies = sorted((at - sent[i]) * 1000 for i, at in received)
        if not latencies:
            print("no deliveries")
            return

        def percentile(p):
            return latencies[min(len(latencies) - 1, int(round((len(latencies) - 1) * p)))]

        print("watch delivery: %d watcher processes (--poll-ms %d), one exec writer sending %d durable appends at %d/s; "
              "send to printed line: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d of %d deliveries)"
              % (args.watchers, args.poll_ms, count, args.rate, percentile(0.5), percentile(0.99), latencies[-1],
                 len(latencies), count * args.watchers))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
