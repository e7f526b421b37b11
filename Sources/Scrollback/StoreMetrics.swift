import CoreMetrics
import ScrollbackIO

/// Where and how a store reports swift-metrics values (`StoreOptions.metrics`).
///
/// The metrics, each label prefixed with `labelPrefix` and `_`, each with `dimensions`:
///
/// | label | type | what |
/// |---|---|---|
/// | `commits_total` | counter | committed write transactions (a batch is one) |
/// | `commit_groups_total` | counter | group commits (one log sync each in `full` durability) |
/// | `commit_group_size` | recorder (histogram) | transactions per group commit |
/// | `sync_duration` | timer | the `fdatasync` of each group commit |
/// | `checkpoints_total`, `checkpoint_duration` | counter, timer | checkpoints |
/// | `compactions_total`, `compaction_duration` | counter, timer | compactions (dimension `automatic`: `true`/`false`) |
/// | `refuses_writes` | gauge | 1 once the store refuses writes after a failure, else 0 |
/// | `bytes` | gauge | dimension `structure`: `page_file`, `raw_log`, `sealed_log` |
/// | `cache_hit_ratio` | gauge | dimension `cache`: `page`, `block`; hits over lookups since the previous report |
/// | `cache_hits_total`, `cache_misses_total` | counter | dimension `cache`: `page`, `block`; lookups answered from the cache or the disk |
/// | `cache_bytes` | gauge | dimension `cache`: `page`, `block`; bytes cached |
/// | `messages`, `conversations` | gauge | live messages, conversations with one |
/// | `garbage_ratio` | gauge | dead bytes over all record bytes of the sealed log |
///
/// Counters and timers are reported as the events happen (once per group commit, never per
/// read). The cache counters are the exception: a cache lookup only bumps the cache's own
/// integer counter, and the lookups since the previous report are added to
/// `cache_hits_total` and `cache_misses_total` with the gauges. Gauges are reported when the store opens and then every `gaugeInterval`, by a task
/// that reads the store's statistics on the store's own threads; it ends when the store
/// closes.
public struct StoreMetricsOptions: Sendable {
    /// Prefix of every label. Default `scrollback`.
    public var labelPrefix: String
    /// Dimensions of every metric, e.g. `[("store", "chat")]` to tell several stores apart.
    public var dimensions: [(String, String)]
    /// The backend; nil (the default) reports to the process's `MetricsSystem` (the factory
    /// the application bootstrapped; the library never bootstraps one).
    public var factory: (any MetricsFactory)?
    /// How often the gauges are refreshed. Default 10 seconds; at least 10 ms.
    public var gaugeInterval: Duration

    public init(labelPrefix: String = "scrollback", dimensions: [(String, String)] = [],
                factory: (any MetricsFactory)? = nil, gaugeInterval: Duration = .seconds(10)) {
        self.labelPrefix = labelPrefix
        self.dimensions = dimensions
        self.factory = factory
        self.gaugeInterval = gaugeInterval
    }
}

extension StoreOptions {
    /// Where the store reports metrics (swift-metrics); nil (the default) reports none.
    /// See `StoreMetricsOptions` for the metrics.
    public var metrics: StoreMetricsOptions? {
        get { observability.metrics }
        set { observability.metrics = newValue }
    }
}

/// The instruments of one store (`StoreMetricsOptions`).
///
/// Thread-safety: any thread. The previous cache counters (for the hit ratio over an interval)
/// are guarded by a lock; the instruments are the backend's, which are thread-safe.
final class StoreMetrics: Sendable {
    let gaugeInterval: Duration
    let commits: Counter
    let commitGroups: Counter
    let commitGroupSize: Recorder
    let syncDuration: CoreMetrics.Timer
    let checkpoints: Counter
    let checkpointDuration: CoreMetrics.Timer
    let compactions: (automatic: Counter, explicit: Counter)
    let compactionDuration: CoreMetrics.Timer
    let refusesWrites: Gauge
    let bytes: (pageFile: Gauge, rawLog: Gauge, sealedLog: Gauge)
    let cacheHitRatio: (page: Gauge, block: Gauge)
    let cacheHits: (page: Counter, block: Counter)
    let cacheMisses: (page: Counter, block: Counter)
    let cacheBytes: (page: Gauge, block: Gauge)
    let messages: Gauge
    let conversations: Gauge
    let garbageRatio: Gauge
    private let previous = Lock<(page: StoreStatistics.Cache, block: StoreStatistics.Cache)?>(nil)

