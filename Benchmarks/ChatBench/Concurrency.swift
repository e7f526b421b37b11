import Foundation
import Scrollback
import ScrollbackWorkload
import Synchronization

// Readers with a writer (workload.md: "1, 4, 16 and 64 reader threads (1,000 simulated
// users spread over them) doing the query mix while one writer sends durably at a fixed
// rate"). Each engine in turn; for each thread count the readers run for a fixed time while
// one writer thread appends at `writerRate` durable sends per second.

/// One operation of the readers' mix.
enum MixOperation: Int, CaseIterable {
    case latest20, keysetNext, unread, feed, previews, conversationList, getByID

    var key: String {
        switch self {
        case .latest20: "latest20"
        case .keysetNext: "keyset"
        case .unread: "unread"
        case .feed: "feed"
        case .previews: "latestOf20"
        case .conversationList: "conversationList"
        case .getByID: "getByID"
        }
    }

    /// Share of the mix in percent: opening a conversation, scrolling back, badges, the
    /// merged feed, the inbox previews, the conversation list, a linked message.
    var weight: Int {
        switch self {
        case .latest20: 30
        case .keysetNext: 15
        case .unread: 20
        case .feed: 10
        case .previews: 10
        case .conversationList: 5
        case .getByID: 10
        }
    }

    static let table: [MixOperation] = allCases.flatMap { Array(repeating: $0, count: $0.weight) }
}

/// A simulated user: the conversations of their inbox, and where their scroll-back stands.
struct SimulatedUser {
    var conversations: [String]
    var scrolling = 0
    var cursor: KeysetCursor? = nil
}

/// Figures of one engine at one reader-thread count.
struct ConcurrencyFigure {
    var engine: String
    var threads: Int
    var operations: Int
    var seconds: Double
    var reads: LatencySummary
    var perOperation: [String: LatencySummary]
    var writerSends: Int
    var writerSeconds: Double
    var writer: LatencySummary

    var readsPerSecond: Double { Double(operations) / seconds }
    var writerRate: Double { writerSeconds > 0 ? Double(writerSends) / writerSeconds : 0 }

    var json: [String: Any] {
        [
            "engine": engine, "threads": threads, "operations": operations, "seconds": seconds,
            "reads_per_second": readsPerSecond, "reads": reads.json,
            "operations_latency": perOperation.mapValues { $0.json },
            "writer_sends": writerSends, "writer_seconds": writerSeconds, "writer_sends_per_second": writerRate,
            "writer": writer.json,
        ]
    }
}

/// Per-thread results: slot i is written by thread i only, and read after the join.
final class ThreadSlots<T>: @unchecked Sendable {
    private let storage: UnsafeMutablePointer<T?>
    let count: Int
    init(_ count: Int) {
        self.count = count
        storage = .allocate(capacity: count)
        storage.initialize(repeating: nil, count: count)
    }
    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }
    subscript(i: Int) -> T? {
        get { storage[i] }
        set { storage[i] = newValue }
    }
    var slots: [T?] { (0..<count).map { storage[$0] } }
}

final class StopFlag: Sendable {
    let stopped = Atomic<Bool>(false)
}

extension Benchmark {
    /// The message number `n` of the live writer: the same on every engine (so that the
    /// engines can be brought to the same state afterwards), in an existing conversation,
    /// with a timestamp after the dataset's (unique, increasing).
    func liveMessage(_ n: Int) -> Message {
        var random = WorkloadRandom(seed: configuration.seed &+ UInt64(n), stream: 500)
        let conversation = DatasetCatalog.conversationName(random.below(configuration.conversations))
        return Message(
            id: "bench-live-\(n)", conversation: conversation, sender: DatasetCatalog.userName(n % configuration.users),
            createdAt: configuration.endMillis + 50_000_000 + Int64(n), kind: .text,
            body: "hello live chat message \(n) sure thanks")
    }

    func makeSimulatedUsers(_ sample: Sample) -> [SimulatedUser] {
        var random = WorkloadRandom(seed: configuration.seed, stream: 400)
        let heavy = sample.allHeavy.map(\.name)
        return (0..<options.simulatedUsers).map { _ in
            var list: [String] = []
            var seen = Set<String>()
            func add(_ c: String) { if seen.insert(c).inserted { list.append(c) } }
            for _ in 0..<2 { add(heavy[random.below(heavy.count)]) }
            while list.count < min(20, configuration.conversations) {
                add(DatasetCatalog.conversationName(random.below(configuration.conversations)))
            }
            return SimulatedUser(conversations: list)
        }
    }

