import ScrollbackFormat

/// A record frame that passed every check (spec/log-segment.md, "Record frame").
struct ParsedFrame {
    var type: UInt8
    /// Offset of the payload in the buffer that was parsed.
    var payloadStart: Int
    var payloadCount: Int
    /// Offset just past the frame.
    var end: Int
}

/// Decoded commit payload (spec/log-segment.md, "Commit record").
struct CommitPayload {
    var durableThrough: UInt32
    var transactionStart: UInt32
    var recordCount: UInt32
}

/// Frame codec. Every function is bounds-checked: any bytes give a frame or a reason.
enum LogFrame {
    typealias L = LogSegmentLayout

    /// Parses the frame at `offset` of `bytes` (a whole segment image or one block). Returns
    /// the frame or the reason it is not a valid frame. Checks: header fits, payload fits, type known,
    /// checksum matches, a commit's payload has the commit size.
    ///
    /// `verifyChecksum: false` keeps every structural check but skips the CRC: only for bytes
    /// whose frames were already verified (see `Log.withRecord`).
    @inline(__always)
    static func parse(_ bytes: UnsafeRawBufferPointer, at offset: Int, salt: UInt32,
                      verifyChecksum: Bool = true) -> (ParsedFrame?, String) {
        guard offset >= 0, bytes.count - offset >= L.frameHeaderSize else {
            return (nil, "truncated record header")
        }
        let length = Int(bytes.loadLE(UInt32.self, at: offset + L.frameLengthOffset))
        guard length <= bytes.count - offset - L.frameHeaderSize else {
            return (nil, "record length \(length) runs past the end of the data")
        }
        let type = bytes[offset + L.frameTypeOffset]
        guard type == LogRecordType.commit || type >= LogRecordType.caller.lowerBound else {
            return (nil, "unknown record type \(type)")
        }
        let end = offset + L.frameHeaderSize + length
        if verifyChecksum {
            let stored = bytes.loadLE(UInt32.self, at: offset + L.frameChecksumOffset)
            let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[(offset + L.frameLengthOffset)..<end]))
            guard stored == computed ^ salt else {
                return (nil, "record checksum mismatch")
            }
        }
        if type == LogRecordType.commit && length != L.commitPayloadSize {
            return (nil, "commit record has length \(length), expected \(L.commitPayloadSize)")
        }
        return (ParsedFrame(type: type, payloadStart: offset + L.frameHeaderSize, payloadCount: length, end: end), "")
    }

    static func commitPayload(_ bytes: UnsafeRawBufferPointer, frame: ParsedFrame) -> CommitPayload {
        let p = frame.payloadStart
        return CommitPayload(
            durableThrough: bytes.loadLE(UInt32.self, at: p + L.commitDurableThroughOffset),
            transactionStart: bytes.loadLE(UInt32.self, at: p + L.commitTransactionStartOffset),
            recordCount: bytes.loadLE(UInt32.self, at: p + L.commitRecordCountOffset))
    }

    /// Writes a complete commit frame at `offset`. REQUIRES: `commitFrameSize` bytes fit.
    static func writeCommit(_ target: UnsafeMutableRawBufferPointer, at offset: Int, salt: UInt32, _ commit: CommitPayload) {
        let p = offset + L.frameHeaderSize
        target.storeLE(UInt32(L.commitPayloadSize), at: offset + L.frameLengthOffset)
        target.storeBytes(of: LogRecordType.commit, toByteOffset: offset + L.frameTypeOffset, as: UInt8.self)
        target.storeLE(commit.durableThrough, at: p + L.commitDurableThroughOffset)
        target.storeLE(commit.transactionStart, at: p + L.commitTransactionStartOffset)
        target.storeLE(commit.recordCount, at: p + L.commitRecordCountOffset)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: target[(offset + L.frameLengthOffset)..<(offset + L.commitFrameSize)]))
        target.storeLE(crc ^ salt, at: offset + L.frameChecksumOffset)
    }
}

