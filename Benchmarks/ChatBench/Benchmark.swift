import CSQLite
import Foundation
import Scrollback
import ScrollbackWorkload

/// One run of the suite: generate + validate, load every engine, check agreement, time.
final class Benchmark {
    let options: Options
    let generator: DatasetGenerator
    var configuration: DatasetConfiguration { options.configuration }
    var engines: [any ChatEngine] = []
    let started = nowNanoseconds()

    // Results.
    var validation: ValidationReport?
    var perConversation: [Int32] = []
    var loadSeconds: [String: Double] = [:]
    /// Scrollback's ordinary batched write path on the first messages (msg/s), beside its bulk load.
    var batchedWriteRate: Double?
    var batchedWriteMessages = 0
    var bytesAfterLoad: [String: UInt64] = [:]
    var bytesAfterCompaction: [String: UInt64] = [:]
    var compactionSeconds: [String: Double] = [:]
    var residentAfterLoad: [String: UInt64] = [:]
    var reopenMilliseconds: [String: Double] = [:]
    var latencies: [(key: QueryKey, perEngine: [String: LatencySummary])] = []
    /// Scrollback's durable commits of the write phases split by whether a checkpoint or a seal
    /// of its own ran at some moment during the call (`BackgroundActivity.overlapped`).
    var commitsBesideBackground: [(key: QueryKey, beside: LatencySummary, alone: LatencySummary)] = []
    var skipped: [(QueryKey, String)] = []
    var writerCommits: [String: (commits: Int, seconds: Double)] = [:]
    var agreementChecks = 0
    var mismatches: [String] = []
    var scrollbackStatistics: StoreStatistics?
    /// The search phase's figures (`runSearch`).
    var searchFigures: SearchFigures?
    var sampleDescription: [String: Any] = [:]
    /// p50 of two back-to-back clock reads: the floor under every latency sample.
    var timerOverheadNanoseconds: UInt64 = 0
    var concurrency: [ConcurrencyFigure] = []
    /// Scrollback's change stream under the writer (nil when not run).
    var changeDelivery: ChangeDeliveryFigure?
    /// Messages the live writer of the concurrency phase added to every engine.
    var liveMessages = 0
    var cold: [ColdFigure] = []
    var phaseSeconds: [(String, Double)] = []

    init(options: Options) throws {
        self.options = options
        generator = try DatasetGenerator(options.configuration)
    }

    func log(_ text: String) {
        writeStandardOutput(text + "\n")
    }

    // MARK: Run

