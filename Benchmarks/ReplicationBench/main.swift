import Foundation
import Scrollback
import ScrollbackReplication

#if canImport(Glibc)
import Glibc
#endif

// scrollback-replication-bench (`make replication-bench`; README, "Replication"): the cost and
// the lag of replication through a real three-node JetStream cluster (nats-server processes on
// loopback ports, stream R=3), all stores on real files with `full` durability.
//   1. send alone      — durable appends at a steady rate on a store nobody replicates;
//   2. send, leading   — the same on a store whose leader publishes (the cost on the write path),
//                        and per send the time until JetStream acknowledged it (replicated);
//   3. follower lag    — from the start of each send to the moment a follower (in this process,
//                        on its own store) has applied it, measured during 2;
//   4. publish rate    — `--catch-up` appends written in atomic batches of 1,000, until JetStream
//                        acknowledged all of them (the leader's throughput);
//   5. apply rate      — a new follower catching up on those changes (and the sends') from the stream.
// Usage: scrollback-replication-bench [--rate 200] [--seconds 10] [--catch-up 50000] [--dir PATH]

struct Options {
    var rate = 200
    var seconds = 10
    var catchUp = 50_000
    var directory = NSTemporaryDirectory() + "scrollback-replication-bench-\(getpid())"

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { fail("\(flag) needs a value") }
            switch flag {
            case "--rate": options.rate = Int(value) ?? 0
            case "--seconds": options.seconds = Int(value) ?? 0
            case "--catch-up": options.catchUp = Int(value) ?? 0
            case "--dir": options.directory = value
            default: fail("unknown option \(flag)")
            }
        }
        guard options.rate > 0, options.seconds > 0, options.catchUp > 0 else { fail("values must be positive integers") }
        return options
    }
}

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data("scrollback-replication-bench: \(text)\n".utf8))
    exit(2)
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func percentiles(_ samples: [UInt64]) -> (p50: Double, p99: Double) {
    guard !samples.isEmpty else { return (0, 0) }
    let sorted = samples.sorted()
    func at(_ q: Double) -> Double { Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000 }
    return (at(0.50), at(0.99))
}

func format(_ microseconds: Double) -> String {
    microseconds >= 1000 ? String(format: "%.2f ms", microseconds / 1000) : String(format: "%.0f µs", microseconds)
}

/// Three nats-server processes with JetStream, clustered on loopback ports.
final class Cluster {
    var processes: [Process] = []
    let urls: String

    init(directory: String) throws {
        guard let server = ["/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            fail("nats-server is not installed (make deps installs it)")
        }
        let base = 30_000 + Int(getpid() % 5_000) * 6
        urls = (0..<3).map { "nats://127.0.0.1:\(base + $0)" }.joined(separator: ",")
        for node in 0..<3 {
            let routes = (0..<3).filter { $0 != node }.map { "nats://127.0.0.1:\(base + 3 + $0)" }.joined(separator: ",")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: server)
            process.arguments = ["-a", "127.0.0.1", "-p", "\(base + node)", "-js", "-sd", "\(directory)/nats-\(node)", "-n", "n\(node)",
                                 "--cluster_name", "bench", "--cluster", "nats://127.0.0.1:\(base + 3 + node)", "--routes", routes]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            processes.append(process)
        }
    }

    func stop() {
        for process in processes where process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}

func openStore(_ path: String) throws -> MessageStore {
    var options = StoreOptions()
    options.durability = .full
    return try MessageStore(path: path, options: options)
}

func message(_ n: Int, prefix: String) -> Message {
    Message(id: "\(prefix)-\(n)", conversation: "room-\(n % 50)", sender: "user-\(n % 17)", createdAt: 1_700_000_000_000 + Int64(n),
            body: "message \(n): " + String(repeating: "x", count: 80 + n % 60))
}

/// Sends `count` appends at `rate` per second; per send, calls `after(n, start)`.
func paced(count: Int, rate: Int, _ send: (Int) throws -> Void) rethrows {
    let interval = 1_000_000_000 / UInt64(rate)
    let begin = now()
    for n in 0..<count {
        let due = begin + UInt64(n) * interval
        while now() < due { usleep(50) }
        try send(n)
    }
}

/// Per send: when it started and when the follower had applied it (0: not yet).
final class Times: @unchecked Sendable {
    let sendStarts: UnsafeMutablePointer<UInt64>
    let applied: UnsafeMutablePointer<UInt64>
    init(count: Int) {
        sendStarts = .allocate(capacity: count)
        sendStarts.initialize(repeating: 0, count: count)
        applied = .allocate(capacity: count)
        applied.initialize(repeating: 0, count: count)
    }
}

