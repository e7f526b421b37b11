import CLZ4
import ScrollbackFormat
import ScrollbackIO
import Synchronization

/// One entry of a sealed segment's block index (spec/sealed-segment.md, "Block index").
struct SealedBlockEntry: Equatable {
    var rawStart: UInt32
    var rawLength: UInt32
    var fileOffset: UInt64
    var compressedLength: UInt32
    var checksum: UInt32
}

/// The decoded, validated header + footer + block index of a sealed segment. Immutable.
final class SealedIndex: Sendable {
    let salt: UInt32
    /// Length of the raw segment the file replaces: positions below it are addressable.
    let rawLength: Int
    let entries: [SealedBlockEntry]

    init(salt: UInt32, rawLength: Int, entries: [SealedBlockEntry]) {
        self.salt = salt
        self.rawLength = rawLength
        self.entries = entries
    }

    /// Index of the block holding raw offset `offset`, by binary search. O(log blocks).
    func blockIndex(containing offset: Int) -> Int? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if Int(entries[mid].rawStart) <= offset { low = mid + 1 } else { high = mid }
        }
        let index = low - 1
        guard index >= 0 else { return nil }
        let entry = entries[index]
        return offset < Int(entry.rawStart) + Int(entry.rawLength) ? index : nil
    }
}

/// A sealed (`.sealed`) segment file. The index is read and validated on first use.
/// Thread-safety: safe from any thread; the index loads once under a mutex.
final class SealedSegment: @unchecked Sendable {
    typealias L = SealedSegmentLayout

    let id: UInt32
    let file: SegmentFile
    let fileSize: UInt64
    private let loaded: Lock<SealedIndex?>

    init(id: UInt32, file: SegmentFile, fileSize: UInt64, index: SealedIndex? = nil) {
        self.id = id
        self.file = file
        self.fileSize = fileSize
        loaded = Lock(index)
    }

    var path: String { file.path }

    func index() throws -> SealedIndex {
        if let index = loaded.withLock({ $0 }) { return index }
        let index = try Self.readIndex(file.handle, id: id, fileSize: fileSize)
        loaded.withLock { $0 = index }
        return index
    }

