import Foundation
import Scrollback
import ScrollbackStorage

// scrollback-async-bench: durable appends from Swift tasks on the cooperative pool, three ways
// (issue 14), with a 1 ms timer task measuring how late the cooperative pool runs it:
//   sync   — the synchronous API called from the tasks (blocks the cooperative threads);
//   pool   — the synchronous API offloaded by hand to a 16-thread pool (what a service author
//            had to write);
//   async  — the store's async API.
// Then the cost of the async hop on reads: latest-20 from one task, synchronously and async.
// Then change delivery: `--subscribers` tasks iterate `store.changes()` while one task sends
// durable appends at `--rate` per second for `--seconds`; per delivered change, the time from
// the start of the `append` call (the send) to the subscriber's receipt.
// Every mode runs on a new store (real files, `full` durability) in each round; rounds
// alternate the modes so that a change in machine load touches all of them alike.
// Usage: scrollback-async-bench [--tasks 8] [--appends 200] [--rounds 5] [--dir PATH]

struct Options {
    var tasks = 8
    var appends = 200
    var rounds = 5
    var poolThreads = 16
    var reads = 20_000
    var subscribers = 100
    var rate = 200
    var deliverySeconds = 5
    var directory = NSTemporaryDirectory() + "scrollback-async-bench-\(getpid())"

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var rest = arguments[...]
        func value(_ name: String) throws -> String {
            guard let value = rest.popFirst() else { throw UsageError(text: "\(name) needs a value") }
            return value
        }
        func number(_ name: String) throws -> Int {
            guard let n = Int(try value(name)), n > 0 else { throw UsageError(text: "\(name) needs a positive integer") }
            return n
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--tasks": options.tasks = try number(argument)
            case "--appends": options.appends = try number(argument)
            case "--rounds": options.rounds = try number(argument)
            case "--pool-threads": options.poolThreads = try number(argument)
            case "--reads": options.reads = try number(argument)
            case "--dir": options.directory = try value(argument)
            case "--subscribers": options.subscribers = try number(argument)
            case "--rate": options.rate = try number(argument)
            case "--seconds": options.deliverySeconds = try number(argument)
            case "--help", "-h":
                print("usage: scrollback-async-bench [--tasks N] [--appends N] [--rounds N] [--pool-threads N] [--reads N] "
                    + "[--subscribers N] [--rate N] [--seconds N] [--dir PATH]")
                exit(0)
            default: throw UsageError(text: "unknown argument \(argument)")
            }
        }
        return options
    }
}

struct UsageError: Error, CustomStringConvertible {
    var text: String
    var description: String { text }
}

/// The hand-written pool a service author would write: N threads taking closures from a queue.
final class HandWrittenPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false

    init(threads: Int) {
        for _ in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.start()
        }
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    func run<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            jobs.append { continuation.resume(with: Result(catching: body)) }
            condition.signal()
            condition.unlock()
        }
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

enum Mode: String, CaseIterable {
    case sync, pool, async

    var title: String {
        switch self {
        case .sync: "sync calls from tasks"
        case .pool: "hand-written 16-thread pool"
        case .async: "async API"
        }
    }
}

struct Run {
    var seconds: Double
    var lags: [Double]   // milliseconds
    var appends: Int
    /// Durable commits per group commit (one `fdatasync` each).
    var commitsPerGroup: Double
    var throughput: Double { Double(appends) / seconds }
}

/// The synchronous append (in a synchronous function: from an async context the async
/// overload would be chosen).
func appendBlocking(_ store: MessageStore, _ message: Message) throws {
    try store.append(message)
}

func latestBlocking(_ store: MessageStore) throws -> [Message] {
    try store.latest(in: "c0", limit: 20)
}