    /// Returns the process exit status: 0 ok, 1 engines disagree, 2 dataset failed validation.
    func run() throws -> Int32 {
        log("scrollback-bench: \(configuration)\(options.quick ? " (quick smoke run)" : "")")
        log("engines: \(options.engines.joined(separator: ", ")); cache \(formatBytes(UInt64(options.cacheBytes))) each; durability \(options.durability == .full ? "full" : "normal"); \(libraryVersions)")
        try checkDiskSpace()

        // 1. Generate and validate.
        var validator = DatasetValidator(catalog: generator.catalog)
        let bar = ProgressBar("generate + validate", total: configuration.messages)
        let t0 = nowNanoseconds()
        generator.forEachBatch(size: 10_000, progress: { done, _ in bar.update(done) }) { batch in
            for m in batch { validator.observe(m) }
        }
        bar.finish()
        let report = validator.report()
        validation = report
        perConversation = validator.messagesPerConversation
        log("dataset generated and validated in \(String(format: "%.1f", Double(nowNanoseconds() - t0) / 1e9)) s:")
        log(report.render())
        if !report.passed {
            if options.quick {
                log("(quick run: the dataset is too small for the size rules; only engine agreement is checked)")
            } else if options.force {
                log("WARNING: --force: the dataset fails the workload rules; these figures are not the benchmark's.")
            } else {
                log("scrollback-bench: the dataset fails the workload rules; refusing to report figures on it.")
                return 2
            }
        }

        // 2. Engines.
        try? FileManager.default.removeItem(atPath: options.directory)
        try FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        for name in options.engines {
            switch name {
            case "scrollback":
                do {
                    engines.append(try ScrollbackEngine(directory: options.directory, cacheBytes: options.cacheBytes, durability: options.durability,
                                                        changeRetentionBytes: options.changeRetentionBytes))
                } catch {
                    throw OptionError("cannot open a Scrollback store in \(options.directory): \(error)")
                }
            case "sqlite-rowid":
                engines.append(try SQLiteEngine(schema: .rowid, directory: options.directory, cacheBytes: options.cacheBytes, durability: options.durability))
            case "sqlite-clustered":
                engines.append(try SQLiteEngine(schema: .clustered, directory: options.directory, cacheBytes: options.cacheBytes, durability: options.durability))
            case "lmdb":
                engines.append(try KVEngine(backend: LMDBBackend(directory: options.directory, mapBytes: lmdbMapBytes, durability: options.durability)))
            default:
                engines.append(try KVEngine(backend: RocksDBBackend(directory: options.directory, cacheBytes: options.cacheBytes, durability: options.durability)))
            }
        }

        // 3. Bulk load, one engine at a time (the generator runs again, untimed).
        var phase = nowNanoseconds()
        func endPhase(_ name: String) {
            let now = nowNanoseconds()
            phaseSeconds.append((name, Double(now - phase) / 1e9))
            phase = now
        }
        for engine in engines { try load(engine) }
        endPhase("load")

        // 4. Reopen after a clean close.
        let sample = makeSample()
        for engine in engines { try measureReopen(engine, probe: sample.all[0]) }

        var empty = [UInt64]()
        for _ in 0..<10_001 {
            let a = nowNanoseconds()
            empty.append(nowNanoseconds() - a)
        }
        timerOverheadNanoseconds = empty.sorted()[5_000]

        // 5. Read queries: agreement, then per engine a warm-up and the timing.
        let queries = try makeReadQueries(sample)
        let wanted = queries.filter { options.wants($0.key) }
        let readBar = ProgressBar("read queries", total: wanted.count)
        for (i, query) in wanted.enumerated() {
            try runRead(query)
            readBar.update(i + 1)
        }
        readBar.finish()
        endPhase("read queries")

        // 6. Writes.
        if options.wants(.send) { try runSends() }
        if options.wants(.sendSpread) { try runSpreadSends() }
        if options.wants(.markRead) { try runMarkRead(sample) }
        if options.wants(.writers) { try runWriters() }
        try checkAfterWrites(sample)
        endPhase("writes")

        // 7. Readers with a writer; cold reads.
        if !options.skip.contains("concurrency") {
            log("readers with a writer: \(options.readerThreads.map(String.init).joined(separator: ", ")) reader threads, \(grouped(options.simulatedUsers)) simulated users, \(String(format: "%g", options.concurrencySeconds)) s each, one writer at \(String(format: "%g", options.writerRate)) durable sends/s")
            try runConcurrency(sample)
            try runChangeDelivery()
            log("  change delivery (send → subscriber): \(changeDeliveryNote)")
            endPhase("readers with a writer")
        }
        if !options.skip.contains("cold") {
            log("cold reads: store files evicted from the OS page cache (fsync + POSIX_FADV_DONTNEED), engine reopened; bytes = /proc/self/io read_bytes per query")
            try runCold(sample)
            endPhase("cold reads")
        }

        // 8. Compaction and bytes on disk.
        let compactBar = ProgressBar("compaction", total: engines.count)
        for (i, engine) in engines.enumerated() {
            if options.wants(.compaction) && !options.skip.contains("compaction") {
                let t = nowNanoseconds()
                try engine.compact()
                compactionSeconds[engine.name] = Double(nowNanoseconds() - t) / 1e9
            } else {
                try engine.checkpoint()
            }
            bytesAfterCompaction[engine.name] = try engine.diskBytes()
            compactBar.update(i + 1)
        }
        compactBar.finish()
        endPhase("compaction")
        if !options.skip.contains("search") {
            log("search: Scrollback's index and SQLite FTS5, each built after every phase above")
            try runSearch(sample)
            endPhase("search")
        }
        if let s = engines.first(where: { $0 is ScrollbackEngine }) as? ScrollbackEngine { scrollbackStatistics = s.statistics() }
        for engine in engines { try engine.close() }
        if !options.keep { try? FileManager.default.removeItem(atPath: options.directory) }

        // 9. Report.
        printTable()
        if let path = options.jsonPath { try writeJSON(path) ; log("wrote \(path)") }
        if mismatches.isEmpty, let directory = options.resultsDirectory { try writeResults(directory) }
        if !mismatches.isEmpty {
            log("FAIL: the engines disagree on \(mismatches.count) of \(agreementChecks) checked results:")
            for m in mismatches.prefix(20) { log("  " + m) }
            return 1
        }
        log("agreement: all engines returned equal results for all \(agreementChecks) checked queries")
        return 0
    }