    /// Reads and validates header, footer and index. Every structural rule of the spec is
    /// checked; damage throws `.corrupted` with the file offset.
    static func readIndex(_ handle: any FileHandle, id: UInt32, fileSize: UInt64) throws -> SealedIndex {
        let path = handle.path
        let minimum = UInt64(L.headerSize + L.footerSize)
        guard fileSize >= minimum else {
            throw StorageError.corrupted(file: path, offset: 0, reason: "sealed file of \(fileSize) bytes is shorter than header + footer")
        }
        let headerBytes = try handle.readBytes(count: L.headerSize, at: 0)
        let header = try headerBytes.withUnsafeBytes {
            try SegmentFileHeader.decode($0, file: path, magic: L.magic, version: L.formatVersion, expectedID: id)
        }
        let footerOffset = fileSize - UInt64(L.footerSize)
        let footerBytes = try handle.readBytes(count: L.footerSize, at: footerOffset)
        guard footerBytes.count == L.footerSize else {
            throw StorageError.corrupted(file: path, offset: footerOffset, reason: "sealed footer is short")
        }
        let (indexOffset, blockCount, rawLength, indexChecksum) = try footerBytes.withUnsafeBytes { f -> (UInt64, UInt32, UInt32, UInt32) in
            let stored = f.loadLE(UInt32.self, at: L.footerChecksum)
            guard stored == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: f[0..<L.footerChecksum])) else {
                throw StorageError.corrupted(file: path, offset: footerOffset, reason: "sealed footer checksum mismatch")
            }
            return (f.loadLE(UInt64.self, at: L.footerIndexOffset), f.loadLE(UInt32.self, at: L.footerBlockCount),
                    f.loadLE(UInt32.self, at: L.footerRawLength), f.loadLE(UInt32.self, at: L.footerIndexChecksum))
        }
        let indexBytesCount = UInt64(blockCount) * UInt64(L.indexEntrySize)
        guard indexOffset >= UInt64(L.headerSize), indexOffset <= footerOffset,
              footerOffset - indexOffset == indexBytesCount else {
            throw StorageError.corrupted(file: path, offset: footerOffset,
                                         reason: "footer index offset \(indexOffset) / block count \(blockCount) do not match the file size \(fileSize)")
        }
        guard rawLength >= UInt32(LogSegmentLayout.headerSize) else {
            throw StorageError.corrupted(file: path, offset: footerOffset + UInt64(L.footerRawLength),
                                         reason: "raw length \(rawLength) is shorter than a segment header")
        }
        let indexBytes = try handle.readBytes(count: Int(indexBytesCount), at: indexOffset)
        guard UInt64(indexBytes.count) == indexBytesCount else {
            throw StorageError.corrupted(file: path, offset: indexOffset, reason: "block index is short")
        }
        return try indexBytes.withUnsafeBytes { b -> SealedIndex in
            guard CRC32C.checksum(b) == indexChecksum else {
                throw StorageError.corrupted(file: path, offset: indexOffset, reason: "block index checksum mismatch")
            }
            var entries: [SealedBlockEntry] = []
            entries.reserveCapacity(Int(blockCount))
            var expectedRaw = UInt64(LogSegmentLayout.headerSize)
            var expectedFile = UInt64(L.headerSize)
            for i in 0..<Int(blockCount) {
                let o = i * L.indexEntrySize
                let entry = SealedBlockEntry(
                    rawStart: b.loadLE(UInt32.self, at: o + L.entryRawOffset),
                    rawLength: b.loadLE(UInt32.self, at: o + L.entryRawLength),
                    fileOffset: b.loadLE(UInt64.self, at: o + L.entryFileOffset),
                    compressedLength: b.loadLE(UInt32.self, at: o + L.entryCompressedLength),
                    checksum: b.loadLE(UInt32.self, at: o + L.entryChecksum))
                let bound = UInt64(LZ4_compressBound(Int32(clamping: entry.rawLength)))
                guard UInt64(entry.rawStart) == expectedRaw, entry.rawLength > 0,
                      entry.rawLength <= UInt32(LogSegmentLayout.maximumTransactionBytes),
                      entry.fileOffset == expectedFile, entry.compressedLength > 0,
                      UInt64(entry.compressedLength) <= bound else {
                    throw StorageError.corrupted(file: path, offset: indexOffset + UInt64(o),
                                                 reason: "block index entry \(i) is inconsistent")
                }
                expectedRaw += UInt64(entry.rawLength)
                expectedFile += UInt64(entry.compressedLength)
                entries.append(entry)
            }
            guard expectedRaw == UInt64(rawLength), expectedFile == indexOffset else {
                throw StorageError.corrupted(file: path, offset: indexOffset,
                                             reason: "blocks cover \(expectedRaw) raw / \(expectedFile) file bytes, footer says \(rawLength) / \(indexOffset)")
            }
            return SealedIndex(salt: header.salt, rawLength: Int(rawLength), entries: entries)
        }
    }

    /// Reads, verifies and decompresses block `index` (no caching).
    static func decompress(_ handle: any FileHandle, _ entry: SealedBlockEntry) throws -> DecompressedBlock {
        let path = handle.path
        let block = DecompressedBlock(count: Int(entry.rawLength), rawStart: Int(entry.rawStart))
        try withUnsafeTemporaryAllocation(byteCount: Int(entry.compressedLength), alignment: 16) { compressed in
            let n = try handle.read(into: compressed, at: entry.fileOffset)
            guard n == compressed.count else {
                throw StorageError.corrupted(file: path, offset: entry.fileOffset + UInt64(n), reason: "sealed block is short")
            }
            guard CRC32C.checksum(UnsafeRawBufferPointer(compressed)) == entry.checksum else {
                throw StorageError.corrupted(file: path, offset: entry.fileOffset, reason: "sealed block checksum mismatch")
            }
            let produced = LZ4_decompress_safe(
                compressed.baseAddress!.assumingMemoryBound(to: CChar.self),
                block.base.assumingMemoryBound(to: CChar.self),
                Int32(compressed.count), Int32(block.count))
            guard produced == Int32(block.count) else {
                throw StorageError.corrupted(file: path, offset: entry.fileOffset,
                                             reason: "sealed block does not decompress to \(block.count) bytes (got \(produced))")
            }
        }
        return block
    }

    /// The block holding raw offset `offset`, through `cache`.
    func block(containing offset: Int, index: SealedIndex, cache: BlockCache) throws -> DecompressedBlock? {
        guard let blockNumber = index.blockIndex(containing: offset) else { return nil }
        let key = BlockKey(segment: id, block: UInt32(blockNumber))
        if let cached = cache.lookup(key) { return cached }
        let block = try Self.decompress(file.handle, index.entries[blockNumber])
        return cache.insert(key, block)
    }

    /// The whole raw segment image (header bytes synthesized), every block verified.
    /// Used by recovery replay and by crash-leftover validation.
    func rawImage() throws -> [UInt8] {
        let index = try index()
        var image = [UInt8](repeating: 0, count: index.rawLength)
        let header = SegmentFileHeader(segmentID: id, salt: index.salt)
            .encode(magic: LogSegmentLayout.magic, version: LogSegmentLayout.formatVersion)
        image.replaceSubrange(0..<header.count, with: header)
        for entry in index.entries {
            let block = try Self.decompress(file.handle, entry)
            image.withUnsafeMutableBytes { target in
                (target.baseAddress! + block.rawStart).copyMemory(from: block.base, byteCount: block.count)
            }
        }
        return image
    }
}

