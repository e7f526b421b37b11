import CoreMetrics
import Foundation
import InMemoryLogging
import Logging
import MetricsTestKit
@testable import Scrollback
import ScrollbackIO
import ScrollbackStorage
import Testing

/// `StoreOptions.logger` and `StoreOptions.metrics` (StoreLogging.swift, StoreMetrics.swift):
/// what is logged at open, replay, checkpoint, compaction, the refusal of writes and close;
/// the counters, timers and gauges. A capturing log handler and swift-metrics' `TestMetrics`
/// (passed as the factory; nothing is bootstrapped).
@Suite struct ObservabilityTests {
    static func options(logger: Logger? = nil, metrics: StoreMetricsOptions? = nil) -> StoreOptions {
        var options = StoreOptions()
        options.pageSize = 4096
        options.cacheBytes = 1 << 20
        options.segmentBytes = 64 << 10
        options.autoCompactGarbageRatio = nil
        options.logger = logger
        options.metrics = metrics
        return options
    }

    static func capturingLogger(level: Logger.Level = .debug) -> (Logger, InMemoryLogHandler) {
        var handler = InMemoryLogHandler()
        handler.logLevel = level
        let captured = handler
        var logger = Logger(label: "test") { _ in captured }
        logger.logLevel = level
        return (logger, handler)
    }

    static func message(_ n: Int, body: String = "body") -> Message {
        Message(id: "m\(n)", conversation: "c\(n % 4)", sender: "s", createdAt: Int64(n), body: body)
    }

    static func entries(_ handler: InMemoryLogHandler, _ message: String) -> [InMemoryLogHandler.Entry] {
        handler.entries.filter { $0.message.description == message }
    }

    @Test func openCheckpointCompactionAndCloseAreLogged() throws {
        let (logger, handler) = Self.capturingLogger()
        let fs = MemoryFileSystem()
        let store = try MessageStore(path: "/db", options: Self.options(logger: logger), fileSystem: fs)
        let opened = Self.entries(handler, "opened store")
        #expect(opened.count == 1)
        #expect(opened.first?.level == .info)
        #expect(opened.first?.metadata["scrollback.store"]?.description == "/db")
        #expect(opened.first?.metadata["created"]?.description == "true")
        #expect(opened.first?.metadata["replayed_transactions"]?.description == "0")
        #expect(opened.first?.metadata["duration_ms"] != nil)
        #expect(Self.entries(handler, "opening store").first?.level == .debug)

        for n in 0..<400 { try store.append(Self.message(n, body: String(repeating: "x", count: 400))) }
        for n in stride(from: 0, to: 400, by: 2) { try store.delete(id: "m\(n)") }
        handler.clear()
        try store.checkpoint()
        let checkpoint = Self.entries(handler, "checkpoint")
        #expect(checkpoint.count == 1)
        #expect(checkpoint.first?.level == .debug)
        #expect(Int(checkpoint.first?.metadata["pages"]?.description ?? "") ?? 0 > 0)

        let report = try store.compact()
        #expect(report.segmentsRewritten > 0)
        let compacted = Self.entries(handler, "compacted the log")
        #expect(compacted.count == 1)
        #expect(compacted.first?.level == .info)
        #expect(compacted.first?.metadata["automatic"]?.description == "false")
        #expect(compacted.first?.metadata["segments_rewritten"]?.description == "\(report.segmentsRewritten)")
        #expect(compacted.first?.metadata["log_bytes_after"]?.description == "\(report.logBytesAfter)")
        // A compaction that rewrites nothing is a debug line.
        StoreLog(logger, path: "/db").compacted(CompactionEvent(
            automatic: true, segmentsRewritten: 0, recordsMoved: 0, logBytesBefore: 1, logBytesAfter: 1, duration: .zero))
        #expect(Self.entries(handler, "compaction found nothing to rewrite").first?.level == .debug)

        try store.close()
        #expect(Self.entries(handler, "closed store").first?.level == .info)
        try? store.close()   // a second close is not an error worth a line
        #expect(handler.entries.allSatisfy { $0.level != .error })

        // Reopened: not created; nothing replayed after a clean close.
        handler.clear()
        let reopened = try MessageStore(path: "/db", options: Self.options(logger: logger), fileSystem: fs)
        #expect(Self.entries(handler, "opened store").first?.metadata["created"]?.description == "false")
        #expect(Self.entries(handler, "replayed the log after an unclean close").isEmpty)
        try reopened.close()
    }