    // MARK: Load

    func load(_ engine: any ChatEngine) throws {
        let bar = ProgressBar("load \(engine.name)", total: configuration.messages)
        var nanos: UInt64 = 0
        engine.beginLoad()
        let clock = GeneratedMessages.Clock()
        let messages = GeneratedMessages(generator: generator, chunk: options.loadBatch, clock: clock, progress: { bar.update($0) })
        let start = nowNanoseconds()
        if try engine.loadAll(messages) {
            nanos = nowNanoseconds() - start - clock.generatingNanos
        } else {
            try generator.forEachBatch(size: options.loadBatch, progress: { done, _ in bar.update(done) }) { batch in
                let t = nowNanoseconds()
                try engine.load(batch)
                nanos += nowNanoseconds() - t
            }
        }
        let t = nowNanoseconds()
        try engine.finishLoad()
        nanos += nowNanoseconds() - t
        bar.finish()
        let seconds = Double(nanos) / 1e9
        loadSeconds[engine.name] = seconds
        if let scrollback = engine as? ScrollbackEngine {
            // The batched write path on the first 200,000 messages, into a scratch store.
            var first: [Message] = []
            let wanted = min(200_000, configuration.messages)
            var messages = generator.makeIterator()   // the first `wanted` only, not another pass
            while first.count < wanted, let message = messages.next() { first.append(message) }
            batchedWriteMessages = first.count
            batchedWriteRate = try scrollback.batchedWriteRate(first, batchSize: options.loadBatch)
            log("  scrollback (batched writes of \(options.loadBatch)): \(grouped(first.count)) messages at \(grouped(Int(batchedWriteRate ?? 0))) msg/s")
        }
        bytesAfterLoad[engine.name] = try engine.diskBytes()
        residentAfterLoad[engine.name] = currentResidentBytes()
        log("  \(engine.name): \(grouped(configuration.messages)) messages in \(String(format: "%.2f", seconds)) s = \(grouped(Int(Double(configuration.messages) / seconds))) msg/s, \(formatBytes(bytesAfterLoad[engine.name]!)) on disk")
    }

    func measureReopen(_ engine: any ChatEngine, probe: String) throws {
        var times: [Double] = []
        for _ in 0..<3 {
            try engine.close()
            let t = nowNanoseconds()
            try engine.reopen()
            _ = try engine.latest(probe, limit: 20)
            times.append(Double(nowNanoseconds() - t) / 1e6)
        }
        reopenMilliseconds[engine.name] = times.sorted()[1]
    }

    // MARK: Sampling

    struct Sample {
        var heavy: [String]       // sampled heavy rooms (top 1% by size), the largest first
        var ordinary: [String]
        var all: [String]
        var allHeavy: [(name: String, count: Int)]  // every top-1% room, largest first
        var count: [String: Int]
        var largest: String
    }

