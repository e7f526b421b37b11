import ScrollbackFormat
import ScrollbackIO

/// Reads a log without writing anything: for a reader in another process than the writer
/// (read-only opens, `watch`), and for reading a store of an older format to upgrade it.
///
/// It delivers complete transactions (their commit frame verifies) in log order. Unlike
/// recovery it never truncates, rewrites or removes a file, and it treats the end of the last
/// segment — where a live writer may be in the middle of a write — as the end of the log:
/// the scan stops quietly at the first incomplete or bad frame there. In any earlier segment
/// a bad frame or a missing final commit is corruption (the writer synced that segment
/// completely before creating the next one; spec/log-segment.md, "Roll").
///
/// Tailing: successive `read(from:through:_:)` calls continue where the last one stopped; the
/// newest raw segment's bytes are kept between calls, so a call reads only what was appended
/// since (one `pread`). Not thread-safe: one reader per thread.
package final class LogReader {
    typealias L = LogSegmentLayout

    package let directory: String
    let fileSystem: any FileSystem
    /// The raw segment read last, and its bytes so far (header included).
    private var cached: (id: UInt32, salt: UInt32, bytes: [UInt8])?

    package init(fileSystem: any FileSystem, directory: String) {
        self.fileSystem = fileSystem
        self.directory = directory
    }

    /// The log's segments in id order, each raw or sealed (sealed archives of old segments).
    package func segmentIDs() throws -> [(id: UInt32, sealed: Bool)] {
        var raw = Set<UInt32>(), sealed = Set<UInt32>()
        for name in try fileSystem.listDirectory(directory) {
            guard let (id, kind) = SegmentFileName.parse(name) else { continue }
            switch kind {
            case .raw: raw.insert(id)
            case .sealed: sealed.insert(id)
            case .temporary: break
            }
        }
        // A segment with both files is mid-seal: the raw file is complete either way.
        return raw.union(sealed).sorted().map { (id: $0, sealed: !raw.contains($0)) }
    }

    /// The first position of the log still present (the start of its oldest segment), or nil
    /// when there is no segment.
    package func oldestPosition() throws -> LogPosition? {
        try segmentIDs().first.map { LogPositions.make(segment: $0.id, offset: UInt32(L.headerSize)) }
    }

    /// Calls `body` for every complete transaction that starts at or after `from` and ends at or
    /// before `limit` (nil: no limit), in log order, and returns the end of the last one
    /// delivered (`from` when none). `from` is 0 (the whole log) or a transaction boundary:
    /// the `end` of a transaction delivered earlier, or a checkpoint's log position.
    ///
    /// Throws `.invalidArgument` when `from` lies in a segment that is gone while later ones
    /// exist (the transactions after it are no longer in the log: the caller must resync),
    /// `.corrupted` for damage before the last segment, and whatever `body` throws.
    package func read(from: LogPosition, through limit: LogPosition?,
                      _ body: (LoggedTransaction) throws -> Void) throws -> LogPosition {
        let segments = try segmentIDs()
        guard let last = segments.last else { return from }
        let startSegment = LogPositions.segment(from)
        if from != 0, !segments.contains(where: { $0.id == startSegment }) {
            if segments.contains(where: { $0.id > startSegment }) {
                throw StorageError.invalidArgument(
                    "log position \(LogPositions.describe(from)) is no longer in the log (its segment \(startSegment) was removed; the oldest segment is \(segments[0].id))")
            }
            return from
        }
        var position = from
        for segment in segments where from == 0 || segment.id >= startSegment {
            let startOffset = segment.id == startSegment && from != 0 ? Int(LogPositions.offset(from)) : L.headerSize
            let isLast = segment.id == last.id
            var stop = false
            let end = try scanSegment(segment.id, sealed: segment.sealed, from: startOffset, isLast: isLast) { transaction in
                if let limit, transaction.end > limit {
                    stop = true
                    throw StopScan()
                }
                try body(transaction)
                position = transaction.end
            }
            if stop || end == nil { break }
        }
        return position
    }

    private struct StopScan: Error {}

    /// Scans one segment from `startOffset`; returns its clean end, or nil when the scan
    /// stopped early (a limit, or the live end of the last segment).
    private func scanSegment(_ id: UInt32, sealed: Bool, from startOffset: Int, isLast: Bool,
                             _ apply: (LoggedTransaction) throws -> Void) throws -> Int? {
        let path = Path.join(directory, SegmentFileName.name(id, sealed ? .sealed : .raw))
        let image: [UInt8]
        let salt: UInt32
        if sealed {
            let handle = try fileSystem.open(path, mode: .readOnly)
            defer { try? handle.close() }
            let segment = SealedSegment(id: id, file: SegmentFile(handle), fileSize: try handle.size())
            salt = try segment.index().salt
            image = try segment.rawImage()
        } else {
            do {
                (salt, image) = try rawImage(id, path: path)
            } catch StorageError.corrupted where isLast {
                // A writer creating the segment has not written (or synced) its header yet.
                return nil
            }
        }
        guard startOffset >= L.headerSize, startOffset <= image.count else {
            throw StorageError.invalidArgument("log position \(id):\(startOffset) is outside segment \(id) (\(image.count) bytes)")
        }
        // The end of the last complete transaction seen: the cached bytes after it may be a
        // torn tail that a restarted writer cuts off and writes over, so they are never kept.
        var completeEnd = startOffset
        do {
            let scan = try image.withUnsafeBytes {
                try SegmentScanner.scan($0, segment: id, salt: salt, applyFrom: startOffset, startOffset: startOffset,
                                        witnesses: true) { transaction in
                    if transaction.recordCount > 0 { try apply(transaction) }   // a sync witness has nothing to apply
                    completeEnd = Int(LogPositions.offset(transaction.end))
                }
            }
            if scan.isClean { return scan.validEnd }
            if isLast {
                trimCache(id, to: scan.validEnd)
                return nil
            }
            throw StorageError.corrupted(file: path, offset: UInt64(scan.badOffset ?? scan.validEnd),
                                         reason: scan.badOffset != nil ? scan.badReason : "segment does not end with a commit record")
        } catch is StopScan {
            trimCache(id, to: completeEnd)
            return nil
        }
    }

    /// Forgets the cached bytes of segment `id` from `offset` on (they are read again).
    private func trimCache(_ id: UInt32, to offset: Int) {
        guard var entry = cached, entry.id == id, offset >= L.headerSize, offset < entry.bytes.count else { return }
        cached = nil   // no copy-on-write
        entry.bytes.removeSubrange(offset...)
        cached = entry
    }

    /// The bytes of raw segment `id` as far as they are written now; only the part appended
    /// since the previous call is read when `id` is the segment read last.
    private func rawImage(_ id: UInt32, path: String) throws -> (UInt32, [UInt8]) {
        let handle = try fileSystem.open(path, mode: .readOnly)
        defer { try? handle.close() }
        let size = Int(try handle.size())
        if var entry = cached, entry.id == id, entry.bytes.count <= size {
            if size > entry.bytes.count {
                cached = nil   // no copy-on-write while appending
                let more = try handle.readBytes(count: size - entry.bytes.count, at: UInt64(entry.bytes.count))
                entry.bytes.append(contentsOf: more)
            }
            cached = entry
            return (entry.salt, entry.bytes)
        }
        let bytes = try handle.readBytes(count: size, at: 0)
        guard bytes.count >= L.headerSize else {
            throw StorageError.corrupted(file: path, offset: 0, reason: "segment shorter than its header")
        }
        let header = try bytes.withUnsafeBytes {
            try SegmentFileHeader.decode($0, file: path, magic: L.magic, version: L.formatVersion, expectedID: id)
        }
        cached = (id, header.salt, bytes)
        return (header.salt, bytes)
    }
}
