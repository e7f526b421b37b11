import ScrollbackFormat

/// A reusable builder of one log transaction: an ordered list of `(type, payload)` records.
///
/// Records are framed as they are added, straight into one growable byte buffer, in the
/// exact on-disk frame format (spec/log-segment.md, "Record frame"); `Log.append` copies the
/// buffer into the segment and adds the commit record. Adding a record allocates nothing once
/// the buffer has grown to the batch's size; `removeAll()` keeps the capacity, so a batch
/// reused across transactions stops allocating.
///
/// The checksum stored by the builder is the unsalted CRC32C of the frame; `Log.append`
/// folds in the segment's salt when it knows the segment.
///
/// Thread-safety: a value type; use one batch per thread.
package struct LogBatch: Sendable {
    /// The framed records, back to back.
    package private(set) var bytes: [UInt8]
    /// Offset of each record's frame within `bytes`.
    package private(set) var recordOffsets: [UInt32]

    package init(capacity: Int = 4096) {
        bytes = []
        bytes.reserveCapacity(capacity)
        recordOffsets = []
        recordOffsets.reserveCapacity(16)
    }

    package var recordCount: Int { recordOffsets.count }
    package var isEmpty: Bool { recordOffsets.isEmpty }
    /// Encoded size of the transaction once appended (frames plus the commit frame).
    package var encodedTransactionSize: Int { bytes.count + LogSegmentLayout.commitFrameSize }

    /// Forgets every record and keeps the buffers' capacity.
    package mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        recordOffsets.removeAll(keepingCapacity: true)
    }

    /// Adds a record whose payload is written in place by `fill`, which receives exactly
    /// `payloadCount` zeroed bytes. Returns the record's offset within the
    /// batch; its log position is `AppendResult.position(ofBatchOffset:)`.
    /// Throws `.invalidArgument` for a type outside `LogRecordType.caller` (16...255) and
    /// `.limitExceeded` when the transaction would exceed `LogSegmentLayout.maximumTransactionBytes`;
    /// the batch is unchanged then.
    @discardableResult
    package mutating func append(
        type: UInt8, payloadCount: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> UInt32 {
        guard type >= LogRecordType.caller.lowerBound else {
            throw StorageError.invalidArgument("record type \(type) is reserved for the log (caller types are 16...255)")
        }
        guard payloadCount >= 0,
              payloadCount <= LogSegmentLayout.maximumTransactionBytes - encodedTransactionSize - LogSegmentLayout.frameHeaderSize
        else {
            throw StorageError.limitExceeded(
                "transaction larger than \(LogSegmentLayout.maximumTransactionBytes) bytes")
        }
        let start = bytes.count
        let frameSize = LogSegmentLayout.frameHeaderSize + payloadCount
        bytes.append(contentsOf: repeatElement(0, count: frameSize))
        do {
            try bytes.withUnsafeMutableBytes { buffer in
                let frame = UnsafeMutableRawBufferPointer(rebasing: buffer[start..<(start + frameSize)])
                frame.storeLE(UInt32(truncatingIfNeeded: payloadCount), at: LogSegmentLayout.frameLengthOffset)
                frame.storeBytes(of: type, toByteOffset: LogSegmentLayout.frameTypeOffset, as: UInt8.self)
                try fill(UnsafeMutableRawBufferPointer(rebasing: frame[LogSegmentLayout.frameHeaderSize...]))
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[LogSegmentLayout.frameLengthOffset...]))
                frame.storeLE(crc, at: LogSegmentLayout.frameChecksumOffset)
            }
        } catch {
            bytes.removeLast(frameSize)
            throw error
        }
        recordOffsets.append(UInt32(truncatingIfNeeded: start))
        return UInt32(truncatingIfNeeded: start)
    }

    /// Adds a record with a copy of `payload`. See `append(type:payloadCount:_:)`.
    @discardableResult
    package mutating func append(type: UInt8, payload: UnsafeRawBufferPointer) throws -> UInt32 {
        try append(type: type, payloadCount: payload.count) { target in
            if payload.count > 0 { target.copyMemory(from: payload) }
        }
    }

    /// Adds a record with a copy of `payload`. See `append(type:payloadCount:_:)`.
    @discardableResult
    package mutating func append(type: UInt8, payload: [UInt8]) throws -> UInt32 {
        try payload.withUnsafeBytes { try append(type: type, payload: $0) }
    }
}

/// Where `Log.append` put a transaction.
package struct AppendResult: Sendable, Equatable {
    /// Position of the transaction's first record (of its commit record when it has none).
    package let start: LogPosition
    /// Position just past the commit record: `sync(through: end)` makes the transaction
    /// durable; replaying from `end` skips it.
    package let end: LogPosition
    package let recordCount: Int

    /// The position of the record that `LogBatch.append` reported at `batchOffset`.
    @inlinable
    package func position(ofBatchOffset batchOffset: UInt32) -> LogPosition {
        start + LogPosition(batchOffset)
    }

    /// The positions of the batch's records, in order (allocates an array).
    package func recordPositions(of batch: LogBatch) -> [LogPosition] {
        batch.recordOffsets.map { start + LogPosition($0) }
    }
}