    func makeSample() -> Sample {
        var random = WorkloadRandom(seed: configuration.seed, stream: 100)
        let order = perConversation.indices.sorted { perConversation[$0] != perConversation[$1] ? perConversation[$0] > perConversation[$1] : $0 < $1 }
        let heavyCount = max(1, Int((Double(order.count) * 0.01).rounded()))
        let heavyIndices = Array(order.prefix(heavyCount))
        let ordinaryIndices = Array(order.dropFirst(heavyCount))
        func pick(_ from: [Int], _ k: Int) -> [Int] {
            var pool = from
            var out: [Int] = []
            while out.count < k, !pool.isEmpty { out.append(pool.swapRemoveAt(random.below(pool.count))) }
            return out
        }
        // workload.md: about 50 representative conversations, heavy rooms and ordinary ones.
        let heavy = [heavyIndices[0]] + pick(Array(heavyIndices.dropFirst()), 9)
        let ordinary = pick(ordinaryIndices, 40)
        var count: [String: Int] = [:]
        for i in heavy + ordinary { count[DatasetCatalog.conversationName(i)] = Int(perConversation[i]) }
        let heavyNames = heavy.map(DatasetCatalog.conversationName)
        let ordinaryNames = ordinary.map(DatasetCatalog.conversationName)
        var all = heavyNames + ordinaryNames
        for i in stride(from: all.count - 1, to: 0, by: -1) { all.swapAt(i, random.below(i + 1)) }
        let s = Sample(
            heavy: heavyNames, ordinary: ordinaryNames, all: all,
            allHeavy: heavyIndices.map { (DatasetCatalog.conversationName($0), Int(perConversation[$0])) },
            count: count, largest: DatasetCatalog.conversationName(heavyIndices[0]))
        sampleDescription = [
            "heavy": heavyNames.map { ["conversation": $0, "messages": count[$0] ?? 0] },
            "ordinary": ordinaryNames.map { ["conversation": $0, "messages": count[$0] ?? 0] },
        ]
        log("sample: \(heavyNames.count) heavy rooms (\(heavyNames.map { String(count[$0] ?? 0) }.joined(separator: ", ")) messages) and \(ordinaryNames.count) ordinary conversations (median \(ordinaryNames.map { count[$0] ?? 0 }.sorted()[ordinaryNames.count / 2]) messages)")
        return s
    }

    // MARK: Read queries

    final class CursorBox { var cursors: [[KeysetCursor?]] = [] }

