import CLZ4
import Dispatch
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
/// With `compressionThreads` above 1, finished blocks wait in a batch of `parallelBatchBlocks`
/// and the batch is compressed on the calling thread and `compressionThreads - 1` threads of
/// Dispatch's pool at once (block `i` on thread `i mod threads`); the blocks are then stored in
/// order, so the file is byte for byte the one a single thread writes. (LZ4 HC compresses these
/// records at about 110 MB/s at level 2 on one core of the reference machine, LZ4's fast mode
/// at about 630 MB/s.)
///
/// Not thread-safe: one writer per run, used from one thread.
package final class SortedRunWriter {
    typealias L = SortedRunLayout

    package let id: UInt32
    let fileSystem: any FileSystem
    let directory: String
    let blockSize: Int
    let compression: RunCompression
    let compressionThreads: Int
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
    private var compressed: [UInt8] = []

    /// Blocks encoded but not compressed yet (only with `compressionThreads` > 1): their
    /// encodings back to back in `batchRaw`.
    private var batch: [PendingBlock] = []
    private var batchRaw: [UInt8] = []
    private var batchRecords: UInt64 = 0

    private struct PendingBlock {
        var rawStart: Int
        var rawLength: Int
        var first: RunKey
        var last: RunKey
        var records: Int
        var payloadBytes: Int
    }

    /// Blocks compressed together when several threads compress (about 512 KiB of encodings
    /// at the default block size: a few milliseconds of LZ4 HC per thread, so the hand-over
    /// to the pool costs little). A batch is also compressed once its encodings reach this
    /// many block sizes (records larger than a block make larger blocks).
    static let parallelBatchBlocks = 64

    /// Creates `run-<id>.run.tmp` in `directory` (replacing a stale one) and writes the header.
    /// `compressionThreads` (1 … 64): threads that compress blocks (see the type's doc).
    package init(fileSystem: any FileSystem, directory: String, id: UInt32, blockSize: Int = L.defaultBlockSize,
                 compression: RunCompression = .fast, compressionThreads: Int = 1) throws {
        guard (64...(64 << 20)).contains(blockSize) else {
            throw StorageError.invalidArgument("run blockSize \(blockSize) outside 64 ... 64 MiB")
        }
        if case .high(let level) = compression, !(1...12).contains(level) {
            throw StorageError.invalidArgument("LZ4 HC level \(level) outside 1 ... 12")
        }
        guard (1...64).contains(compressionThreads) else {
            throw StorageError.invalidArgument("run compressionThreads \(compressionThreads) outside 1 ... 64")
        }
        self.compressionThreads = compressionThreads
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
    package var recordCount: UInt64 { records + batchRecords + UInt64(blockCount) }

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

    /// Encodes the current block and compresses and buffers it (or, with several compression
    /// threads, adds it to the batch, compressing the batch when it is full).
    private func flushBlock() throws {
        guard blockCount > 0, let last = previous else { return }
        let rawLength = 4 + keys.count + tags.count + lengths.count + payloads.count
        let parallel = compressionThreads > 1
        let rawStart = parallel ? batchRaw.count : 0
        if !parallel { scratch.removeAll(keepingCapacity: true) }
        func encode(into raw: inout [UInt8]) {
            // (Not for the batch: reserving exactly the next block's bytes each time would defeat
            // the array's doubling and copy the batch over and over.)
            if !parallel { raw.reserveCapacity(rawLength) }
            withUnsafeBytes(of: UInt32(blockCount).littleEndian) { raw.append(contentsOf: $0) }
            raw.append(contentsOf: keys.bytes)
            raw.append(contentsOf: tags.bytes)
            raw.append(contentsOf: lengths.bytes)
            raw.append(contentsOf: payloads.bytes)
        }
        let block = PendingBlock(rawStart: rawStart, rawLength: rawLength, first: blockFirst, last: last,
                                 records: blockCount, payloadBytes: payloads.count)
        if parallel {
            encode(into: &batchRaw)
            batch.append(block)
            batchRecords += UInt64(block.records)
        } else {
            encode(into: &scratch)
        }
        keys.bytes.removeAll(keepingCapacity: true)
        tags.bytes.removeAll(keepingCapacity: true)
        lengths.bytes.removeAll(keepingCapacity: true)
        payloads.bytes.removeAll(keepingCapacity: true)
        blockCount = 0
        if parallel {
            if batch.count >= Self.parallelBatchBlocks || batchRaw.count >= Self.parallelBatchBlocks * blockSize {
                try compressBatch()
            }
            return
        }
        let bound = Int(LZ4_compressBound(Int32(rawLength)))
        if compressed.count < bound { compressed = [UInt8](repeating: 0, count: bound) }
        let produced = scratch.withUnsafeBytes { raw in
            compressed.withUnsafeMutableBytes { Self.compress(raw, into: $0, compression) }
        }
        try scratch.withUnsafeBytes { raw in
            try compressed.withUnsafeBytes { try store(block, raw: raw, compressed: UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
        }
    }

    /// Compresses the batch's blocks on `compressionThreads` threads and stores them in order.
    private func compressBatch() throws {
        guard !batch.isEmpty else { return }
        let blocks = batch
        // Emptied whatever happens below: a failed batch is not stored again by a later call.
        defer {
            batch.removeAll(keepingCapacity: true)
            batchRaw.removeAll(keepingCapacity: true)
            batchRecords = 0
        }
        var starts: [Int] = []   // each block's slot in `compressed`
        starts.reserveCapacity(blocks.count + 1)
        var total = 0
        for block in blocks {
            starts.append(total)
            total += Int(LZ4_compressBound(Int32(block.rawLength)))
        }
        starts.append(total)
        let slots = starts
        if compressed.count < total { compressed = [UInt8](repeating: 0, count: total) }
        var produced = [Int](repeating: 0, count: blocks.count)
        let threads = min(compressionThreads, blocks.count)
        let compression = compression
        batchRaw.withUnsafeBytes { raw in
            compressed.withUnsafeMutableBytes { out in
                produced.withUnsafeMutableBufferPointer { sizes in
                    // Each thread writes only its own blocks' slots and sizes.
                    nonisolated(unsafe) let raw = raw, out = out, sizes = sizes
                    DispatchQueue.concurrentPerform(iterations: threads) { thread in
                        for i in stride(from: thread, to: blocks.count, by: threads) {
                            let source = UnsafeRawBufferPointer(rebasing: raw[blocks[i].rawStart..<(blocks[i].rawStart + blocks[i].rawLength)])
                            let target = UnsafeMutableRawBufferPointer(rebasing: out[slots[i]..<slots[i + 1]])
                            sizes[i] = Self.compress(source, into: target, compression)
                        }
                    }
                }
            }
        }
        try batchRaw.withUnsafeBytes { raw in
            try compressed.withUnsafeBytes { out in
                for (i, block) in blocks.enumerated() {
                    try store(block, raw: UnsafeRawBufferPointer(rebasing: raw[block.rawStart..<(block.rawStart + block.rawLength)]),
                              compressed: UnsafeRawBufferPointer(rebasing: out[slots[i]..<(slots[i] + produced[i])]))
                }
            }
        }
    }

    /// LZ4 of `source` into `target` (at least `LZ4_compressBound` bytes); 0 when it failed.
    /// Thread-safe (LZ4 HC allocates its state per call).
    private static func compress(_ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer,
                                 _ compression: RunCompression) -> Int {
        let from = source.baseAddress!.assumingMemoryBound(to: CChar.self)
        let to = target.baseAddress!.assumingMemoryBound(to: CChar.self)
        let produced: Int32
        switch compression {
        case .fast:
            produced = LZ4_compress_default(from, to, Int32(source.count), Int32(target.count))
        case .high(let level):
            produced = LZ4_compress_HC(from, to, Int32(source.count), Int32(target.count), Int32(level))
        }
        return Int(max(0, produced))
    }

    /// Buffers one block: compressed, or stored as encoded when compression does not help.
    private func store(_ block: PendingBlock, raw: UnsafeRawBufferPointer, compressed: UnsafeRawBufferPointer) throws {
        let codec: RunBlockCodec
        let bytes: UnsafeRawBufferPointer
        // Compression that saves less than 1/16 (or 16 bytes) is not worth a decompression on
        // every read.
        if compressed.count > 0 && compressed.count + max(raw.count / 16, 16) <= raw.count {
            codec = compression == .fast ? .lz4 : .lz4HighCompression
            bytes = compressed
        } else {
            codec = .stored
            bytes = raw
        }
        output.append(contentsOf: bytes)
        entries.append(RunBlockEntry(firstKey: block.first, lastKey: block.last, fileOffset: fileEnd, storedLength: UInt32(bytes.count),
                                     rawLength: UInt32(raw.count), recordCount: UInt32(block.records), codec: codec,
                                     checksum: CRC32C.checksum(bytes)))
        fileEnd += UInt64(bytes.count)
        records += UInt64(block.records)
        payloadTotal += UInt64(block.payloadBytes)
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
        try compressBatch()
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