    /// One mix operation for `user` on `engine`; returns a size to keep the result alive.
    func runMixOperation(_ op: MixOperation, _ user: inout SimulatedUser, _ engine: any ChatEngine,
                         _ random: inout WorkloadRandom) throws -> Int {
        let conversations = user.conversations
        switch op {
        case .latest20:
            return try engine.latest(conversations[random.below(conversations.count)], limit: 20).count
        case .keysetNext:
            if user.cursor == nil { user.scrolling = random.below(conversations.count) }
            let page = try engine.keysetPage(conversations[user.scrolling], after: user.cursor, limit: 20)
            user.cursor = page.next
            return page.messages.count
        case .unread:
            let marker = configuration.endMillis - Int64(random.below(7 * 86_400_000))
            return try engine.count(conversations[random.below(conversations.count)], after: marker)
        case .feed:
            return try engine.feed(conversations, limit: 50).count
        case .previews:
            return try engine.latestMessage(conversations).count
        case .conversationList:
            return try engine.conversations(limit: 50).count
        case .getByID:
            return try engine.message(id: DatasetCatalog.messageID(random.below(configuration.messages))) == nil ? 0 : 1
        }
    }

    func runConcurrency(_ sample: Sample) throws {
        let users = makeSimulatedUsers(sample)
        let counts = options.readerThreads
        let perCount = options.concurrencySeconds
        let bar = ProgressBar("readers with a writer", total: Int(Double(engines.count * counts.count) * perCount * 10))
        var done = 0
        var sent: [String: Int] = [:]
        for engine in engines {
            var n = 0
            for threads in counts {
                let figure = try runReadersWithWriter(engine, threads: threads, users: users, firstLive: n) { tenths in
                    bar.update(done + tenths)
                }
                done += Int(perCount * 10)
                n += figure.writerSends
                concurrency.append(figure)
            }
            sent[engine.name] = n
        }
        bar.finish()
        for f in concurrency {
            log("  \(f.engine), \(f.threads) reader thread\(f.threads == 1 ? "" : "s"): \(grouped(Int(f.readsPerSecond))) reads/s, p50 \(formatMicroseconds(f.reads.p50)), p99 \(formatMicroseconds(f.reads.p99)); writer \(String(format: "%.0f", f.writerRate)) sends/s, p99 \(formatMicroseconds(f.writer.p99))")
        }
        // Bring every engine to the same state (the writers achieved different counts), then
        // check that they agree on what the readers read.
        let most = sent.values.max() ?? 0
        liveMessages = most
        for engine in engines {
            var n = sent[engine.name] ?? 0
            while n < most {
                let end = min(most, n + 1_000)
                try engine.load((n..<end).map(liveMessage))
                n = end
            }
        }
        var labels: [(String, (any ChatEngine) throws -> QueryResult)] = []
        for n in stride(from: 0, to: min(most, 2_000), by: max(1, min(most, 2_000) / 50)) {
            let c = liveMessage(n).conversation
            labels.append(("after readers with a writer: latest 20 of \(c)", { .messages(try $0.latest(c, limit: 20)) }))
        }
        labels.append(("after readers with a writer: conversation list (50)", { .summaries(try $0.conversations(limit: 50)) }))
        for u in users.prefix(5) {
            labels.append(("after readers with a writer: feed of a simulated user", { .messages(try $0.feed(u.conversations, limit: 50)) }))
        }
        for (label, body) in labels { compare(label, try engines.map(body)) }
    }