    init(_ options: StoreMetricsOptions) {
        let factory = options.factory ?? MetricsSystem.factory
        let prefix = options.labelPrefix.isEmpty ? "" : options.labelPrefix + "_"
        let base = options.dimensions
        func counter(_ name: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: prefix + name, dimensions: base + extra, factory: factory)
        }
        func timer(_ name: String) -> CoreMetrics.Timer {
            CoreMetrics.Timer(label: prefix + name, dimensions: base, factory: factory)
        }
        func gauge(_ name: String, _ extra: [(String, String)] = []) -> Gauge {
            Gauge(label: prefix + name, dimensions: base + extra, factory: factory)
        }
        gaugeInterval = max(options.gaugeInterval, .milliseconds(10))
        commits = counter("commits_total")
        commitGroups = counter("commit_groups_total")
        commitGroupSize = Recorder(label: prefix + "commit_group_size", dimensions: base, aggregate: true, factory: factory)
        syncDuration = timer("sync_duration")
        checkpoints = counter("checkpoints_total")
        checkpointDuration = timer("checkpoint_duration")
        compactions = (counter("compactions_total", [("automatic", "true")]), counter("compactions_total", [("automatic", "false")]))
        compactionDuration = timer("compaction_duration")
        refusesWrites = gauge("refuses_writes")
        bytes = (gauge("bytes", [("structure", "page_file")]), gauge("bytes", [("structure", "raw_log")]),
                 gauge("bytes", [("structure", "sealed_log")]))
        cacheHitRatio = (gauge("cache_hit_ratio", [("cache", "page")]), gauge("cache_hit_ratio", [("cache", "block")]))
        cacheHits = (counter("cache_hits_total", [("cache", "page")]), counter("cache_hits_total", [("cache", "block")]))
        cacheMisses = (counter("cache_misses_total", [("cache", "page")]), counter("cache_misses_total", [("cache", "block")]))
        cacheBytes = (gauge("cache_bytes", [("cache", "page")]), gauge("cache_bytes", [("cache", "block")]))
        messages = gauge("messages")
        conversations = gauge("conversations")
        garbageRatio = gauge("garbage_ratio")
    }

    /// Reports the gauges from a statistics reading. The hit ratios cover the lookups since the
    /// previous reading (since open for the first); a cache with no lookup meanwhile keeps its
    /// last value.
    func report(_ statistics: StoreStatistics, refusesWrites refusing: Bool) {
        bytes.pageFile.record(statistics.pageFileBytes)
        bytes.rawLog.record(statistics.rawLogBytes)
        bytes.sealedLog.record(statistics.sealedLogBytes)
        cacheBytes.page.record(statistics.pageCache.bytes)
        cacheBytes.block.record(statistics.blockCache.bytes)
        messages.record(statistics.messages)
        conversations.record(statistics.conversations)
        garbageRatio.record(statistics.garbageRatio)
        refusesWrites.record(refusing ? 1 : 0)
        let before = previous.withLock { previous in
            defer { previous = (statistics.pageCache, statistics.blockCache) }
            return previous
        }
        Self.record(statistics.pageCache, since: before?.page, ratio: cacheHitRatio.page, hits: cacheHits.page,
                    misses: cacheMisses.page)
        Self.record(statistics.blockCache, since: before?.block, ratio: cacheHitRatio.block, hits: cacheHits.block,
                    misses: cacheMisses.block)
    }

    /// Adds a cache's lookups since the previous reading to its counters and records their hit
    /// ratio (nothing when there was no lookup, or the counters went back).
    private static func record(_ now: StoreStatistics.Cache, since before: StoreStatistics.Cache?, ratio: Gauge,
                               hits hitCounter: Counter, misses missCounter: Counter) {
        guard now.hits >= (before?.hits ?? 0), now.misses >= (before?.misses ?? 0) else { return }
        let hits = now.hits - (before?.hits ?? 0)
        let misses = now.misses - (before?.misses ?? 0)
        let lookups = hits &+ misses
        guard lookups > 0 else { return }
        if hits > 0 { hitCounter.increment(by: Int64(clamping: hits)) }
        if misses > 0 { missCounter.increment(by: Int64(clamping: misses)) }
        ratio.record(Double(hits) / Double(lookups))
    }

    func groupCommitted(transactions: Int, syncDuration sync: Duration?) {
        commits.increment(by: transactions)
        commitGroups.increment()
        commitGroupSize.record(transactions)
        if let sync { syncDuration.recordNanoseconds(Self.nanoseconds(sync)) }
    }

    func checkpointed(duration: Duration) {
        checkpoints.increment()
        checkpointDuration.recordNanoseconds(Self.nanoseconds(duration))
    }

    func compacted(automatic: Bool, duration: Duration) {
        (automatic ? compactions.automatic : compactions.explicit).increment()
        compactionDuration.recordNanoseconds(Self.nanoseconds(duration))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ attoseconds / 1_000_000_000
    }
}
