import ScrollbackFormat

extension LogBatch {
    /// Presents this batch, just appended by `Log.append` with `result`, exactly as recovery
    /// will present it after a crash: the same records, types, payloads and positions. The
    /// storage engine applies live commits through this view, so a live commit and its replay
    /// run the same code on the same input.
    ///
    /// The view is valid only during `body`. No allocation.
    package func withLoggedTransaction<R>(_ result: AppendResult, _ body: (LoggedTransaction) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            let logged = LoggedTransaction(
                segment: LogPositions.segment(result.start), start: result.start, end: result.end,
                recordCount: recordCount, bytes: raw, firstOffset: 0, commitOffset: raw.count,
                positionBias: Int(LogPositions.offset(result.start)))
            return try body(logged)
        }
    }
}