    /// A store that was not closed replays its log at the next open, and says so.
    @Test func replayIsLogged() throws {
        let (logger, handler) = Self.capturingLogger(level: .info)
        let fs = CrashSimulatingFileSystem(seed: 7)
        var options = Self.options(logger: logger)
        options.checkpointLogBytes = 1 << 30
        options.checkpointDirtyBytes = 1 << 30
        let store = try MessageStore(path: "/db", options: options, fileSystem: fs)
        for n in 0..<25 { try store.append(Self.message(n)) }
        fs.crash(mode: .dropAllUnsynced)   // power loss: the store is never closed
        _ = store
        handler.clear()
        let reopened = try MessageStore(path: "/db", options: options, fileSystem: fs)
        let replay = Self.entries(handler, "replayed the log after an unclean close")
        #expect(replay.count == 1)
        #expect(replay.first?.level == .info)
        #expect(replay.first?.metadata["replayed_transactions"]?.description == "25")
        #expect(Self.entries(handler, "opened store").first?.metadata["replayed_transactions"]?.description == "25")
        #expect(handler.entries.allSatisfy { $0.level >= .info })   // the debug lines are filtered by the logger's level
        try reopened.close()
    }

    /// A failed log sync makes the store refuse writes: one error line with the cause, and the
    /// `refuses_writes` gauge goes to 1.
    @Test func refusingWritesIsLoggedOnce() throws {
        let (logger, handler) = Self.capturingLogger()
        let metrics = TestMetrics()
        let fs = CrashSimulatingFileSystem(seed: 3)
        let store = try MessageStore(
            path: "/db", options: Self.options(logger: logger, metrics: StoreMetricsOptions(factory: metrics)), fileSystem: fs)
        try store.append(Self.message(1))
        fs.injectFault(.syncFails(pathSuffix: ".seg"))
        #expect(throws: ScrollbackError.self) { try store.append(Self.message(2)) }
        #expect(throws: ScrollbackError.self) { try store.append(Self.message(3)) }
        let refusals = handler.entries.filter { $0.level == .error }
        #expect(refusals.count == 1)
        #expect(refusals.first?.message.description == "store refuses writes until it is reopened")
        #expect(refusals.first?.metadata["cause"] != nil)
        #expect(try metrics.expectGauge("scrollback_refuses_writes").lastValue == 1)
        try? store.close()
    }

