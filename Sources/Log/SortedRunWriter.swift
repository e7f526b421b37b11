import CLZ4
import ScrollbackFormat
import ScrollbackIO

/// How a run writer compresses blocks.
package enum RunCompression: Sendable, Equatable {
    /// LZ4's fast mode (~800 MB/s here): sealing and bulk loads.
    case fast
    /// LZ4 HC at `level` (1…12; ~90 MB/s at 4, ~25 MB/s at 9 here): compaction's merges.
    case high(level: Int)
}

/// Writes one sorted-run file (spec/sorted-run.md, "Writing"): records appended in strictly
/// increasing key order are packed into blocks of about `blockSize` encoded bytes, each
/// compressed (or stored when compression does not help) and streamed to
/// `run-XXXXXXXX.run.tmp`; `finish()` appends the block index and the footer, syncs the file,
/// renames it to its final name and syncs the directory. Until `finish()` returns, the run
/// does not exist (a crash leaves at most a temporary file, which the log removes at open).
///
/// Not thread-safe: one writer per run, used from one thread.
package final class SortedRunWriter {
    typealias L = SortedRunLayout

    package let id: UInt32
    let fileSystem: any FileSystem
    let directory: String
    let blockSize: Int
    let compression: RunCompression
    let temporaryPath: String
    package let path: String
    private var handle: (any FileHandle)?

    // The block being built.
    private var keys = ByteWriter(capacity: 8 << 10)
    private var tags = ByteWriter(capacity: 1 << 10)
    private var previousTag: UInt32 = 0
    private var lengths = ByteWriter(capacity: 1 << 10)
    private var payloads = ByteWriter(capacity: 40 << 10)
    private var blockCount = 0
    private var blockFirst = RunKey.min
    private var previous: RunKey? = nil

    // The file being written.
    private var entries: [RunBlockEntry] = []
    private var output: [UInt8] = []
    private var outputStart: UInt64 = UInt64(L.headerSize)
    private var fileEnd: UInt64 = UInt64(L.headerSize)
    private var records: UInt64 = 0
    private var payloadTotal: UInt64 = 0
    private var scratch: [UInt8] = []

    /// Creates `run-<id>.run.tmp` in `directory` (replacing a stale one) and writes the header.
    package init(fileSystem: any FileSystem, directory: String, id: UInt32, blockSize: Int = L.defaultBlockSize,
                 compression: RunCompression = .fast) throws {
        guard (64...(64 << 20)).contains(blockSize) else {
            throw StorageError.invalidArgument("run blockSize \(blockSize) outside 64 ... 64 MiB")
        }
        if case .high(let level) = compression, !(1...12).contains(level) {
            throw StorageError.invalidArgument("LZ4 HC level \(level) outside 1 ... 12")
        }
        self.fileSystem = fileSystem
        self.directory = directory
        self.id = id
        self.blockSize = blockSize
        self.compression = compression
        path = Path.join(directory, SortedRun.fileName(id))
        temporaryPath = Path.join(directory, L.filePrefix + SortedRun.hex8(id) + L.temporarySuffix)
        if fileSystem.fileExists(temporaryPath) { try fileSystem.removeFile(temporaryPath) }
        let handle = try fileSystem.open(temporaryPath, mode: .createNew)
        self.handle = handle
        try handle.write(Self.encodeHeader(id: id), at: 0)
        output.reserveCapacity(1 << 20)
    }

    static func encodeHeader(id: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: L.headerSize)
        bytes.withUnsafeMutableBytes { b in
            b.storeLE(L.magic, at: L.headerMagicOffset)
            b.storeLE(L.formatVersion, at: L.headerVersionOffset)
            b.storeLE(id, at: L.headerRunIDOffset)
            b.storeLE(UInt32(L.keyWords), at: L.headerKeyWordsOffset)
            b.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<L.headerChecksumOffset])), at: L.headerChecksumOffset)
        }
        return bytes
    }

    /// Records appended so far.
    package var recordCount: UInt64 { records + UInt64(blockCount) }

    /// Appends one record with a tag (an opaque per-record number the reader gets back).
    /// REQUIRES: `key` greater than every key appended before (else `.invalidArgument`,
    /// nothing appended); payload at most 1 GiB.
    package func append(_ key: RunKey, tag: UInt32 = 0, payload: UnsafeRawBufferPointer) throws {
        if let previous, !(previous < key) {
            throw StorageError.invalidArgument("run \(id): key \(key) does not follow \(previous)")
        }
        guard payload.count <= L.maximumBlockBytes - 64 else {
            throw StorageError.limitExceeded("run record payload of \(payload.count) bytes")
        }
        let projected = 4 + keys.count + tags.count + lengths.count + payloads.count + 35 + payload.count
        if blockCount > 0 && (projected > blockSize || blockCount == L.maximumRecordsPerBlock) {
            try flushBlock()
        }
        if blockCount == 0 {
            blockFirst = key
            keys.write(key.w0)
            keys.write(key.w1)
            keys.write(key.w2)
        } else {
            RunBlockEncoding.appendDelta(key, after: previous!, to: &keys)
        }
        RunBlockEncoding.appendTag(tag, after: blockCount == 0 ? 0 : previousTag, to: &tags)
        previousTag = tag
        lengths.writeVarint(UInt64(payload.count))
        payloads.write(bytes: payload)
        previous = key
        blockCount += 1
    }

    /// Encodes, compresses and buffers the current block.
    private func flushBlock() throws {
        guard blockCount > 0, let last = previous else { return }
        let rawLength = 4 + keys.count + tags.count + lengths.count + payloads.count
        scratch.removeAll(keepingCapacity: true)
        scratch.reserveCapacity(rawLength)
        withUnsafeBytes(of: UInt32(blockCount).littleEndian) { scratch.append(contentsOf: $0) }
        scratch.append(contentsOf: keys.bytes)
        scratch.append(contentsOf: tags.bytes)
        scratch.append(contentsOf: lengths.bytes)
        scratch.append(contentsOf: payloads.bytes)
        let bound = Int(LZ4_compressBound(Int32(rawLength)))
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bound))
        let produced: Int32 = scratch.withUnsafeBytes { raw in
            output.withUnsafeMutableBytes { out in
                let source = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
                let target = (out.baseAddress! + start).assumingMemoryBound(to: CChar.self)
                switch compression {
                case .fast:
                    return LZ4_compress_default(source, target, Int32(rawLength), Int32(bound))
                case .high(let level):
                    return LZ4_compress_HC(source, target, Int32(rawLength), Int32(bound), Int32(level))
                }
            }
        }
        var codec: RunBlockCodec
        var stored: Int
        // Compression that saves less than 1/16 (or 16 bytes) is not worth a decompression on
        // every read.
        if produced > 0 && Int(produced) + max(rawLength / 16, 16) <= rawLength {
            codec = compression == .fast ? .lz4 : .lz4HighCompression
            stored = Int(produced)
        } else {
            codec = .stored
            stored = rawLength
            output.withUnsafeMutableBytes { out in
                scratch.withUnsafeBytes { (out.baseAddress! + start).copyMemory(from: $0.baseAddress!, byteCount: rawLength) }
            }
        }
        output.removeLast(bound - stored)
        let checksum = output.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + stored)])) }
        entries.append(RunBlockEntry(firstKey: blockFirst, lastKey: last, fileOffset: fileEnd, storedLength: UInt32(stored),
                                     rawLength: UInt32(rawLength), recordCount: UInt32(blockCount), codec: codec,
                                     checksum: checksum))
        fileEnd += UInt64(stored)
        records += UInt64(blockCount)
        payloadTotal += UInt64(payloads.count)
        keys.bytes.removeAll(keepingCapacity: true)
        tags.bytes.removeAll(keepingCapacity: true)
        lengths.bytes.removeAll(keepingCapacity: true)
        payloads.bytes.removeAll(keepingCapacity: true)
        blockCount = 0
        if output.count >= 1 << 20 { try flushOutput() }
    }

    private func flushOutput() throws {
        guard !output.isEmpty, let handle else { return }
        try handle.write(output, at: outputStart)
        outputStart += UInt64(output.count)
        output.removeAll(keepingCapacity: true)
    }

    /// Writes the last block, the index, the page table and the footer; syncs; renames the
    /// file to its final name and syncs the directory. Returns the run, opened (its index comes
    /// from memory). A run with no record is allowed (zero blocks).
    package func finish() throws -> SortedRun {
        guard let handle else { throw StorageError.closed }
        try flushBlock()
        try flushOutput()
        let indexOffset = fileEnd
        let pageCount = L.pageCount(blocks: entries.count)
        let indexCount = entries.count * L.indexEntrySize
        let tableCount = pageCount * L.pageSummarySize
        var tail = [UInt8](repeating: 0, count: indexCount + tableCount + L.footerSize)
        tail.withUnsafeMutableBytes { t in
            for (i, entry) in entries.enumerated() { Self.store(entry, into: t, at: i * L.indexEntrySize) }
            for p in 0..<pageCount {
                let first = p * L.indexPageEntries, end = min(entries.count, first + L.indexPageEntries)
                let o = indexCount + p * L.pageSummarySize
                entries[end - 1].lastKey.store(into: t, at: o + L.summaryLastKeyOffset)
                t.storeLE(entries[first].fileOffset, at: o + L.summaryFirstOffset)
                let pageBytes = UnsafeRawBufferPointer(rebasing: t[(first * L.indexEntrySize)..<(end * L.indexEntrySize)])
                t.storeLE(CRC32C.checksum(pageBytes), at: o + L.summaryChecksumOffset)
            }
            let tableChecksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: t[indexCount..<(indexCount + tableCount)]))
            let f = indexCount + tableCount
            t.storeLE(indexOffset, at: f + L.footerIndexOffset)
            t.storeLE(UInt32(entries.count), at: f + L.footerBlockCount)
            t.storeLE(UInt32(SortedRun.highCompressionCount(entries)), at: f + L.footerHighCompressionBlocks)
            t.storeLE(records, at: f + L.footerRecordCount)
            t.storeLE(payloadTotal, at: f + L.footerPayloadBytes)
            t.storeLE(tableChecksum, at: f + L.footerIndexChecksum)
            t.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: t[f..<(f + L.footerChecksum)])), at: f + L.footerChecksum)
        }
        try handle.write(tail, at: indexOffset)
        try handle.syncData()
        try handle.close()
        self.handle = nil
        try fileSystem.rename(temporaryPath, to: path)
        try fileSystem.syncDirectory(directory)
        let size = indexOffset + UInt64(tail.count)
        let reader = try fileSystem.open(path, mode: .readOnly)
        return SortedRun(id: id, file: SegmentFile(reader), fileSize: size, version: L.formatVersion, indexOffset: indexOffset,
                         entries: entries, recordCount: records, payloadBytes: payloadTotal)
    }

    /// Gives up: closes and removes the temporary file (best effort).
    package func abandon() {
        if let handle { try? handle.close() }
        handle = nil
        try? fileSystem.removeFile(temporaryPath)
    }

    static func store(_ entry: RunBlockEntry, into t: UnsafeMutableRawBufferPointer, at o: Int) {
        entry.firstKey.store(into: t, at: o + L.entryFirstKeyOffset)
        entry.lastKey.store(into: t, at: o + L.entryLastKeyOffset)
        t.storeLE(entry.fileOffset, at: o + L.entryFileOffset)
        t.storeLE(entry.storedLength, at: o + L.entryStoredLengthOffset)
        t.storeLE(entry.rawLength, at: o + L.entryRawLengthOffset)
        t.storeLE(entry.recordCount, at: o + L.entryRecordCountOffset)
        t[o + L.entryCodecOffset] = entry.codec.rawValue
        t.storeLE(entry.checksum, at: o + L.entryChecksumOffset)
    }
}
