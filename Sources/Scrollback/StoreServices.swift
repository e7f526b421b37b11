import ScrollbackIO
import ScrollbackStorage

/// What a `MessageStore` runs beside its database: the threads of its `async` methods, its log
/// lines and its metrics (`StoreOptions.asyncThreads`, `.logger`, `.metrics`).
///
/// Thread-safety: any thread.
final class StoreServices: Sendable {
    let pool: BlockingPool
    let log: StoreLog?
    let metrics: StoreMetrics?
    /// The engine's event sink; nil when there is neither a logger nor metrics.
    let events: StoreEvents?
    /// Refreshes the gauges every `metrics.gaugeInterval` while the store is open.
    private let gaugeTask = Lock<Task<Void, Never>?>(nil)

    init(path: String, options: StoreOptions) {
        pool = BlockingPool(maxThreads: options.asyncThreads, name: "scrollback-io")
        log = options.logger.map { StoreLog($0, path: path) }
        metrics = options.metrics.map(StoreMetrics.init)
        events = log == nil && metrics == nil ? nil : StoreEvents(log: log, metrics: metrics)
    }

    /// What `opened` reports: when the open started and whether it creates the store.
    struct Opening {
        var start: ContinuousClock.Instant
        var creates: Bool
    }

    /// Called before the database opens (logs the options; `creates` is asked only when
    /// there is a logger).
    func opening(_ options: StoreOptions, creates: () -> Bool) -> Opening {
        log?.opening(options)
        return Opening(start: .now, creates: log != nil && creates())
    }

    /// Called once the store is open: logs it (with any replay of the log) and starts the
    /// gauge reports.
    func opened(_ store: MessageStore, _ opening: Opening) {
        if let log {
            let duration = ContinuousClock.now - opening.start
            let engine = store.database.engine
            log.opened(created: opening.creates, replayed: engine.statistics.replayedTransactions,
                       logPosition: engine.committedState.logPosition, duration: duration, statistics: try? store.statistics)
        }
        startGaugeReports(store)
    }

    func openFailed(_ error: any Error) {
        log?.openFailed(error)
    }

    /// Starts the gauge reports of an open store (a no-op without metrics).
    private func startGaugeReports(_ store: MessageStore) {
        guard let metrics else { return }
        store.reportGauges()
        let interval = metrics.gaugeInterval
        let task = Task.detached { [weak store] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                guard let store else { return }
                try? await store.reportGaugesAsync()
            }
        }
        gaugeTask.withLock { $0 = task }
    }

    /// Stops the gauge reports and the threads (queued async calls fail with `.closed`;
    /// running ones finish).
    func shutDown() {
        gaugeTask.withLock { task in
            task?.cancel()
            task = nil
        }
        pool.shutDown()
    }
}

/// The engine's events as log lines and metrics (`StorageObserver`).
final class StoreEvents: StorageObserver {
    let log: StoreLog?
    let metrics: StoreMetrics?

    init(log: StoreLog?, metrics: StoreMetrics?) {
        self.log = log
        self.metrics = metrics
    }

    func groupCommitted(transactions: Int, syncDuration: Duration?) {
        metrics?.groupCommitted(transactions: transactions, syncDuration: syncDuration)
    }

    func checkpointed(pages: Int, duration: Duration) {
        log?.checkpointed(pages: pages, duration: duration)
        metrics?.checkpointed(duration: duration)
    }

    func refusesWrites(cause: String) {
        log?.refusesWrites(cause: cause)
        metrics?.refusesWrites.record(1)
    }

    func compacted(_ report: CompactionEvent) {
        log?.compacted(report)
        metrics?.compacted(automatic: report.automatic, duration: report.duration)
    }
}

extension MessageStore {
    /// Reports the gauges now (at open, then by the gauge task; tests call it directly).
    package func reportGauges() {
        guard let metrics = services.metrics, let statistics = try? statistics else { return }
        metrics.report(statistics, refusesWrites: database.engine.isPoisoned)
    }

    /// `reportGauges()` on the store's threads (the statistics read the trees).
    func reportGaugesAsync() async throws {
        try await services.pool.run { [self] in reportGauges() }
    }
}