    func makeReadQueries(_ sample: Sample) throws -> [ReadQuery] {
        var random = WorkloadRandom(seed: configuration.seed, stream: 200)
        let p = options.distinctParameters
        let reference = engines[0]
        var queries: [ReadQuery] = []
        let day: Int64 = 86_400_000

        func cycle(_ list: [String], _ n: Int) -> [String] { (0..<n).map { list[$0 % list.count] } }

        // 1. Latest 20.
        let latestParams = cycle(sample.all, p)
        queries.append(ReadQuery(key: .latest20, parameterCount: p) { _, e, i in .messages(try e.latest(latestParams[i], limit: 20)) })
        queries.append(ReadQuery(key: .latest20Borrowed, parameterCount: p) { _, e, i in
            .digest(try e.latestInPlace(latestParams[i], limit: 20))
        })

        // 2. Offset pages.
        func offsetQuery(_ key: QueryKey, _ offset: Int, _ rooms: [String]) {
            guard !rooms.isEmpty else {
                skipped.append((key, "skipped: no conversation has \(offset + 20) messages"))
                return
            }
            let params = cycle(rooms, p)
            queries.append(ReadQuery(key: key, parameterCount: params.count) { _, e, i in
                .messages(try e.page(params[i], offset: offset, limit: 20))
            })
        }
        offsetQuery(.offset100, 100, sample.all.filter { (sample.count[$0] ?? 0) >= 120 })
        offsetQuery(.offset1000, 1_000, sample.heavy.filter { (sample.count[$0] ?? 0) >= 1_020 })
        offsetQuery(.offset10000, 10_000, sample.allHeavy.filter { $0.count >= 10_020 }.map(\.name))

        // Keyset walk of the largest room, newest to oldest; each page is one sample.
        let largest = sample.largest
        let pages = max(1, ((sample.count[largest] ?? 0) + 19) / 20)
        let box = CursorBox()
        box.cursors = Array(repeating: Array(repeating: nil, count: pages + 1), count: engines.count)
        queries.append(ReadQuery(key: .keyset, parameterCount: pages) { ei, e, i in
            let (messages, next) = try e.keysetPage(largest, after: box.cursors[ei][i], limit: 20)
            box.cursors[ei][i + 1] = next
            return .messages(messages)
        })

        // 3. Unread counts: near = k-th newest message (k in 5…50), far = 29 days back.
        func nearMarkers(_ rooms: [String]) throws -> [(String, Int64)] {
            var out: [(String, Int64)] = []
            for i in 0..<p {
                let room = rooms[i % rooms.count]
                let k = 5 + random.below(46)
                let newest = try reference.latest(room, limit: k)
                out.append((room, (newest.last?.createdAt ?? configuration.endMillis) - (newest.count < k ? 1 : 0)))
            }
            return out
        }
        func farMarkers(_ rooms: [String]) -> [(String, Int64)] {
            (0..<p).map { i in
                (rooms[i % rooms.count], configuration.endMillis - 29 * day + Int64(random.below(Int(day))) - day / 2)
            }
        }
        func unreadQuery(_ key: QueryKey, _ params: [(String, Int64)]) {
            queries.append(ReadQuery(key: key, parameterCount: params.count) { _, e, i in
                .count(try e.count(params[i].0, after: params[i].1))
            })
        }
        if !sample.ordinary.isEmpty {
            unreadQuery(.unreadNear, try nearMarkers(sample.ordinary))
            unreadQuery(.unreadFar, farMarkers(sample.ordinary))
        }
        // Heavy: rooms of 10k+ messages (product.md's "≥ 100× in rooms of 10k+"); a small
        // dataset without one uses its sampled heavy rooms.
        let bigRooms = sample.allHeavy.filter { $0.count >= 10_000 }.map(\.name)
        let heavyRooms = bigRooms.isEmpty ? sample.heavy : bigRooms
        if bigRooms.isEmpty {
            skipped.append((.unreadFarHeavy, "no room has 10k messages: the \"10k+ room\" unread rows use the sampled heavy rooms"))
        }
        unreadQuery(.unreadNearHeavy, try nearMarkers(heavyRooms))
        unreadQuery(.unreadFarHeavy, farMarkers(heavyRooms))

        // 4. Feed over 20 conversations.
        let feedParams: [[String]] = (0..<p).map { _ in
            var pool = sample.all
            var out: [String] = []
            while out.count < 20, !pool.isEmpty { out.append(pool.swapRemoveAt(random.below(pool.count))) }
            return out
        }
        queries.append(ReadQuery(key: .feed, parameterCount: p) { _, e, i in .messages(try e.feed(feedParams[i], limit: 50)) })

        // 5. One-day range.
        let rangeParams: [(String, Int64)] = (0..<p).map { i in
            let span = Int(Int64(configuration.days - 1) * day)
            return (sample.all[i % sample.all.count], configuration.startMillis + Int64(random.below(max(1, span))))
        }
        queries.append(ReadQuery(key: .range, parameterCount: p) { _, e, i in
            .messages(try e.range(rangeParams[i].0, from: rangeParams[i].1, through: rangeParams[i].1 + day - 1))
        })

        // 6. Latest message of 50 conversations.
        let previewParams: [[String]] = (0..<p).map { _ in
            var list = sample.all
            for j in stride(from: list.count - 1, to: 0, by: -1) { list.swapAt(j, random.below(j + 1)) }
            return list
        }
        queries.append(ReadQuery(key: .latestOf50, parameterCount: p) { _, e, i in
            .optionalMessages(try e.latestMessage(previewParams[i]))
        })

        // Conversation list and get by id.
        queries.append(ReadQuery(key: .conversationList, parameterCount: 1) { _, e, _ in .summaries(try e.conversations(limit: 50)) })
        let ids = (0..<p).map { _ in DatasetCatalog.messageID(random.below(configuration.messages)) }
        queries.append(ReadQuery(key: .getByID, parameterCount: p) { _, e, i in .message(try e.message(id: ids[i])) })
        return queries
    }