    @Test func openFailureIsLogged() throws {
        let (logger, handler) = Self.capturingLogger()
        let fs = MemoryFileSystem()
        try fs.createDirectory("/other")
        let file = try fs.open("/other/notes.txt", mode: .createNew)
        try file.close()
        #expect(throws: ScrollbackError.notAStore(path: "/other")) {
            _ = try MessageStore(path: "/other", options: Self.options(logger: logger), fileSystem: fs)
        }
        #expect(Self.entries(handler, "cannot open store").first?.level == .error)
    }

    /// Counters and timers follow the engine's commits, syncs, checkpoints and compactions.
    @Test func countersAndTimers() throws {
        let metrics = TestMetrics()
        let options = Self.options(metrics: StoreMetricsOptions(labelPrefix: "chat", dimensions: [("store", "a")], factory: metrics))
        let store = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
        let engine = store.database.engine
        for n in 0..<30 { try store.append(Self.message(n, body: String(repeating: "y", count: 3000))) }
        try store.write { batch in
            batch.append(Self.message(100))
            batch.markRead(user: "u", conversation: "c0", through: "m100")
        }
        try store.append(Self.message(100))   // a duplicate: no commit
        let statistics = engine.statistics
        let dimensions = [("store", "a")]
        #expect(try metrics.expectCounter("chat_commits_total", dimensions).totalValue == Int64(statistics.commits))
        #expect(statistics.commits >= 31)
        #expect(try metrics.expectCounter("chat_commit_groups_total", dimensions).totalValue <= Int64(statistics.commitGroups))
        // One group-size sample per group commit; together they are the commits.
        let sizes = try metrics.expectRecorder("chat_commit_group_size", dimensions).values
        #expect(sizes.count == Int(try metrics.expectCounter("chat_commit_groups_total", dimensions).totalValue))
        #expect(sizes.allSatisfy { $0 >= 1 })
        #expect(Int64(sizes.reduce(0, +)) == Int64(statistics.commits))
        let syncs = try metrics.expectTimer("chat_sync_duration", dimensions)
        #expect(syncs.values.count == Int(try metrics.expectCounter("chat_commit_groups_total", dimensions).totalValue))
        #expect(syncs.values.allSatisfy { $0 >= 0 })

        try store.checkpoint()
        #expect(try metrics.expectCounter("chat_checkpoints_total", dimensions).totalValue == Int64(engine.statistics.checkpoints))
        #expect(try metrics.expectTimer("chat_checkpoint_duration", dimensions).values.count >= 1)
        try store.delete(id: "m3")
        _ = try store.compact()
        #expect(try metrics.expectCounter("chat_compactions_total", dimensions + [("automatic", "false")]).totalValue == 1)
        #expect(try metrics.expectTimer("chat_compaction_duration", dimensions).values.count == 1)
        try store.close()
    }

    /// In `normal` durability commits are counted but nothing is synced per group.
    @Test func normalDurabilityRecordsNoSyncs() throws {
        let metrics = TestMetrics()
        var options = Self.options(metrics: StoreMetricsOptions(factory: metrics))
        options.durability = .normal
        let store = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
        for n in 0..<5 { try store.append(Self.message(n)) }
        #expect(try metrics.expectCounter("scrollback_commits_total").totalValue >= 5)
        #expect(metrics.timers(label: "scrollback_sync_duration").allSatisfy { $0.values.isEmpty })
        try store.close()
    }

    /// The gauges: reported at open, by `reportGauges()`, and by the store's task every
    /// `gaugeInterval`.
    @Test func gauges() async throws {
        let metrics = TestMetrics()
        let options = Self.options(metrics: StoreMetricsOptions(factory: metrics, gaugeInterval: .milliseconds(20)))
        let store = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
        #expect(try metrics.expectGauge("scrollback_messages").lastValue == 0)
        try await store.write { batch in
            for n in 0..<50 { batch.append(Self.message(n)) }
        }
        for _ in 0..<20 { _ = try await store.latest(in: "c1", limit: 5) }
        // The task reports the new count within a few intervals.
        try await AsyncAPITests.waitUntil { (try? metrics.expectGauge("scrollback_messages").lastValue) == 50 }

        store.reportGauges()
        let statistics = try await store.statistics()
        #expect(try metrics.expectGauge("scrollback_conversations").lastValue == 4)
        #expect(try metrics.expectGauge("scrollback_bytes", [("structure", "page_file")]).lastValue
            == Double(statistics.pageFileBytes))
        #expect(try metrics.expectGauge("scrollback_bytes", [("structure", "raw_log")]).lastValue
            == Double(statistics.rawLogBytes))
        #expect(try metrics.expectGauge("scrollback_bytes", [("structure", "sealed_log")]).lastValue
            == Double(statistics.sealedLogBytes))
        #expect(try metrics.expectGauge("scrollback_cache_bytes", [("cache", "page")]).lastValue ?? 0 > 0)
        #expect(try metrics.expectGauge("scrollback_refuses_writes").lastValue == 0)
        #expect(try metrics.expectGauge("scrollback_garbage_ratio").lastValue == statistics.garbageRatio)
        // The reads above hit the page cache (the gauge task may report again meanwhile, so the
        // exact sums are checked by hitRatioIsPerInterval).
        #expect(try metrics.expectCounter("scrollback_cache_hits_total", [("cache", "page")]).totalValue > 0)
        #expect(try metrics.expectCounter("scrollback_cache_misses_total", [("cache", "page")]).totalValue >= 0)
        let ratio = try metrics.expectGauge("scrollback_cache_hit_ratio", [("cache", "page")]).lastValue
        #expect(ratio.map { (0...1).contains($0) } == true)

        try await store.close()
        // The task has ended: no report after close.
        let reports = try metrics.expectGauge("scrollback_messages").values.count
        try await Task.sleep(for: .milliseconds(100))
        #expect(try metrics.expectGauge("scrollback_messages").values.count == reports)
    }

    /// `cacheBytes` is split between the tree pages (three quarters) and the decoded blocks of
    /// the sorted runs (a quarter), and `statistics` reports the cache that reads of sealed
    /// history go through: it fills (within its budget) as sealed messages are read, and a
    /// walk page by page finds most blocks there again.
    @Test func theCacheBudgetIsSplitBetweenTreePagesAndRunBlocks() throws {
        var options = ReadOnlyStoreTests.options()   // 64 KiB segments: filled ones are sealed into runs
        options.cacheBytes = 4 << 20
        let store = try MessageStore(path: "/db", options: options, fileSystem: MemoryFileSystem())
        for i in 0..<1800 { try store.append(ReadOnlyStoreTests.message(i)) }
        let written = try store.statistics
        #expect(written.sealedLogBytes > 0, "no segment was sealed")
        #expect(written.pageCache.capacityBytes == 3 << 20)
        #expect(written.blockCache.capacityBytes == 1 << 20)
        let contents = try ReadOnlyStoreTests.contents(store)   // keyset pages of 7, oldest first
        #expect(contents.values.map(\.count).reduce(0, +) == 1800)
        let read = try store.statistics
        #expect(read.blockCache.misses > written.blockCache.misses, "reading sealed history decoded no run block")
        #expect(read.blockCache.hits > read.blockCache.misses, "pages of one block did not find it cached")
        #expect(read.blockCache.bytes > 0 && read.blockCache.bytes <= read.blockCache.capacityBytes)
        try store.close()
    }

    /// The hit ratio covers the lookups since the previous report.
    @Test func hitRatioIsPerInterval() throws {
        let factory = TestMetrics()
        let perInterval = StoreMetrics(StoreMetricsOptions(factory: factory))
        func statistics(hits: UInt64, misses: UInt64) -> StoreStatistics {
            let cache = StoreStatistics.Cache(hits: hits, misses: misses, evictions: 0, bytes: 0, capacityBytes: 0)
            return StoreStatistics(messages: 0, conversations: 0, pageFileBytes: 0, rawLogBytes: 0, sealedLogBytes: 0,
                                   garbageRatio: 0, pageCache: cache, blockCache: cache, commits: 0, checkpoints: 0,
                                   compactions: 0, lastCompactionBytesBefore: 0, lastCompactionBytesAfter: 0)
        }
        perInterval.report(statistics(hits: 90, misses: 10), refusesWrites: false)
        #expect(try factory.expectGauge("scrollback_cache_hit_ratio", [("cache", "page")]).lastValue == 0.9)
        perInterval.report(statistics(hits: 100, misses: 50), refusesWrites: false)   // +10 hits, +40 misses
        #expect(try factory.expectGauge("scrollback_cache_hit_ratio", [("cache", "page")]).lastValue == 0.2)
        perInterval.report(statistics(hits: 100, misses: 50), refusesWrites: false)   // no lookups: unchanged
        #expect(try factory.expectGauge("scrollback_cache_hit_ratio", [("cache", "page")]).values.count == 2)
        // The lookups of each interval are added to the counters.
        for cache in ["page", "block"] {
            #expect(try factory.expectCounter("scrollback_cache_hits_total", [("cache", cache)]).totalValue == 100)
            #expect(try factory.expectCounter("scrollback_cache_misses_total", [("cache", cache)]).totalValue == 50)
        }
        perInterval.report(statistics(hits: 5, misses: 5), refusesWrites: false)   // counters went back: nothing
        #expect(try factory.expectCounter("scrollback_cache_hits_total", [("cache", "page")]).totalValue == 100)
        #expect(try factory.expectGauge("scrollback_cache_hit_ratio", [("cache", "page")]).values.count == 2)
    }

    /// Options compare equal whatever their logger and metrics.
    @Test func sinksAreNotPartOfTheOptionsEquality() {
        let (logger, _) = Self.capturingLogger()
        var a = StoreOptions()
        a.logger = logger
        a.metrics = StoreMetricsOptions()
        #expect(a == StoreOptions())
        #expect(a.hashValue == StoreOptions().hashValue)
        #expect(a.logger != nil && a.metrics != nil)
        a.cacheBytes = 2 << 20
        #expect(a != StoreOptions())
    }
}
