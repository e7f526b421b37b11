import CLZ4
import ScrollbackFormat
import ScrollbackIO

/// A sorted-run file (`run-XXXXXXXX.run`, spec/sorted-run.md): records keyed by `RunKey` in
/// strictly increasing order, packed into blocks (LZ4 or stored) with a block index and a
/// footer. Immutable once written.
///
/// `open` reads and validates the header, the footer and the whole block index (held in
/// memory: 80 bytes per block); blocks are read, checked (CRC-32C of the stored bytes),
/// decompressed and decoded on first use and kept in a `RunBlockCache`.
///
/// Thread-safety: immutable; every method may be called from any thread.
package final class SortedRun: @unchecked Sendable {
    typealias L = SortedRunLayout

    package let id: UInt32
    let file: SegmentFile
    package let fileSize: UInt64
    package let entries: [RunBlockEntry]
    package let recordCount: UInt64
    package let payloadBytes: UInt64
    /// The blocks' codecs, counted (for compaction's "worth recompressing" decision).
    package let highCompressionBlocks: Int

    init(id: UInt32, file: SegmentFile, fileSize: UInt64, entries: [RunBlockEntry], recordCount: UInt64,
         payloadBytes: UInt64) {
        self.id = id
        self.file = file
        self.fileSize = fileSize
        self.entries = entries
        self.recordCount = recordCount
        self.payloadBytes = payloadBytes
        highCompressionBlocks = entries.reduce(0) { $0 + ($1.codec == .lz4HighCompression ? 1 : 0) }
    }

    package var path: String { file.path }
    package var blockCount: Int { entries.count }
    package var firstKey: RunKey? { entries.first?.firstKey }
    package var lastKey: RunKey? { entries.last?.lastKey }

    /// The file name of run `id`.
    package static func fileName(_ id: UInt32) -> String {
        L.filePrefix + hex8(id) + L.fileSuffix
    }

    static func hex8(_ id: UInt32) -> String {
        let digits = String(id, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// The run id in a file name `run-XXXXXXXX.run`, or nil for any other name.
    package static func id(fromFileName name: String) -> UInt32? {
        guard name.hasPrefix(L.filePrefix), name.hasSuffix(L.fileSuffix),
              name.utf8.count == L.filePrefix.utf8.count + 8 + L.fileSuffix.utf8.count else { return nil }
        let digits = name.dropFirst(L.filePrefix.count).prefix(8)
        guard digits.allSatisfy({ $0.isHexDigit && !$0.isLowercase }) else { return nil }
        return UInt32(digits, radix: 16)
    }

    // MARK: Open

    /// Opens and validates run `id` at `path`: header, footer and block index (every rule
    /// of spec/sorted-run.md, "Validity", except the per-block checks done on first read).
    /// Damage throws `.corrupted(file:offset:reason:)`; a newer version `.unsupportedVersion`.
    package static func open(fileSystem: any FileSystem, path: String, id: UInt32) throws -> SortedRun {
        let handle = try fileSystem.open(path, mode: .readOnly)
        let file = SegmentFile(handle)
        let size = try handle.size()
        let (entries, records, payload) = try readIndex(handle, id: id, fileSize: size)
        return SortedRun(id: id, file: file, fileSize: size, entries: entries, recordCount: records, payloadBytes: payload)
    }

    static func readIndex(_ handle: any FileHandle, id: UInt32, fileSize: UInt64) throws
        -> (entries: [RunBlockEntry], records: UInt64, payloadBytes: UInt64) {
        let path = handle.path
        guard fileSize >= UInt64(L.headerSize + L.footerSize) else {
            throw StorageError.corrupted(file: path, offset: 0, reason: "run file of \(fileSize) bytes is shorter than header + footer")
        }
        let header = try handle.readBytes(count: L.headerSize, at: 0)
        try header.withUnsafeBytes { try decodeHeader($0, file: path, expectedID: id) }
        let footerOffset = fileSize - UInt64(L.footerSize)
        let footer = try handle.readBytes(count: L.footerSize, at: footerOffset)
        guard footer.count == L.footerSize else {
            throw StorageError.corrupted(file: path, offset: footerOffset, reason: "run footer is short")
        }
        let fields = try footer.withUnsafeBytes { try decodeFooter($0, file: path, at: footerOffset) }
        let indexBytes = UInt64(fields.blockCount) * UInt64(L.indexEntrySize)
        guard fields.indexOffset >= UInt64(L.headerSize), fields.indexOffset <= footerOffset,
              footerOffset - fields.indexOffset == indexBytes else {
            throw StorageError.corrupted(file: path, offset: footerOffset,
                                         reason: "footer index offset \(fields.indexOffset) / block count \(fields.blockCount) do not match the file size \(fileSize)")
        }
        let index = try handle.readBytes(count: Int(indexBytes), at: fields.indexOffset)
        guard UInt64(index.count) == indexBytes else {
            throw StorageError.corrupted(file: path, offset: fields.indexOffset, reason: "block index is short")
        }
        let entries = try index.withUnsafeBytes { bytes -> [RunBlockEntry] in
            guard CRC32C.checksum(bytes) == fields.indexChecksum else {
                throw StorageError.corrupted(file: path, offset: fields.indexOffset, reason: "block index checksum mismatch")
            }
            return try decodeIndex(bytes, count: Int(fields.blockCount), file: path, at: fields.indexOffset)
        }
        try checkIndex(entries, fields: fields, file: path)
        return (entries, fields.recordCount, fields.payloadBytes)
    }

    /// Checks the header; throws `.notAStore` for a foreign magic.
    package static func decodeHeader(_ bytes: UnsafeRawBufferPointer, file: String, expectedID: UInt32?) throws {
        guard bytes.count >= L.headerSize else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "file shorter than its \(L.headerSize)-byte header")
        }
        guard bytes.loadLE(UInt32.self, at: L.headerChecksumOffset)
                == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<L.headerChecksumOffset])) else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "run header checksum mismatch")
        }
        guard bytes.loadLE(UInt64.self, at: L.headerMagicOffset) == L.magic else { throw StorageError.notAStore(path: file) }
        let version = bytes.loadLE(UInt32.self, at: L.headerVersionOffset)
        guard version == L.formatVersion else {
            if version > L.formatVersion {
                throw StorageError.unsupportedVersion(file: file, found: version, supported: L.formatVersion)
            }
            throw StorageError.corrupted(file: file, offset: UInt64(L.headerVersionOffset), reason: "format version \(version) is not valid")
        }
        let id = bytes.loadLE(UInt32.self, at: L.headerRunIDOffset)
        if let expectedID, id != expectedID {
            throw StorageError.corrupted(file: file, offset: UInt64(L.headerRunIDOffset),
                                         reason: "header names run \(id), the file name run \(expectedID)")
        }
        guard bytes.loadLE(UInt32.self, at: L.headerKeyWordsOffset) == UInt32(L.keyWords),
              bytes.loadLE(UInt64.self, at: L.headerReservedOffset) == 0 else {
            throw StorageError.corrupted(file: file, offset: UInt64(L.headerKeyWordsOffset), reason: "key words or reserved bytes invalid")
        }
    }

    struct FooterFields {
        var indexOffset: UInt64
        var blockCount: UInt32
        var recordCount: UInt64
        var payloadBytes: UInt64
        var indexChecksum: UInt32
    }

    static func decodeFooter(_ f: UnsafeRawBufferPointer, file: String, at offset: UInt64) throws -> FooterFields {
        guard f.loadLE(UInt32.self, at: L.footerChecksum) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: f[0..<L.footerChecksum])) else {
            throw StorageError.corrupted(file: file, offset: offset, reason: "run footer checksum mismatch")
        }
        guard f.loadLE(UInt32.self, at: L.footerReserved) == 0, f.loadLE(UInt64.self, at: L.footerReserved2) == 0 else {
            throw StorageError.corrupted(file: file, offset: offset + UInt64(L.footerReserved), reason: "run footer reserved bytes are not zero")
        }
        return FooterFields(indexOffset: f.loadLE(UInt64.self, at: L.footerIndexOffset),
                            blockCount: f.loadLE(UInt32.self, at: L.footerBlockCount),
                            recordCount: f.loadLE(UInt64.self, at: L.footerRecordCount),
                            payloadBytes: f.loadLE(UInt64.self, at: L.footerPayloadBytes),
                            indexChecksum: f.loadLE(UInt32.self, at: L.footerIndexChecksum))
    }

    static func decodeIndex(_ b: UnsafeRawBufferPointer, count: Int, file: String, at indexOffset: UInt64) throws -> [RunBlockEntry] {
        var entries: [RunBlockEntry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            let o = i * L.indexEntrySize
            let codecByte = b[o + L.entryCodecOffset]
            guard let codec = RunBlockCodec(rawValue: codecByte) else {
                throw StorageError.corrupted(file: file, offset: indexOffset + UInt64(o + L.entryCodecOffset),
                                             reason: "block \(i) has unknown codec \(codecByte)")
            }
            for r in 0..<7 where b[o + L.entryReservedOffset + r] != 0 {
                throw StorageError.corrupted(file: file, offset: indexOffset + UInt64(o + L.entryReservedOffset),
                                             reason: "block \(i) index entry reserved bytes are not zero")
            }
            entries.append(RunBlockEntry(
                firstKey: RunKey.load(b, at: o + L.entryFirstKeyOffset), lastKey: RunKey.load(b, at: o + L.entryLastKeyOffset),
                fileOffset: b.loadLE(UInt64.self, at: o + L.entryFileOffset),
                storedLength: b.loadLE(UInt32.self, at: o + L.entryStoredLengthOffset),
                rawLength: b.loadLE(UInt32.self, at: o + L.entryRawLengthOffset),
                recordCount: b.loadLE(UInt32.self, at: o + L.entryRecordCountOffset),
                codec: codec, checksum: b.loadLE(UInt32.self, at: o + L.entryChecksumOffset)))
        }
        return entries
    }

    /// The structural rules between index entries and the footer.
    static func checkIndex(_ entries: [RunBlockEntry], fields: FooterFields, file: String) throws {
        var expectedOffset = UInt64(L.headerSize)
        var records: UInt64 = 0
        var previousLast: RunKey? = nil
        for (i, entry) in entries.enumerated() {
            let at = fields.indexOffset + UInt64(i * L.indexEntrySize)
            let bound = UInt64(LZ4_compressBound(Int32(clamping: entry.rawLength)))
            let storedOK = entry.codec == .stored ? entry.storedLength == entry.rawLength
                : (entry.storedLength > 0 && UInt64(entry.storedLength) <= bound)
            guard entry.fileOffset == expectedOffset, entry.rawLength >= 4,
                  entry.rawLength <= UInt32(L.maximumBlockBytes), storedOK,
                  entry.recordCount >= 1, entry.recordCount <= UInt32(L.maximumRecordsPerBlock),
                  entry.firstKey <= entry.lastKey, (entry.recordCount == 1) == (entry.firstKey == entry.lastKey) else {
                throw StorageError.corrupted(file: file, offset: at, reason: "block index entry \(i) is inconsistent")
            }
            if let previousLast, !(previousLast < entry.firstKey) {
                throw StorageError.corrupted(file: file, offset: at, reason: "block \(i) does not start after block \(i - 1) ends")
            }
            previousLast = entry.lastKey
            expectedOffset += UInt64(entry.storedLength)
            records += UInt64(entry.recordCount)
        }
        guard expectedOffset == fields.indexOffset, records == fields.recordCount else {
            throw StorageError.corrupted(file: file, offset: fields.indexOffset,
                                         reason: "blocks cover \(expectedOffset) bytes and \(records) records, footer says \(fields.indexOffset) / \(fields.recordCount)")
        }
    }

    // MARK: Blocks

    /// Reads, checks, decompresses and decodes block `i` (no caching).
    package func readBlock(_ i: Int) throws -> DecodedRunBlock {
        let entry = entries[i]
        return try withUnsafeTemporaryAllocation(byteCount: Int(entry.storedLength), alignment: 16) { stored in
            let n = try file.handle.read(into: stored, at: entry.fileOffset)
            guard n == stored.count else {
                throw StorageError.corrupted(file: path, offset: entry.fileOffset + UInt64(n), reason: "run block \(i) is short")
            }
            guard CRC32C.checksum(UnsafeRawBufferPointer(stored)) == entry.checksum else {
                throw StorageError.corrupted(file: path, offset: entry.fileOffset, reason: "run block \(i) checksum mismatch")
            }
            if entry.codec == .stored {
                return try DecodedRunBlock.decode(UnsafeRawBufferPointer(stored), entry: entry, file: path)
            }
            return try withUnsafeTemporaryAllocation(byteCount: Int(entry.rawLength), alignment: 16) { raw in
                let produced = LZ4_decompress_safe(
                    stored.baseAddress!.assumingMemoryBound(to: CChar.self), raw.baseAddress!.assumingMemoryBound(to: CChar.self),
                    Int32(stored.count), Int32(raw.count))
                guard produced == Int32(raw.count) else {
                    throw StorageError.corrupted(file: path, offset: entry.fileOffset,
                                                 reason: "run block \(i) does not decompress to \(raw.count) bytes (got \(produced))")
                }
                return try DecodedRunBlock.decode(UnsafeRawBufferPointer(raw), entry: entry, file: path)
            }
        }
    }

    /// Block `i` through `cache`.
    @inline(__always)
    func block(_ i: Int, cache: RunBlockCache) throws -> DecodedRunBlock {
        let key = RunBlockKey(run: id, block: UInt32(truncatingIfNeeded: i))
        if let cached = cache.lookup(key) { return cached }
        let block = try readBlock(i)
        return cache.insert(key, block, cost: block.memoryCost)
    }

    /// Index of the first block whose last key is ≥ `key` (`blockCount` if none). O(log blocks).
    package func blockIndex(atLeast key: RunKey) -> Int {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) >> 1
            if entries[mid].lastKey < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Checks every block (CRC, decompression, decoding). For `verify`. O(run size).
    package func verify() throws {
        for i in entries.indices { _ = try readBlock(i) }
    }
}
