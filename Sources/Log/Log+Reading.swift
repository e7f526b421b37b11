import ScrollbackFormat
import ScrollbackIO

extension Log {
    /// Calls `body` with the type and payload of the record at `position` and returns its
    /// result. The payload view is valid only during `body`.
    ///
    /// Active segment (and the one filled just before it): served from the in-memory copy,
    /// no syscall. Sealed segments: through the block cache (a miss reads, checks and
    /// decompresses one block). Other raw segments: two preads.
    /// Verification: every byte is checked once between the disk and its first use, and the
    /// frame's structure (length, type, commit size) on every read.
    /// - In-memory image: its frames were written by this process (each frame's CRC was
    ///   computed from the bytes in the image) or verified by recovery's scan when the
    ///   segment was loaded, so the frame CRC is not recomputed.
    /// - Sealed block: the block's CRC is verified (over the compressed bytes, which fully
    ///   determine the decompressed ones) when it is read from the file, and the sealer
    ///   verified every frame's CRC before compressing; a cached decompressed block is
    ///   trusted, so the frame CRC is not recomputed.
    ///   A record read from a sealed block is also copied into the record cache (when
    ///   enabled), which then serves it without the block.
    /// - Raw segment read from its file: the frame CRC is verified on every read.
    /// A commit record (type 1) reads like any other record.
    ///
    /// Throws `.invalidArgument` when no segment or no byte of the log is at `position`,
    /// `.corrupted(file:offset:reason:)` when the bytes there are not a valid record,
    /// `.closed` after `close()`. Thread-safety: any thread, concurrently with everything.
    /// Cost: no checksum and no allocation on the in-memory and record-cache-hit paths; the
    /// first read of a sealed record copies it into the record cache (one allocation); a
    /// block miss reads, checks and decompresses one block; a file read is O(payload) for
    /// the checksum.
    package func withRecord<R>(at position: LogPosition, _ body: (UInt8, UnsafeRawBufferPointer) throws -> R) throws -> R {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        let id = LogPositions.segment(position)
        let offset = Int(LogPositions.offset(position))
        guard let entry = table.withLock({ $0.segments[id] }) else {
            throw StorageError.invalidArgument("no log segment \(id) for position \(LogPositions.describe(position))")
        }
        switch entry {
        case .raw(let raw):
            if let image = raw.image {
                return try withExtendedLifetime(image) {
                    let bytes = image.publishedBytes
                    try checkInRange(offset, limit: bytes.count, position)
                    let (parsed, reason) = LogFrame.parse(bytes, at: offset, salt: raw.salt, verifyChecksum: false)
                    guard let frame = parsed else {
                        throw StorageError.corrupted(file: raw.file.path, offset: UInt64(offset), reason: reason)
                    }
                    return try body(frame.type, UnsafeRawBufferPointer(rebasing: bytes[frame.payloadStart..<frame.end]))
                }
            }
            return try withExtendedLifetime(raw) { try readFromFile(raw, offset: offset, position: position, body) }
        case .sealed(let sealed):
            if let recordCache, let record = recordCache.lookup(position) {
                return try withExtendedLifetime(record) { try body(record.type, record.bytes) }
            }
            return try withExtendedLifetime(sealed) {
                let index = try sealed.index()
                try checkInRange(offset, limit: index.rawLength, position)
                guard let block = try sealed.block(containing: offset, index: index, cache: cache) else {
                    throw StorageError.invalidArgument("no block holds position \(LogPositions.describe(position))")
                }
                return try withExtendedLifetime(block) {
                    let bytes = block.bytes
                    let (parsed, reason) = LogFrame.parse(bytes, at: offset - block.rawStart, salt: index.salt,
                                                          verifyChecksum: false)
                    guard let frame = parsed else {
                        let blockNumber = index.blockIndex(containing: offset) ?? 0
                        throw StorageError.corrupted(
                            file: sealed.path, offset: index.entries[blockNumber].fileOffset,
                            reason: "record at segment offset \(offset) in block \(blockNumber): \(reason)")
                    }
                    let payload = UnsafeRawBufferPointer(rebasing: bytes[frame.payloadStart..<frame.end])
                    recordCache?.insert(position, type: frame.type, payload: payload)
                    return try body(frame.type, payload)
                }
            }
        }
    }

