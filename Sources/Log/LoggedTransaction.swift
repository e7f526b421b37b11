import ScrollbackFormat

/// One complete transaction handed to the recovery `apply` function (and to
/// `Log.forEachTransaction(inSegment:)`): its records, already verified, with positions.
///
/// Lifetime: a view into the log's scan buffer, valid only during the call it is passed to;
/// copy the payloads you keep. Not thread-safe to share beyond that call.
package struct LoggedTransaction {
    package let segment: UInt32
    /// Position of the first record (of the commit record when the transaction is empty).
    package let start: LogPosition
    /// Position just past the commit record.
    package let end: LogPosition
    package let recordCount: Int
    /// The segment image the records live in, and the offsets bounding the records.
    let bytes: UnsafeRawBufferPointer
    let firstOffset: Int
    let commitOffset: Int
    /// Added to an offset in `bytes` to get the record's offset in its segment (non-zero when
    /// `bytes` is a just-appended batch rather than the segment image).
    let positionBias: Int

    init(segment: UInt32, start: LogPosition, end: LogPosition, recordCount: Int,
         bytes: UnsafeRawBufferPointer, firstOffset: Int, commitOffset: Int, positionBias: Int = 0) {
        self.segment = segment
        self.start = start
        self.end = end
        self.recordCount = recordCount
        self.bytes = bytes
        self.firstOffset = firstOffset
        self.commitOffset = commitOffset
        self.positionBias = positionBias
    }

    /// Calls `body` with each record's position, type and payload, in log order.
    /// The payload view is valid only during the call. O(records), no allocation.
    package func forEachRecord(_ body: (LogPosition, UInt8, UnsafeRawBufferPointer) throws -> Void) rethrows {
        typealias L = LogSegmentLayout
        var offset = firstOffset
        while offset < commitOffset {
            // Frames were verified by the scan that built this value.
            let length = Int(bytes.loadLE(UInt32.self, at: offset + L.frameLengthOffset))
            let type = bytes[offset + L.frameTypeOffset]
            let payloadStart = offset + L.frameHeaderSize
            try body(LogPositions.make(segment: segment, offset: UInt32(offset + positionBias)), type,
                     UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(payloadStart + length)]))
            offset = payloadStart + length
        }
    }
}

/// What a scan of one segment image found.
struct SegmentScan {
    /// End of the last complete transaction (the segment header's end when there is none).
    var validEnd: Int
    /// The first frame that failed a check, and why; nil if every frame was valid.
    var badOffset: Int?
    var badReason: String
    /// True when the data ends inside a transaction (records without their commit).
    var endsInsideTransaction: Bool

    var isClean: Bool { badOffset == nil && !endsInsideTransaction }
}

/// The recovery scan (spec/log-segment.md, "Recovery").
enum SegmentScanner {
    typealias L = LogSegmentLayout

    /// Walks every frame of `bytes` (a whole segment image, header included) and calls
    /// `apply` for each complete transaction whose first record is at or after `applyFrom`.
    /// Stops at the first frame that fails a check. O(bytes).
    /// `startOffset` (default: just after the header) must be a transaction boundary.
    ///
    /// Sync witnesses (transactions without records, `Log.appendSyncWitness`) count as
    /// complete transactions for the scan's ends but reach `apply` only with `witnesses: true`.
    static func scan(_ bytes: UnsafeRawBufferPointer, segment: UInt32, salt: UInt32, applyFrom: Int,
                     startOffset: Int = L.headerSize, witnesses: Bool = false,
                     apply: (LoggedTransaction) throws -> Void) throws -> SegmentScan {
        var offset = startOffset
        var transactionStart = offset
        var count = 0
        while offset < bytes.count {
            let (parsed, reason) = LogFrame.parse(bytes, at: offset, salt: salt)
            guard let frame = parsed else {
                return SegmentScan(validEnd: transactionStart, badOffset: offset, badReason: reason, endsInsideTransaction: true)
            }
            if frame.type == LogRecordType.commit {
                let commit = LogFrame.commitPayload(bytes, frame: frame)
                guard Int(commit.transactionStart) == transactionStart, Int(commit.recordCount) == count,
                      Int(commit.durableThrough) <= transactionStart, Int(commit.durableThrough) >= L.headerSize else {
                    return SegmentScan(validEnd: transactionStart, badOffset: offset,
                                       badReason: "commit record does not match its transaction (start \(commit.transactionStart), \(commit.recordCount) records, durable through \(commit.durableThrough))",
                                       endsInsideTransaction: true)
                }
                if transactionStart >= applyFrom, count > 0 || witnesses {
                    try apply(LoggedTransaction(
                        segment: segment,
                        start: LogPositions.make(segment: segment, offset: UInt32(transactionStart)),
                        end: LogPositions.make(segment: segment, offset: UInt32(frame.end)),
                        recordCount: count, bytes: bytes, firstOffset: transactionStart, commitOffset: offset))
                }
                transactionStart = frame.end
                count = 0
            } else {
                count += 1
            }
            offset = frame.end
        }
        return SegmentScan(validEnd: transactionStart, badOffset: nil, badReason: "",
                           endsInsideTransaction: transactionStart != offset)
    }

    /// The torn-tail evidence search: the first valid commit frame after `badOffset` whose
    /// durable-through offset is past `validEnd`, i.e. proof that the bytes at `validEnd`
    /// had been synced before some later transaction was written. O(bytes after badOffset).
    static func durableCommitAfter(_ bytes: UnsafeRawBufferPointer, badOffset: Int, validEnd: Int,
                                   salt: UInt32) -> (offset: Int, durableThrough: UInt32)? {
        var offset = badOffset + 1
        while offset + L.commitFrameSize <= bytes.count {
            if bytes[offset + L.frameTypeOffset] == LogRecordType.commit,
               bytes.loadLE(UInt32.self, at: offset + L.frameLengthOffset) == UInt32(L.commitPayloadSize) {
                let (parsed, _) = LogFrame.parse(bytes, at: offset, salt: salt)
                if let frame = parsed {
                    let commit = LogFrame.commitPayload(bytes, frame: frame)
                    if Int(commit.durableThrough) > validEnd { return (offset, commit.durableThrough) }
                }
            }
            offset += 1
        }
        return nil
    }

    /// Scans a segment that must be complete (not the last one, or sealed): any bad frame or
    /// unfinished transaction is corruption.
    static func scanComplete(_ bytes: UnsafeRawBufferPointer, path: String, segment: UInt32, salt: UInt32,
                             applyFrom: Int, apply: (LoggedTransaction) throws -> Void) throws {
        let result = try scan(bytes, segment: segment, salt: salt, applyFrom: applyFrom, apply: apply)
        if let bad = result.badOffset {
            throw StorageError.corrupted(
                file: path, offset: UInt64(bad),
                reason: "\(result.badReason) (not the last segment: it was complete and synced before the next one was created)")
        }
        if result.endsInsideTransaction {
            throw StorageError.corrupted(
                file: path, offset: UInt64(result.validEnd),
                reason: "transaction without a commit record at the end of a segment that is not the last")
        }
    }
}