    func compare(_ label: String, _ results: [QueryResult]) {
        agreementChecks += 1
        for (e, r) in results.enumerated().dropFirst() where r != results[0] {
            mismatches.append("\(label): \(engines[0].name) vs \(engines[e].name): \(results[0].difference(from: r))")
        }
    }

    func runRead(_ query: ReadQuery) throws {
        // Agreement on every distinct parameter set (this pass also brings every engine's pages
        // into memory); then the timed runs, in rounds of every engine's warm-up and share.
        for i in 0..<query.parameterCount {
            var results: [QueryResult] = []
            for (ei, engine) in engines.enumerated() { results.append(try query.run(ei, engine, i)) }
            compare("\(query.key.rawValue) #\(i)", results)
        }
        // Timing: exact samples, in rounds (`timedRounds`).
        let iterations = query.key == .keyset ? max(query.parameterCount, options.iterations) : options.iterations
        let samples = try timedRounds(engines: engines.count, iterations: iterations, parameterCount: query.parameterCount) {
            try query.run($0, engines[$0], $1)
        }
        var summaries: [String: LatencySummary] = [:]
        for (ei, engine) in engines.enumerated() { summaries[engine.name] = LatencySummary(nanoseconds: samples[ei]) }
        latencies.append((query.key, summaries))
        log(progressLine(query.key, summaries))
    }

    /// Times `run(engine, parameter set)` for `iterations` calls per engine (cycling over the
    /// parameter sets) and returns each engine's samples in nanoseconds; the call is the only
    /// work inside the timed region. The calls are taken in `options.rounds` rounds: in each,
    /// every engine in turn (every other round in reverse order) warms up and makes its next
    /// share of the calls, continuing over the parameter sets where its last share ended. A
    /// slow engine ends its share of a round at its share of `options.secondsPerQuery` once
    /// it has its share of `options.minimumSamples`. Each call's result is released after
    /// the clock read that ends its sample.
    func timedRounds<Result>(engines count: Int, iterations: Int, parameterCount: Int,
                             _ run: (Int, Int) throws -> Result) throws -> [[UInt64]] {
        let rounds = max(1, min(options.rounds, iterations))
        var samples = Array(repeating: [UInt64](), count: count)
        for e in 0..<count { samples[e].reserveCapacity(iterations) }
        for round in 0..<rounds {
            let start = iterations * round / rounds, end = iterations * (round + 1) / rounds
            let minimum = options.minimumSamples * (round + 1) / rounds
            for e in round % 2 == 0 ? Array(0..<count) : (0..<count).reversed() {
                try warmUp(parameterCount, seconds: options.warmUpSeconds / Double(rounds)) { _ = try run(e, $0) }
                let deadline = nowNanoseconds() + UInt64(options.secondsPerQuery / Double(rounds) * 1e9)
                for n in start..<end {
                    let i = n % parameterCount
                    let t0 = nowNanoseconds()
                    let result = try run(e, i)
                    let t1 = nowNanoseconds()
                    withExtendedLifetime(result) {}
                    samples[e].append(t1 - t0)
                    if t1 > deadline, samples[e].count >= minimum { break }
                }
            }
        }
        return samples
    }