    private func checkInRange(_ offset: Int, limit: Int, _ position: LogPosition) throws {
        guard offset >= L.headerSize, offset < limit else {
            throw StorageError.invalidArgument("no record at position \(LogPositions.describe(position)) (segment length \(limit))")
        }
    }

    /// Slow path: a raw segment not held in memory (left unsealed by an earlier session).
    @inline(never)
    private func readFromFile<R>(_ raw: RawSegment, offset: Int, position: LogPosition,
                                 _ body: (UInt8, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let length = raw.fixedLength
        try checkInRange(offset, limit: length, position)
        let path = raw.file.path
        let payloadCount = try withUnsafeTemporaryAllocation(byteCount: L.frameHeaderSize, alignment: 8) { header -> Int in
            let n = try raw.file.handle.read(into: header, at: UInt64(offset))
            guard n == L.frameHeaderSize else {
                throw StorageError.corrupted(file: path, offset: UInt64(offset), reason: "truncated record header")
            }
            return Int(UnsafeRawBufferPointer(header).loadLE(UInt32.self, at: L.frameLengthOffset))
        }
        guard payloadCount <= length - offset - L.frameHeaderSize else {
            throw StorageError.corrupted(file: path, offset: UInt64(offset),
                                         reason: "record length \(payloadCount) runs past the end of the segment")
        }
        return try withUnsafeTemporaryAllocation(byteCount: L.frameHeaderSize + payloadCount, alignment: 8) { frameBytes in
            let n = try raw.file.handle.read(into: frameBytes, at: UInt64(offset))
            guard n == frameBytes.count else {
                throw StorageError.corrupted(file: path, offset: UInt64(offset + n), reason: "segment ends inside a record")
            }
            let bytes = UnsafeRawBufferPointer(frameBytes)
            let (parsed, reason) = LogFrame.parse(bytes, at: 0, salt: raw.salt)
            guard let frame = parsed else {
                throw StorageError.corrupted(file: path, offset: UInt64(offset), reason: reason)
            }
            return try body(frame.type, UnsafeRawBufferPointer(rebasing: bytes[frame.payloadStart..<frame.end]))
        }
    }

    /// Calls `body` for every complete transaction of segment `id`, in order (for
    /// compaction). Verifies every frame; damage throws `.corrupted`. For the active
    /// segment, covers what was appended when the call started. Cost: reads (and for a
    /// sealed segment decompresses) the whole segment, bypassing the block cache.
    package func forEachTransaction(inSegment id: UInt32, _ body: (LoggedTransaction) throws -> Void) throws {
        if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
        guard let entry = table.withLock({ $0.segments[id] }) else {
            throw StorageError.invalidArgument("no log segment \(id)")
        }
        switch entry {
        case .raw(let raw):
            if let image = raw.image {
                try withExtendedLifetime(image) {
                    try SegmentScanner.scanComplete(image.publishedBytes, path: raw.file.path, segment: id,
                                                    salt: raw.salt, applyFrom: 0, apply: body)
                }
            } else {
                let bytes = try raw.file.handle.readBytes(count: raw.fixedLength, at: 0)
                try bytes.withUnsafeBytes {
                    try SegmentScanner.scanComplete($0, path: raw.file.path, segment: id, salt: raw.salt,
                                                    applyFrom: 0, apply: body)
                }
            }
        case .sealed(let sealed):
            let index = try sealed.index()
            let image = try sealed.rawImage()
            try image.withUnsafeBytes {
                try SegmentScanner.scanComplete($0, path: sealed.path, segment: id, salt: index.salt,
                                                applyFrom: 0, apply: body)
            }
        }
    }

    /// Checks every segment completely: headers, sealed footers and indexes, every block
    /// checksum and decompression, every frame, every commit, each segment ending at a
    /// commit; the active segment is last. Throws the first `.corrupted` found.
    /// For tests and the store's `verify()`. Cost: reads and decompresses the whole log.
    package func verify() throws {
        let (ids, activeID) = table.withLock { (Array($0.segments.keys).sorted(), $0.activeID) }
        guard ids.last == activeID else {
            throw StorageError.corrupted(file: directory, offset: 0, reason: "active segment \(activeID) is not the last")
        }
        for id in ids {
            do {
                try forEachTransaction(inSegment: id) { _ in }
            } catch StorageError.invalidArgument {
                continue   // removed concurrently
            }
        }
    }
}