func message(task: Int, k: Int) -> Message {
    Message(id: "t\(task)-\(k)", conversation: "c\(task)", sender: "u\(task)", createdAt: 1_767_225_600_000 + Int64(k),
            body: "message \(k) of task \(task): hello, this is a chat message of a typical length")
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func measure(_ mode: Mode, _ options: Options, round: Int, pool: HandWrittenPool) async throws -> Run {
    let path = "\(options.directory)/\(mode.rawValue)-\(round)"
    try? FileManager.default.removeItem(atPath: path)
    var storeOptions = StoreOptions()
    storeOptions.durability = .full
    let store = try MessageStore(path: path, options: storeOptions)
    // Warm up: the store's threads and the files exist before the clock starts.
    _ = try await store.latest(in: "c0", limit: 1)
    let statisticsBefore = store.database.engine.statistics

    let done = ManagedAtomicFlag()
    let timer = Task {
        var lags: [Double] = []
        let clock = ContinuousClock()
        while !done.isSet {
            let start = clock.now
            try? await Task.sleep(for: .milliseconds(1))
            let elapsed = clock.now - start
            lags.append(max(0, Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3 - 1))
        }
        return lags
    }
    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for task in 0..<options.tasks {
            group.addTask {
                for k in 0..<options.appends {
                    let m = message(task: task, k: k)
                    switch mode {
                    case .sync: try appendBlocking(store, m)
                    case .pool: try await pool.run { try appendBlocking(store, m) }
                    case .async: try await store.append(m)
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = clock.now - start
    done.set()
    let lags = await timer.value
    let statisticsAfter = store.database.engine.statistics
    let commits = statisticsAfter.commits - statisticsBefore.commits
    let groups = statisticsAfter.commitGroups - statisticsBefore.commitGroups
    try await store.close()
    try? FileManager.default.removeItem(atPath: path)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Run(seconds: seconds, lags: lags, appends: options.tasks * options.appends,
               commitsPerGroup: Double(commits) / Double(max(1, groups)))
}

/// A flag set once, read by the timer task.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Per-call latency of latest-20 from one task: synchronous, and through the async API.
func measureReads(_ options: Options) async throws -> (sync: [Double], async: [Double]) {
    let path = "\(options.directory)/reads"
    try? FileManager.default.removeItem(atPath: path)
    let store = try MessageStore(path: path)
    try await store.write { batch in
        for k in 0..<1000 { batch.append(message(task: 0, k: k)) }
    }
    let clock = ContinuousClock()
    var syncTimes: [Double] = [], asyncTimes: [Double] = []
    for _ in 0..<2 {   // the first pass warms up
        syncTimes = []
        asyncTimes = []
        for _ in 0..<options.reads {
            var start = clock.now
            _ = try latestBlocking(store)
            syncTimes.append(Double((clock.now - start).components.attoseconds) / 1e12)
            start = clock.now
            _ = try await store.latest(in: "c0", limit: 20)
            asyncTimes.append(Double((clock.now - start).components.attoseconds) / 1e12)
        }
    }
    try await store.close()
    try? FileManager.default.removeItem(atPath: path)
    return (syncTimes.sorted(), asyncTimes.sorted())
}

/// Change delivery to `subscribers` async sequences while one task sends durable appends at a
/// fixed rate: milliseconds from the start of each send to each subscriber's receipt (sorted),
/// and how many sends were made.
func measureDelivery(_ options: Options) async throws -> (latencies: [Double], sends: Int) {
    let path = "\(options.directory)/delivery"
    try? FileManager.default.removeItem(atPath: path)
    let store = try MessageStore(path: path)
    let sends = options.rate * options.deliverySeconds
    let clock = ContinuousClock()
    let origin = clock.now
    func now() -> Double {
        let d = clock.now - origin
        return Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
    }
    let start = try store.changePosition()
    let subscribers = (0..<options.subscribers).map { _ in
        Task { () throws -> [Double] in
            var latencies: [Double] = []
            latencies.reserveCapacity(sends)
            for try await change in store.changes(after: start) {
                guard case .append(let message) = change.operation, let sent = Double(message.body) else { continue }
                latencies.append(now() - sent)
                if latencies.count == sends { break }
            }
            return latencies
        }
    }
    let interval = 1.0 / Double(options.rate)
    for k in 0..<sends {
        let due = Double(k) * interval * 1e3
        let wait = due - now()
        if wait > 0 { try await Task.sleep(for: .microseconds(Int(wait * 1e3))) }
        let sent = now()
        try await store.append(Message(id: "d\(k)", conversation: "c\(k % 50)", sender: "u", createdAt: Int64(k), body: String(sent)))
    }
    var all: [Double] = []
    for subscriber in subscribers { all += try await subscriber.value }
    try await store.close()
    try? FileManager.default.removeItem(atPath: path)
    return (all.sorted(), sends)
}

func format(_ value: Double, _ decimals: Int = 1) -> String {
    String(format: "%.\(decimals)f", value)
}

func main() async -> Int32 {
    let options: Options
    do {
        options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    } catch {
        FileHandle.standardError.write(Data("scrollback-async-bench: \(error)\n".utf8))
        return 2
    }
    do {
        try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: options.directory) }
        let pool = HandWrittenPool(threads: options.poolThreads)
        defer { pool.stop() }
        print("\(options.tasks) tasks × \(options.appends) durable appends, \(options.rounds) rounds, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores; timer task: sleep 1 ms, lag = time beyond 1 ms")
        var runs: [Mode: [Run]] = [:]
        for round in 0..<options.rounds {
            for mode in Mode.allCases {
                let run = try await measure(mode, options, round: round, pool: pool)
                runs[mode, default: []].append(run)
                print("  round \(round + 1) \(mode.rawValue): \(format(run.seconds, 3)) s, \(Int(run.throughput)) appends/s, "
                    + "\(format(run.commitsPerGroup, 2)) commits per group commit, lag max \(format(run.lags.max() ?? 0)) ms")
            }
        }
        print("")
        print("mode                          time (median)   appends/s   commits/group   lag p50     p99     max   (ms; all rounds)")
        for mode in Mode.allCases {
            let modeRuns = runs[mode] ?? []
            let times = modeRuns.map(\.seconds).sorted()
            let median = times[times.count / 2]
            let lags = modeRuns.flatMap(\.lags).sorted()
            let throughput = Double(options.tasks * options.appends) / median
            print(mode.title.padding(toLength: 30, withPad: " ", startingAt: 0)
                + "\(format(median, 3)) s".padding(toLength: 16, withPad: " ", startingAt: 0)
                + "\(Int(throughput))".padding(toLength: 12, withPad: " ", startingAt: 0)
                + format(modeRuns.map(\.commitsPerGroup).sorted()[modeRuns.count / 2], 2).padding(toLength: 16, withPad: " ", startingAt: 0)
                + "\(format(percentile(lags, 0.5), 2))".padding(toLength: 10, withPad: " ", startingAt: 0)
                + "\(format(percentile(lags, 0.99), 2))".padding(toLength: 8, withPad: " ", startingAt: 0)
                + "\(format(lags.last ?? 0, 2))")
        }
        let (syncReads, asyncReads) = try await measureReads(options)
        print("")
        print("latest 20 from one task (warm cache, \(options.reads) calls): "
            + "sync p50 \(format(percentile(syncReads, 0.5))) µs p99 \(format(percentile(syncReads, 0.99))) µs; "
            + "async p50 \(format(percentile(asyncReads, 0.5))) µs p99 \(format(percentile(asyncReads, 0.99))) µs")
        let (delivery, sends) = try await measureDelivery(options)
        print("")
        print("change delivery: \(options.subscribers) subscribers (async sequences), one task sending \(sends) durable appends "
            + "at \(options.rate)/s; send to receipt: p50 \(format(percentile(delivery, 0.5), 2)) ms, "
            + "p99 \(format(percentile(delivery, 0.99), 2)) ms, max \(format(delivery.last ?? 0, 2)) ms "
            + "(\(delivery.count) deliveries)")
        return 0
    } catch {
        FileHandle.standardError.write(Data("scrollback-async-bench: \(error)\n".utf8))
        return 1
    }
}

exit(await main())
