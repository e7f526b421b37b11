import Logging
import ScrollbackStorage

/// The sinks of `StoreOptions` (`logger`, `metrics`): carried by the options but not part of
/// their equality or hash (a sink is not a setting of the store).
struct StoreObservability: Sendable, Hashable {
    var logger: Logger?
    var metrics: StoreMetricsOptions?

    static func == (lhs: Self, rhs: Self) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

extension StoreOptions {
    /// Where the store logs (swift-log); nil (the default) logs nothing and costs nothing.
    ///
    /// What is logged, each line with the metadata `scrollback.store` (the path) and the
    /// event's figures:
    /// - `.info`: the store opened (`created`, `replayed_transactions`, `duration_ms`, sizes);
    ///   the log replayed after a crash or an unclean close (`replayed_transactions`,
    ///   `log_position`); a compaction that rewrote segments (`automatic`,
    ///   `segments_rewritten`, `records_moved`, `log_bytes_before`, `log_bytes_after`,
    ///   `duration_ms`); the store closed.
    /// - `.debug`: each checkpoint (`pages`, `duration_ms`); a compaction that found nothing
    ///   to do; the options a store opens with.
    /// - `.error`: the store starts refusing writes after a failed write or sync (`cause`),
    ///   and a failed open or close (`error`).
    ///
    /// Nothing is logged per read or per write. The logger's own level filters as usual.
    public var logger: Logger? {
        get { observability.logger }
        set { observability.logger = newValue }
    }
}

/// Log lines of one store (the `StoreOptions.logger` with the store's path as metadata).
struct StoreLog: Sendable {
    var logger: Logger

    init(_ logger: Logger, path: String) {
        self.logger = logger
        self.logger[metadataKey: "scrollback.store"] = .string(path)
    }

    static func milliseconds(_ duration: Duration) -> Logger.MetadataValue {
        let (seconds, attoseconds) = duration.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return .stringConvertible((ms * 1000).rounded() / 1000)
    }

    func opening(_ options: StoreOptions) {
        logger.debug("opening store", metadata: [
            "cache_bytes": .stringConvertible(options.cacheBytes),
            "durability": .string(options.durability == .full ? "full" : "normal"),
            "page_size": .stringConvertible(options.pageSize),
            "segment_bytes": .stringConvertible(options.segmentBytes),
        ])
    }

    func opened(created: Bool, replayed: UInt64, logPosition: LogPosition, duration: Duration,
                statistics: StoreStatistics?) {
        if replayed > 0 {
            logger.info("replayed the log after an unclean close", metadata: [
                "replayed_transactions": .stringConvertible(replayed),
                "log_position": .string(Self.position(logPosition)),
            ])
        }
        var metadata: Logger.Metadata = [
            "created": .stringConvertible(created),
            "replayed_transactions": .stringConvertible(replayed),
            "duration_ms": Self.milliseconds(duration),
        ]
        if let statistics {
            metadata["messages"] = .stringConvertible(statistics.messages)
            metadata["page_file_bytes"] = .stringConvertible(statistics.pageFileBytes)
            metadata["raw_log_bytes"] = .stringConvertible(statistics.rawLogBytes)
            metadata["sealed_log_bytes"] = .stringConvertible(statistics.sealedLogBytes)
        }
        logger.info("opened store", metadata: metadata)
    }

    func openFailed(_ error: any Error) {
        logger.error("cannot open store", metadata: ["error": .string("\(error)")])
    }

    func checkpointed(pages: Int, duration: Duration) {
        logger.debug("checkpoint", metadata: ["pages": .stringConvertible(pages), "duration_ms": Self.milliseconds(duration)])
    }

    func compacted(_ event: CompactionEvent) {
        let metadata: Logger.Metadata = [
            "automatic": .stringConvertible(event.automatic),
            "segments_rewritten": .stringConvertible(event.segmentsRewritten),
            "records_moved": .stringConvertible(event.recordsMoved),
            "log_bytes_before": .stringConvertible(event.logBytesBefore),
            "log_bytes_after": .stringConvertible(event.logBytesAfter),
            "duration_ms": Self.milliseconds(event.duration),
        ]
        if event.segmentsRewritten > 0 {
            logger.info("compacted the log", metadata: metadata)
        } else {
            logger.debug("compaction found nothing to rewrite", metadata: metadata)
        }
    }

    func refusesWrites(cause: String) {
        logger.error("store refuses writes until it is reopened", metadata: ["cause": .string(cause)])
    }

    func closed(_ error: (any Error)?) {
        if let error {
            if case ScrollbackError.closed? = error as? ScrollbackError { return }   // closed before
            logger.error("closing the store failed", metadata: ["error": .string("\(error)")])
        } else {
            logger.info("closed store")
        }
    }

    /// A log position as `segment:offset`.
    static func position(_ position: LogPosition) -> String {
        "\(LogPositions.segment(position)):\(LogPositions.offset(position))"
    }
}