    /// `threads` reader threads and one writer on `engine` for `concurrencySeconds`.
    func runReadersWithWriter(_ engine: any ChatEngine, threads: Int, users: [SimulatedUser], firstLive: Int,
                              progress: (Int) -> Void) throws -> ConcurrencyFigure {
        let share = max(2 << 20, options.cacheBytes / (threads + 1))
        let readers = try (0..<threads).map { _ in UncheckedBox(try engine.concurrentHandle(cacheBytes: share)) }
        let writer = UncheckedBox(try engine.concurrentHandle(cacheBytes: share))
        defer {
            for r in readers { r.value.closeHandle() }
            writer.value.closeHandle()
        }
        let stop = StopFlag()
        let failures = FailureBox()
        let readerResults = ThreadSlots<(samples: [UInt64], kinds: [[UInt64]], operations: Int, sink: Int)>(threads)
        let writerResult = ThreadSlots<(samples: [UInt64], seconds: Double)>(1)
        let messages = UncheckedBox(self)
        let rate = options.writerRate
        let seed = configuration.seed
        var bodies: [@Sendable () -> Void] = []
        for t in 0..<threads {
            // Thread t serves users t, t + threads, …
            let mine = UncheckedBox(Array(stride(from: t, to: users.count, by: threads).map { users[$0] }))
            let handle = readers[t]
            bodies.append {
                var users = mine.value
                var random = WorkloadRandom(seed: seed &+ UInt64(t), stream: 600 &+ UInt64(threads))
                var samples: [UInt64] = []
                samples.reserveCapacity(1 << 16)
                var kinds = [[UInt64]](repeating: [], count: MixOperation.allCases.count)
                var sink = 0
                var u = 0
                do {
                    while !stop.stopped.load(ordering: .relaxed) {
                        let op = MixOperation.table[random.below(MixOperation.table.count)]
                        let t0 = nowNanoseconds()
                        sink &+= try messages.value.runMixOperation(op, &users[u], handle.value, &random)
                        let elapsed = nowNanoseconds() - t0
                        samples.append(elapsed)
                        kinds[op.rawValue].append(elapsed)
                        u = u + 1 == users.count ? 0 : u + 1
                    }
                } catch {
                    failures.record("reader \(t): \(error)")
                }
                readerResults[t] = (samples, kinds, samples.count, sink)
            }
        }
        bodies.append {
            var samples: [UInt64] = []
            let start = nowNanoseconds()
            var n = 0
            do {
                while !stop.stopped.load(ordering: .relaxed) {
                    if rate > 0 {
                        let due = start + UInt64(Double(n) / rate * 1e9)
                        let now = nowNanoseconds()
                        if now < due {
                            usleep(UInt32(min(5_000, (due - now) / 1_000)))
                            continue
                        }
                    } else {
                        usleep(5_000)
                        continue
                    }
                    let m = messages.value.liveMessage(firstLive + n)
                    let t0 = nowNanoseconds()
                    try writer.value.send(m)
                    samples.append(nowNanoseconds() - t0)
                    n += 1
                }
            } catch {
                failures.record("writer: \(error)")
            }
            writerResult[0] = (samples, Double(nowNanoseconds() - start) / 1e9)
        }
        let group = DispatchGroup()
        let started = nowNanoseconds()
        for body in bodies {
            group.enter()
            let thread = Thread {
                body()
                group.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        let deadline = started + UInt64(options.concurrencySeconds * 1e9)
        while true {
            let now = nowNanoseconds()
            if now >= deadline { break }
            progress(Int(Double(now - started) / 1e8))
            usleep(UInt32(min(100_000, (deadline - now) / 1_000)))
        }
        stop.stopped.store(true, ordering: .relaxed)
        group.wait()
        let seconds = Double(nowNanoseconds() - started) / 1e9
        if let failure = failures.first { throw OptionError("readers with a writer on \(engine.name): \(failure)") }
        var all: [UInt64] = []
        var kinds = [[UInt64]](repeating: [], count: MixOperation.allCases.count)
        var sink = 0
        for r in readerResults.slots {
            guard let r else { continue }
            all.append(contentsOf: r.samples)
            for (i, k) in r.kinds.enumerated() { kinds[i].append(contentsOf: k) }
            sink &+= r.sink
        }
        if sink == Int.min { log("") }
        var perOperation: [String: LatencySummary] = [:]
        for op in MixOperation.allCases where !kinds[op.rawValue].isEmpty {
            perOperation[op.key] = LatencySummary(nanoseconds: kinds[op.rawValue])
        }
        let w = writerResult[0] ?? ([], seconds)
        return ConcurrencyFigure(
            engine: engine.name, threads: threads, operations: all.count, seconds: seconds,
            reads: LatencySummary(nanoseconds: all), perOperation: perOperation,
            writerSends: w.samples.count, writerSeconds: w.seconds, writer: LatencySummary(nanoseconds: w.samples))
    }

    /// Change delivery (workload.md: 100 concurrent realtime subscriptions, delivery < 300 ms):
    /// `deliverySubscribers` async sequences of Scrollback's change stream follow the loaded
    /// store while one thread sends durable appends at the writer rate for
    /// `concurrencySeconds`, into a conversation of its own (its messages are deleted
    /// afterwards, so the engines still agree). Per message and subscriber: the time from the
    /// start of the send (the `append` call, whose durable commit is part of it) to the
    /// subscriber's receipt. The peers have no change notification across connections
    /// (SQLite's `update_hook` sees only its own connection's writes; LMDB and RocksDB have
    /// none), so only Scrollback is measured.
    func runChangeDelivery() throws {
        guard let engine = engines.first(where: { $0.name == "scrollback" }) as? ScrollbackEngine else { return }
        let store = engine.sharedStore
        let subscribers = options.deliverySubscribers
        let rate = max(1, options.writerRate)
        let sends = max(1, Int(rate * options.concurrencySeconds))
        let start = try store.changePosition()
        let results = ThreadSlots<[UInt64]>(subscribers)
        let group = DispatchGroup()
        for s in 0..<subscribers {
            group.enter()
            Task.detached {
                var latencies: [UInt64] = []
                latencies.reserveCapacity(sends)
                do {
                    for try await change in store.changes(after: start, conversations: ["bench-delivery"]) {
                        guard case .append(let message) = change.operation, let sent = UInt64(message.body) else { continue }
                        latencies.append(nowNanoseconds() &- sent)
                        if latencies.count == sends { break }
                    }
                } catch {}
                results[s] = latencies
                group.leave()
            }
        }
        let began = nowNanoseconds()
        for n in 0..<sends {
            let due = began + UInt64(Double(n) / rate * 1e9)
            let now = nowNanoseconds()
            if now < due { usleep(UInt32((due - now) / 1_000)) }
            try appendBlocking(store, Message(id: "bench-delivery-\(n)", conversation: "bench-delivery", sender: "bench",
                                              createdAt: configuration.endMillis + 90_000_000 + Int64(n),
                                              body: String(nowNanoseconds())))
        }
        if group.wait(timeout: .now() + 60) == .timedOut { log("  change delivery: some subscribers did not receive every change within 60 s") }
        var all: [UInt64] = []
        var complete = 0
        for r in results.slots {
            guard let r else { continue }
            all += r
            if r.count == sends { complete += 1 }
        }
        try store.write { batch in for n in 0..<sends { batch.delete(id: "bench-delivery-\(n)") } }
        changeDelivery = ChangeDeliveryFigure(subscribers: subscribers, sends: sends, rate: rate, completeSubscribers: complete,
                                              latency: LatencySummary(nanoseconds: all))
    }

    var changeDeliveryNote: String {
        guard let d = changeDelivery else { return "not measured (Scrollback not among the engines)" }
        return "Scrollback, \(d.subscribers) subscribers (async sequences of its change stream), \(d.sends) durable sends at \(String(format: "%g", d.rate))/s: p50 \(formatMilliseconds(d.latency.p50)), p99 \(formatMilliseconds(d.latency.p99)), max \(formatMilliseconds(d.latency.max)) from the send's start to each subscriber's receipt (\(d.completeSubscribers) of \(d.subscribers) received every change; the peers have no cross-connection notification)"
    }
}

/// The change stream's delivery figures (`runChangeDelivery`).
struct ChangeDeliveryFigure {
    var subscribers: Int
    var sends: Int
    var rate: Double
    var completeSubscribers: Int
    var latency: LatencySummary

    var json: [String: Any] {
        ["measured": true, "engine": "scrollback", "subscribers": subscribers, "sends": sends, "rate": rate,
         "complete_subscribers": completeSubscribers, "latency": latency.json]
    }
}

/// The synchronous append (from a synchronous function: no async overload is chosen).
private func appendBlocking(_ store: MessageStore, _ message: Message) throws {
    try store.append(message)
}

private func formatMilliseconds(_ microseconds: Double) -> String { String(format: "%.2f ms", microseconds / 1000) }