/// The 24-byte header shared (with different magic) by raw and sealed segment files
/// (`LogSegmentLayout` and `SealedSegmentLayout` give the same offsets).
struct SegmentFileHeader: Equatable {
    typealias L = LogSegmentLayout

    var segmentID: UInt32
    var salt: UInt32

    static let size = L.headerSize

    func encode(magic: UInt64, version: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { b in
            b.storeLE(magic, at: L.headerMagicOffset)
            b.storeLE(version, at: L.headerVersionOffset)
            b.storeLE(segmentID, at: L.headerSegmentIDOffset)
            b.storeLE(salt, at: L.headerSaltOffset)
            b.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<L.headerChecksumOffset])),
                      at: L.headerChecksumOffset)
        }
        return bytes
    }

    /// Decodes and checks a header. Errors name `file` and offset 0.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String, magic: UInt64, version: UInt32,
                       expectedID: UInt32) throws -> SegmentFileHeader {
        guard bytes.count >= size else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "file shorter than its \(size)-byte header")
        }
        let stored = bytes.loadLE(UInt32.self, at: L.headerChecksumOffset)
        guard stored == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<L.headerChecksumOffset])) else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "header checksum mismatch")
        }
        guard bytes.loadLE(UInt64.self, at: L.headerMagicOffset) == magic else {
            throw StorageError.notAStore(path: file)
        }
        let found = bytes.loadLE(UInt32.self, at: L.headerVersionOffset)
        guard found == version else {
            if found > version { throw StorageError.unsupportedVersion(file: file, found: found, supported: version) }
            throw StorageError.corrupted(file: file, offset: UInt64(L.headerVersionOffset),
                                         reason: "format version \(found) is not valid")
        }
        let id = bytes.loadLE(UInt32.self, at: L.headerSegmentIDOffset)
        guard id == expectedID else {
            throw StorageError.corrupted(file: file, offset: UInt64(L.headerSegmentIDOffset),
                                         reason: "header names segment \(id), file name says \(expectedID)")
        }
        return SegmentFileHeader(segmentID: id, salt: bytes.loadLE(UInt32.self, at: L.headerSaltOffset))
    }
}

/// File names of the log (spec/log-segment.md, "Files").
enum SegmentFileName {
    enum Kind { case raw, sealed, temporary }

    static func name(_ id: UInt32, _ kind: Kind) -> String {
        let digits = String(id, radix: 16, uppercase: true)
        let padded = String(repeating: "0", count: max(0, 8 - digits.count)) + digits
        switch kind {
        case .raw: return LogSegmentLayout.filePrefix + padded + LogSegmentLayout.fileSuffix
        case .sealed: return LogSegmentLayout.filePrefix + padded + SealedSegmentLayout.fileSuffix
        case .temporary: return LogSegmentLayout.filePrefix + padded + SealedSegmentLayout.temporarySuffix
        }
    }

    /// Parses a directory entry; nil for files that are not the log's.
    static func parse(_ name: String) -> (UInt32, Kind)? {
        guard name.hasPrefix(LogSegmentLayout.filePrefix) else { return nil }
        let rest = name.dropFirst(LogSegmentLayout.filePrefix.count)
        guard rest.count > 8 else { return nil }
        let digits = rest.prefix(8)
        let suffix = rest.dropFirst(8)
        guard let id = UInt32(digits, radix: 16), id > 0 else { return nil }
        let kind: Kind
        switch suffix {
        case LogSegmentLayout.fileSuffix: kind = .raw
        case SealedSegmentLayout.fileSuffix: kind = .sealed
        case SealedSegmentLayout.temporarySuffix: kind = .temporary
        default: return nil
        }
        // Only the canonical spelling (8 upper-case hex digits) is the log's.
        return name == self.name(id, kind) ? (id, kind) : nil
    }
}
