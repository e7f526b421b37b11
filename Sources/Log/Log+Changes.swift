import ScrollbackFormat
import ScrollbackIO

/// The bytes of one log segment a tailing reader keeps between calls (`Log.readTransactions`):
/// a segment read from its file (not held in memory by the log), so the next call reads only
/// what was appended since. Holds at most one segment (≤ the segment size); empty while the
/// reader follows a segment the log holds in memory. Not thread-safe: one per reader.
package struct LogTailCache {
    var id: UInt32 = .max
    var bytes: [UInt8] = []

    package init() {}

    mutating func release() {
        if id != .max || !bytes.isEmpty {
            id = .max
            bytes = []
        }
    }
}

/// A log position that no segment of the log holds any more (the segment was removed), while
/// later segments exist: the transactions after it are gone.
package struct LogPositionRemoved: Error, Equatable, Sendable {
    package var position: LogPosition
    /// The start of the oldest segment still present, if any.
    package var oldest: LogPosition?
}

extension Log {
    /// Calls `body` for every complete transaction that starts at or after `from` and ends at or
    /// before `limit`, in log order, until `body` returns false; returns where the next read
    /// continues: the end of the last transaction delivered, moved to the start of the next
    /// segment when that transaction ended a segment that is not the active one (so that
    /// continuing does not need the finished segment). `from` must be a transaction boundary
    /// (a value this method returned, a transaction's `end`, or a segment's first position).
    ///
    /// For readers that follow the committed log (the change stream): `limit` is a position
    /// every transaction before which is complete (the committed state's log position); the
    /// active segment and the one before it are read in place from memory, other segments
    /// from their files through `cache` (one segment at a time; a segment that grows — the
    /// active segment of a read-only view — is read incrementally).
    ///
    /// Throws `LogPositionRemoved` when `from`'s segment is gone while later ones exist,
    /// `.corrupted` for damage (a frame failing its checks before `limit`), `.closed`.
    /// Thread-safety: any thread, concurrently with appends, sealing and removal.
    package func readTransactions(from: LogPosition, through limit: LogPosition, cache: inout LogTailCache,
                                  _ body: (LoggedTransaction) throws -> Bool) throws -> LogPosition {
        var position = from
        while position < limit {
            if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
            let id = LogPositions.segment(position)
            let offset = Int(LogPositions.offset(position))
            let (found, activeID, oldest) = table.withLock { ($0.segments[id], $0.activeID, $0.segments.keys.min()) }
            guard let entry = found else {
                let later = oldest.map { $0 > id } ?? false
                throw LogPositionRemoved(position: position,
                                         oldest: later ? oldest.map { LogPositions.make(segment: $0, offset: UInt32(L.headerSize)) } : nil)
            }
            var stopped = false
            var end = position
            let scan: SegmentScan = try withSegmentBytes(entry, cache: &cache) { bytes, salt, path in
                guard offset >= L.headerSize, offset <= bytes.count else {
                    throw StorageError.invalidArgument("log position \(LogPositions.describe(position)) is outside segment \(id) (\(bytes.count) bytes)")
                }
                do {
                    return try SegmentScanner.scan(bytes, segment: id, salt: salt, applyFrom: offset, startOffset: offset,
                                                   witnesses: true) { transaction in
                        if transaction.end > limit { throw StopTransactions() }
                        end = transaction.end
                        if transaction.recordCount == 0 { return }   // a sync witness: nothing to deliver
                        if try !body(transaction) { throw StopTransactions() }
                    }
                } catch is StopTransactions {
                    stopped = true
                    return SegmentScan(validEnd: Int(LogPositions.offset(end)), badOffset: nil, badReason: "", endsInsideTransaction: false)
                }
            }
            position = end
            if stopped || id == activeID { break }
            if !scan.isClean {
                if position >= limit { break }
                throw StorageError.corrupted(
                    file: path(id, .raw), offset: UInt64(scan.badOffset ?? scan.validEnd),
                    reason: scan.badOffset != nil ? scan.badReason : "segment does not end with a commit record")
            }
            // A full segment read to its end: the next transaction is the next segment's first.
            cache.release()
            position = LogPositions.make(segment: id + 1, offset: UInt32(L.headerSize))
        }
        return position
    }

    private struct StopTransactions: Error {}

    /// Calls `body` with the bytes of segment `entry` as far as they are written (header
    /// included), its salt and its path.
    private func withSegmentBytes<R>(_ entry: SegmentEntry, cache: inout LogTailCache,
                                     _ body: (UnsafeRawBufferPointer, UInt32, String) throws -> R) throws -> R {
        switch entry {
        case .raw(let raw):
            if let image = raw.image {
                cache.release()
                return try withExtendedLifetime(image) { try body(image.publishedBytes, raw.salt, raw.file.path) }
            }
            let length = raw.fixedLength
            if cache.id == raw.id, cache.bytes.count <= length {
                if cache.bytes.count < length {
                    let more = try raw.file.handle.readBytes(count: length - cache.bytes.count, at: UInt64(cache.bytes.count))
                    guard more.count == length - cache.bytes.count else {
                        throw StorageError.corrupted(file: raw.file.path, offset: UInt64(cache.bytes.count + more.count),
                                                     reason: "segment shrank while read")
                    }
                    cache.bytes.append(contentsOf: more)
                }
            } else {
                cache.release()
                let bytes = try raw.file.handle.readBytes(count: length, at: 0)
                guard bytes.count == length else {
                    throw StorageError.corrupted(file: raw.file.path, offset: UInt64(bytes.count), reason: "segment shrank while read")
                }
                cache.id = raw.id
                cache.bytes = bytes
            }
            return try withExtendedLifetime(raw) { try cache.bytes.withUnsafeBytes { try body($0, raw.salt, raw.file.path) } }
        case .sealed(let sealed):
            let index = try sealed.index()
            if cache.id != sealed.id {
                cache.release()
                cache.bytes = try sealed.rawImage()
                cache.id = sealed.id
            }
            return try cache.bytes.withUnsafeBytes { try body($0, index.salt, sealed.path) }
        }
    }
}