/// Writes sealed segment files (spec/sealed-segment.md).
enum SealedSegmentWriter {
    typealias L = SealedSegmentLayout

    /// Packs the raw segment `image` (whole file bytes, header included) into a sealed file
    /// written through `handle` (an empty file), then returns its index and size.
    /// Verifies every frame and that the segment ends at a commit boundary (throws
    /// `.corrupted` naming `rawPath` otherwise). Does not sync.
    static func write(image: UnsafeRawBufferPointer, rawPath: String, id: UInt32, salt: UInt32,
                      blockSize: Int, to handle: any FileHandle) throws -> (SealedIndex, UInt64) {
        var entries = try blockBoundaries(image, rawPath: rawPath, salt: salt, blockSize: blockSize)
        let header = SegmentFileHeader(segmentID: id, salt: salt).encode(magic: L.magic, version: L.formatVersion)
        try handle.write(header, at: 0)
        let indexOffset = try writeBlocks(image, &entries, rawPath: rawPath, to: handle)
        let tail = indexAndFooter(entries, indexOffset: indexOffset, rawLength: image.count)
        try handle.write(tail, at: indexOffset)
        let index = SealedIndex(salt: salt, rawLength: image.count, entries: entries)
        return (index, indexOffset + UInt64(tail.count))
    }

    /// 1. Block boundaries at frame boundaries (each block about `blockSize` raw bytes),
    /// verifying each frame; the entries' file fields are filled in by `writeBlocks`.
    private static func blockBoundaries(_ image: UnsafeRawBufferPointer, rawPath: String, salt: UInt32,
                                        blockSize: Int) throws -> [SealedBlockEntry] {
        var entries: [SealedBlockEntry] = []
        var blockStart = LogSegmentLayout.headerSize
        var offset = blockStart
        var lastType = LogRecordType.commit
        func endBlock() {
            entries.append(SealedBlockEntry(rawStart: UInt32(blockStart), rawLength: UInt32(offset - blockStart),
                                            fileOffset: 0, compressedLength: 0, checksum: 0))
            blockStart = offset
        }
        while offset < image.count {
            let (parsed, reason) = LogFrame.parse(image, at: offset, salt: salt)
            guard let frame = parsed else {
                throw StorageError.corrupted(file: rawPath, offset: UInt64(offset), reason: reason)
            }
            if offset > blockStart && frame.end - blockStart > blockSize { endBlock() }
            lastType = frame.type
            offset = frame.end
        }
        guard lastType == LogRecordType.commit else {
            throw StorageError.corrupted(file: rawPath, offset: UInt64(image.count),
                                         reason: "segment does not end with a commit record")
        }
        if offset > blockStart { endBlock() }
        return entries
    }