    /// Runs `run` untimed over the first parameter sets for `options.warmUpIterations` calls
    /// or `seconds`, whichever ends first: the engine about to be timed then finds its own
    /// pages and code in the CPU caches.
    func warmUp(_ parameterCount: Int, seconds: Double, _ run: (Int) throws -> Void) rethrows {
        let deadline = nowNanoseconds() + UInt64(seconds * 1e9)
        for n in 0..<options.warmUpIterations {
            try run(n % parameterCount)
            if nowNanoseconds() > deadline { break }
        }
    }

    func progressLine(_ key: QueryKey, _ summaries: [String: LatencySummary]) -> String {
        "  \(key.title): " + engines.compactMap { e in
            summaries[e.name].map { "\(e.name) p50 \(formatMicroseconds($0.p50)) p99 \(formatMicroseconds($0.p99))" }
        }.joined(separator: "; ")
    }

    // MARK: Writes

    func runSends() throws {
        let base = configuration.endMillis + 1_000
        let messages = (0..<options.sends).map { i in
            Message(id: "bench-send-\(i)", conversation: "bench-send-room", sender: "synuser1", createdAt: base + Int64(i),
                    kind: .text, body: "hello chat test message number \(i) from the send benchmark")
        }
        let summaries = try timedSends(messages, .send)
        latencies.append((.send, summaries))
        log(progressLine(.send, summaries))
    }

    /// Sends `messages` to every engine in turn, one durable send per call, timing each call.
    func timedSends(_ messages: [Message], _ key: QueryKey) throws -> [String: LatencySummary] {
        var summaries: [String: LatencySummary] = [:]
        for engine in engines {
            summaries[engine.name] = try timedCommits(engine, key, messages.count) { try engine.send(messages[$0]) }
        }
        return summaries
    }

    /// Times `count` calls of `commit` (one durable commit each) on `engine`. For an engine
    /// that reports its background work, the samples are also split by whether a checkpoint or
    /// seal ran during the call (the activity is read just outside the timed window), into
    /// `commitsBesideBackground`.
    func timedCommits(_ engine: any ChatEngine, _ key: QueryKey, _ count: Int, _ commit: (Int) throws -> Void) throws
        -> LatencySummary {
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        var beside: [UInt64] = [], alone: [UInt64] = []
        let reports = engine.backgroundActivity() != nil
        for i in 0..<count {
            let before = reports ? engine.backgroundActivity() : nil
            let t = nowNanoseconds()
            try commit(i)
            let elapsed = nowNanoseconds() - t
            samples.append(elapsed)
            if let before, let after = engine.backgroundActivity() {
                let overlapped = after.overlapped(since: before)
                if overlapped.checkpoints + overlapped.seals > 0 { beside.append(elapsed) } else { alone.append(elapsed) }
            }
        }
        if reports {
            let met = LatencySummary(nanoseconds: beside), others = LatencySummary(nanoseconds: alone)
            commitsBesideBackground.append((key, met, others))
            log("    \(engine.name) \(key.title): \(beside.count) of \(count) commits met a checkpoint or seal: p50 / p99 "
                + "\(formatMicroseconds(met.p50)) / \(formatMicroseconds(met.p99)) "
                + "against \(formatMicroseconds(others.p50)) / \(formatMicroseconds(others.p99)) without")
        }
        return LatencySummary(nanoseconds: samples)
    }