func runBenchmark() throws {
    let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
    try? FileManager.default.removeItem(atPath: options.directory)
    try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
    let cluster = try Cluster(directory: options.directory)
    defer {
        cluster.stop()
        try? FileManager.default.removeItem(atPath: options.directory)
    }
    var replication = ReplicationOptions(servers: cluster.urls, stream: "bench")
    replication.streamReplicas = 3
    let count = options.rate * options.seconds
    print("replication benchmark: 3-node JetStream cluster (R=3) on loopback, \(options.rate) durable sends/s for \(options.seconds) s")

    // 1. Sends on a store without replication.
    let alone = try openStore(options.directory + "/alone")
    var aloneSamples: [UInt64] = []
    try paced(count: count, rate: options.rate) { n in
        let start = now()
        try alone.append(message(n, prefix: "a"))
        aloneSamples.append(now() - start)
    }
    try alone.close()

    // 2 and 3. Sends on a leading store, a follower applying in this process.
    let leaderStore = try openStore(options.directory + "/leader")
    var leader: ReplicationLeader? = nil
    let readyBy = Date().addingTimeInterval(60)
    while leader == nil {
        do {
            leader = try ReplicationLeader(store: leaderStore, options: replication)
        } catch let error as ReplicationError where Date() < readyBy {
            _ = error
            usleep(500_000)   // the cluster is still electing its JetStream meta leader
        }
    }
    leader!.start()
    let followerStore = try openStore(options.directory + "/follower")
    let follower = try ReplicationFollower(store: followerStore, options: replication)
    let followerThread = Thread { try? follower.run() }
    followerThread.start()

    let times = Times(count: count)
    let sendStarts = times.sendStarts, applied = times.applied
    let watching = Thread {
        // Watches the follower's store for the sends' appends (polls its change stream).
        let applied = times.applied
        guard let reader = try? followerStore.changeReader() else { return }
        var seen = 0
        while seen < count {
            guard let changes = try? reader.read(limit: 1000) else { return }
            if changes.isEmpty { usleep(50); continue }
            let at = now()
            for change in changes {
                if case .append(let m) = change.operation, m.id.hasPrefix("l-"), let n = Int(m.id.dropFirst(2)), n < count {
                    applied[n] = at
                    seen += 1
                }
            }
        }
    }
    watching.start()
    var leadingSamples: [UInt64] = []
    var replicatedSamples: [UInt64] = []
    try paced(count: count, rate: options.rate) { n in
        let start = now()
        sendStarts[n] = start
        try leaderStore.append(message(n, prefix: "l"))
        leadingSamples.append(now() - start)
        try leader!.waitUntilReplicated(try leaderStore.changePosition())
        replicatedSamples.append(now() - start)
    }
    let waitUntil = Date().addingTimeInterval(60)
    while (0..<count).contains(where: { applied[$0] == 0 }) && Date() < waitUntil { usleep(10_000) }
    let lagSamples = (0..<count).compactMap { applied[$0] > 0 ? applied[$0] - sendStarts[$0] : nil }

    // 4. A new follower catching up on `catchUp` changes (written in batches of 1,000).
    var written = 0
    let publishStart = now()
    while written < options.catchUp {
        try leaderStore.write { batch in
            for n in written..<min(options.catchUp, written + 1000) { batch.append(message(n, prefix: "c")) }
        }
        written = min(options.catchUp, written + 1000)
    }
    try leader!.waitUntilReplicated(try leaderStore.changePosition(), timeout: .seconds(300))
    let publishNanoseconds = now() - publishStart
    let lateStore = try openStore(options.directory + "/late")
    let late = try ReplicationFollower(store: lateStore, options: replication)
    let catchUpStart = now()
    try late.run(untilCaughtUp: true)
    let catchUpNanoseconds = now() - catchUpStart
    let caughtUp = late.status.appliedChanges

    follower.stop()
    leader!.stop()
    let alonePercentiles = percentiles(aloneSamples)
    let leadingPercentiles = percentiles(leadingSamples)
    let replicatedPercentiles = percentiles(replicatedSamples)
    let lagPercentiles = percentiles(lagSamples)
    print("| figure | p50 | p99 |")
    print("|---|---|---|")
    print("| durable send, store not replicated | \(format(alonePercentiles.p50)) | \(format(alonePercentiles.p99)) |")
    print("| durable send, store leading (local commit) | \(format(leadingPercentiles.p50)) | \(format(leadingPercentiles.p99)) |")
    print("| send until replicated (JetStream acknowledged, R=3) | \(format(replicatedPercentiles.p50)) | \(format(replicatedPercentiles.p99)) |")
    print("| replication lag: send to applied on a follower | \(format(lagPercentiles.p50)) | \(format(lagPercentiles.p99)) |")
    print(String(format: "follower apply rate: %d changes caught up in %.2f s = %.0f changes/s (batches of %d)", caughtUp,
                 Double(catchUpNanoseconds) / 1e9, Double(caughtUp) / (Double(catchUpNanoseconds) / 1e9), replication.batchSize))
    print(String(format: "leader publish rate: %d changes written in atomic batches of 1,000 and acknowledged by JetStream in %.2f s = %.0f changes/s",
                 options.catchUp, Double(publishNanoseconds) / 1e9, Double(options.catchUp) / (Double(publishNanoseconds) / 1e9)))
    print("lag samples: \(lagSamples.count) of \(count) sends")
    try lateStore.close()
    try followerStore.close()
    try leaderStore.close()

}

try runBenchmark()