    /// 2. The compressed blocks after the header, buffered into ~1 MiB writes; fills in each
    /// entry's file offset, compressed length and checksum. Returns where the index goes.
    private static func writeBlocks(_ image: UnsafeRawBufferPointer, _ entries: inout [SealedBlockEntry], rawPath: String,
                                    to handle: any FileHandle) throws -> UInt64 {
        var fileOffset = UInt64(L.headerSize)
        let largest = entries.map { Int($0.rawLength) }.max() ?? 0
        let bound = Int(LZ4_compressBound(Int32(largest)))
        let flushThreshold = 1 << 20
        var output = [UInt8](repeating: 0, count: max(bound, 0) + flushThreshold)
        var pending = 0
        var pendingOffset = fileOffset
        func flush() throws {
            try output.withUnsafeBytes { try handle.write(UnsafeRawBufferPointer(rebasing: $0[0..<pending]), at: pendingOffset) }
            pendingOffset += UInt64(pending)
            pending = 0
        }
        for i in entries.indices {
            let entry = entries[i]
            if pending > 0 && pending + bound > output.count { try flush() }
            let produced = output.withUnsafeMutableBytes { out -> Int32 in
                LZ4_compress_default(
                    (image.baseAddress! + Int(entry.rawStart)).assumingMemoryBound(to: CChar.self),
                    (out.baseAddress! + pending).assumingMemoryBound(to: CChar.self),
                    Int32(entry.rawLength), Int32(out.count - pending))
            }
            guard produced > 0 else {
                throw StorageError.limitExceeded("LZ4 could not compress a \(entry.rawLength)-byte block of \(rawPath)")
            }
            entries[i].checksum = output.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[pending..<(pending + Int(produced))]))
            }
            entries[i].fileOffset = fileOffset
            entries[i].compressedLength = UInt32(produced)
            fileOffset += UInt64(produced)
            pending += Int(produced)
        }
        if pending > 0 { try flush() }
        return fileOffset
    }

    /// 3. The block index and the footer, as the bytes that end the file.
    private static func indexAndFooter(_ entries: [SealedBlockEntry], indexOffset: UInt64, rawLength: Int) -> [UInt8] {
        var tail = [UInt8](repeating: 0, count: entries.count * L.indexEntrySize + L.footerSize)
        tail.withUnsafeMutableBytes { t in
            for (i, entry) in entries.enumerated() {
                let o = i * L.indexEntrySize
                t.storeLE(entry.rawStart, at: o + L.entryRawOffset)
                t.storeLE(entry.rawLength, at: o + L.entryRawLength)
                t.storeLE(entry.fileOffset, at: o + L.entryFileOffset)
                t.storeLE(entry.compressedLength, at: o + L.entryCompressedLength)
                t.storeLE(entry.checksum, at: o + L.entryChecksum)
            }
            let f = entries.count * L.indexEntrySize
            t.storeLE(indexOffset, at: f + L.footerIndexOffset)
            t.storeLE(UInt32(entries.count), at: f + L.footerBlockCount)
            t.storeLE(UInt32(rawLength), at: f + L.footerRawLength)
            t.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: t[0..<f])), at: f + L.footerIndexChecksum)
            t.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: t[f..<(f + L.footerChecksum)])), at: f + L.footerChecksum)
        }
        return tail
    }
}