    /// Durable sends, each to a conversation of the dataset drawn at random (the same list for
    /// every engine): unlike `send` (one room), they touch pages all over the trees, so the
    /// engines' checkpoints (Scrollback's, SQLite's WAL checkpoints) fall inside the run and
    /// show in its p99 and max.
    func runSpreadSends() throws {
        var random = WorkloadRandom(seed: configuration.seed, stream: 310)
        let base = configuration.endMillis + 2_000_000
        let messages = (0..<options.spreadSends).map { i in
            Message(id: "bench-spread-\(i)", conversation: DatasetCatalog.conversationName(random.below(perConversation.count)),
                    sender: "synuser\(1 + i % 7)", createdAt: base + Int64(i), kind: .text,
                    body: "spread send number \(i): see you at the standup, bringing the notes")
        }
        let summaries = try timedSends(messages, .sendSpread)
        latencies.append((.sendSpread, summaries))
        log(progressLine(.sendSpread, summaries) + "; max " + engines.compactMap { e in
            summaries[e.name].map { "\(e.name) \(formatMicroseconds($0.max))" }
        }.joined(separator: ", "))
    }

    var markParams: [(user: String, conversation: String, through: String)] = []

    func runMarkRead(_ sample: Sample) throws {
        var random = WorkloadRandom(seed: configuration.seed, stream: 300)
        markParams = []
        for i in 0..<options.sends {
            let conversation = sample.all[i % sample.all.count]
            let recent = try engines[0].latest(conversation, limit: 50)
            guard !recent.isEmpty else { continue }
            markParams.append(("bench-reader-\(i)", conversation, recent[random.below(recent.count)].id))
        }
        var summaries: [String: LatencySummary] = [:]
        for engine in engines {
            summaries[engine.name] = try timedCommits(engine, .markRead, markParams.count) {
                let m = markParams[$0]
                try engine.markRead(user: m.user, conversation: m.conversation, through: m.through)
            }
        }
        latencies.append((.markRead, summaries))
        log(progressLine(.markRead, summaries))
    }

    func runWriters() throws {
        let threads = options.writerThreads
        let perThread = options.sendsPerWriter
        let base = configuration.endMillis + 10_000_000
        let lists: [[Message]] = (0..<threads).map { t in
            (0..<perThread).map { i in
                Message(id: "bench-w\(t)-\(i)", conversation: "bench-writer-\(t)", sender: "synuser\(t + 1)",
                        createdAt: base + Int64(t) * 1_000_000 + Int64(i), kind: .text,
                        body: "hey ok thanks concurrent writer \(t) message \(i)")
            }
        }
        var line = "  \(QueryKey.writers.title):"
        for engine in engines {
            let t = nowNanoseconds()
            try engine.concurrentSends(lists)
            let seconds = Double(nowNanoseconds() - t) / 1e9
            writerCommits[engine.name] = (threads * perThread, seconds)
            line += " \(engine.name) \(grouped(Int(Double(threads * perThread) / seconds))) commits/s;"
        }
        log(line)
    }

    func checkAfterWrites(_ sample: Sample) throws {
        var labels: [(String, (any ChatEngine) throws -> QueryResult)] = []
        if options.wants(.send) {
            labels.append(("after send: latest 50 of bench-send-room", { .messages(try $0.latest("bench-send-room", limit: 50)) }))
        }
        for m in markParams {
            labels.append(("after mark-as-read: unread \(m.user) in \(m.conversation)", {
                .count(try $0.unreadCount(user: m.user, conversation: m.conversation))
            }))
        }
        if options.wants(.writers) {
            for t in 0..<options.writerThreads {
                labels.append(("after writers: latest 20 of bench-writer-\(t)", { .messages(try $0.latest("bench-writer-\(t)", limit: 20)) }))
            }
        }
        labels.append(("after writes: conversation list (50)", { .summaries(try $0.conversations(limit: 50)) }))
        labels.append(("after writes: latest 20 of the largest room", { .messages(try $0.latest(sample.largest, limit: 20)) }))
        for (label, body) in labels {
            compare(label, try engines.map(body))
        }
    }
}

extension Array {
    /// Removes and returns the element at `index` by swapping the last one in (O(1)).
    mutating func swapRemoveAt(_ index: Int) -> Element {
        swapAt(index, count - 1)
        return removeLast()
    }
}
