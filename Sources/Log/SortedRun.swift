import CLZ4
import ScrollbackFormat
import ScrollbackIO
import Synchronization

/// A sorted-run file (`run-XXXXXXXX.run`, spec/sorted-run.md): records keyed by `RunKey` in
/// strictly increasing order, packed into blocks (LZ4 or stored) with a block index and a
/// footer. Immutable once written.
///
/// `open` reads and validates the header, the footer and (version 2) the page table: 40
/// bytes per 64 blocks, so opening a run of 84 MB reads about 13 KB, where reading its whole
/// index (version 1, 80 bytes per block) read 1.66 MB — every query of a cold store that
/// touched a run not yet open paid that. An index page (64 entries, 5 KiB) is read, checked
/// (its CRC-32C in the page table and every structural rule of its entries) and kept in
/// memory on first use; blocks are read, checked, decompressed and decoded on first use and
/// kept in a `RunBlockCache`. A version-1 run reads its whole index at open, as before.
///
/// Thread-safety: every method may be called from any thread; loaded index pages are
/// immutable and published in per-page atomic slots (no lock on any lookup; two threads
/// loading the same page both read it, one keeps its copy).
package final class SortedRun: @unchecked Sendable {
    typealias L = SortedRunLayout

    package let id: UInt32
    let file: SegmentFile
    package let fileSize: UInt64
    /// The file's format version (1 or 2).
    package let version: UInt32
    package let blockCount: Int
    package let recordCount: UInt64
    package let payloadBytes: UInt64
    /// The blocks' codecs, counted (for compaction's "worth recompressing" decision): from the
    /// footer in version 2, counted from the index in version 1.
    package let highCompressionBlocks: Int
    let indexOffset: UInt64
    /// One summary per index page: its last key, its first block's offset, its checksum.
    let summaries: [RunPageSummary]
    /// One slot per index page: nil until the page is loaded, then its retained page.
    private let slots: UnsafeMutablePointer<Atomic<Unmanaged<RunIndexPage>?>>
    private let loaded = Atomic<Int>(0)

    init(id: UInt32, file: SegmentFile, fileSize: UInt64, version: UInt32, indexOffset: UInt64, blockCount: Int,
         recordCount: UInt64, payloadBytes: UInt64, highCompressionBlocks: Int, summaries: [RunPageSummary],
         loadedPages: [RunIndexPage?]) {
        self.id = id
        self.file = file
        self.fileSize = fileSize
        self.version = version
        self.indexOffset = indexOffset
        self.blockCount = blockCount
        self.recordCount = recordCount
        self.payloadBytes = payloadBytes
        self.highCompressionBlocks = highCompressionBlocks
        self.summaries = summaries
        slots = .allocate(capacity: max(1, loadedPages.count))
        for (p, page) in loadedPages.enumerated() {
            (slots + p).initialize(to: Atomic<Unmanaged<RunIndexPage>?>(page.map { Unmanaged.passRetained($0) }))
        }
        loaded.store(loadedPages.reduce(0) { $0 + ($1 == nil ? 0 : 1) }, ordering: .releasing)
    }

    deinit {
        for p in 0..<summaries.count { slots[p].load(ordering: .acquiring)?.release() }
        slots.deinitialize(count: summaries.count)
        slots.deallocate()
    }

    /// A run whose whole index is in memory (a writer's result, a version-1 file).
    convenience init(id: UInt32, file: SegmentFile, fileSize: UInt64, version: UInt32, indexOffset: UInt64,
                     entries: [RunBlockEntry], recordCount: UInt64, payloadBytes: UInt64) {
        let (summaries, pages) = Self.paginate(entries)
        self.init(id: id, file: file, fileSize: fileSize, version: version, indexOffset: indexOffset, blockCount: entries.count,
                  recordCount: recordCount, payloadBytes: payloadBytes,
                  highCompressionBlocks: Self.highCompressionCount(entries),
                  summaries: summaries, loadedPages: pages)
    }

    /// Blocks of `entries` compressed with LZ4 HC (the footer's count in version 2).
    static func highCompressionCount(_ entries: [RunBlockEntry]) -> Int {
        entries.reduce(0) { $0 + ($1.codec == .lz4HighCompression ? 1 : 0) }
    }

    /// Splits a whole index into pages of `indexPageEntries` and their summaries. Every page
    /// is in memory from the start and never read from the file, so the summaries carry no
    /// checksum (0; version 1 has none on disk, a writer's are in the file it wrote).
    static func paginate(_ entries: [RunBlockEntry]) -> ([RunPageSummary], [RunIndexPage?]) {
        var summaries: [RunPageSummary] = []
        var pages: [RunIndexPage?] = []
        var start = 0
        while start < entries.count {
            let end = min(entries.count, start + L.indexPageEntries)
            let slice = Array(entries[start..<end])
            summaries.append(RunPageSummary(lastKey: slice[slice.count - 1].lastKey, firstOffset: slice[0].fileOffset, checksum: 0))
            pages.append(RunIndexPage(first: start, entries: slice))
            start = end
        }
        return (summaries, pages)
    }

    package var path: String { file.path }
    package var pageCount: Int { summaries.count }
    /// Index pages read so far (all of them for a version-1 run or a writer's result).
    package var loadedPageCount: Int { loaded.load(ordering: .acquiring) }
    /// The last key of the run (nil when it is empty). No I/O.
    package var lastKey: RunKey? { summaries.last?.lastKey }
    /// The first key of the run (nil when it is empty); reads the first index page if needed.
    package func firstKey() throws -> RunKey? { blockCount == 0 ? nil : try entry(0).firstKey }

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

    /// Opens and validates run `id` at `path`: header, footer and page table (version 2) or
    /// whole block index (version 1) — every rule of spec/sorted-run.md, "Validity", except
    /// the per-page and per-block checks done on first use. Damage throws
    /// `.corrupted(file:offset:reason:)`; a newer version `.unsupportedVersion`.
    package static func open(fileSystem: any FileSystem, path: String, id: UInt32) throws -> SortedRun {
        let handle = try fileSystem.open(path, mode: .readOnly)
        do {
            return try open(handle, id: id)
        } catch {
            try? handle.close()
            throw error
        }
    }

    private static func open(_ handle: any FileHandle, id: UInt32) throws -> SortedRun {
        let path = handle.path
        let fileSize = try handle.size()
        guard fileSize >= UInt64(L.headerSize + L.footerSize) else {
            throw StorageError.corrupted(file: path, offset: 0, reason: "run file of \(fileSize) bytes is shorter than header + footer")
        }
        let header = try handle.readBytes(count: L.headerSize, at: 0)
        let version = try header.withUnsafeBytes { try decodeHeader($0, file: path, expectedID: id) }
        let footerOffset = fileSize - UInt64(L.footerSize)
        let footer = try handle.readBytes(count: L.footerSize, at: footerOffset)
        guard footer.count == L.footerSize else {
            throw StorageError.corrupted(file: path, offset: footerOffset, reason: "run footer is short")
        }
        let fields = try footer.withUnsafeBytes { try decodeFooter($0, version: version, file: path, at: footerOffset) }
        let blocks = Int(fields.blockCount)
        let indexBytes = UInt64(blocks) * UInt64(L.indexEntrySize)
        let tableBytes = version == L.unpagedVersion ? 0 : UInt64(L.pageCount(blocks: blocks) * L.pageSummarySize)
        guard fields.indexOffset >= UInt64(L.headerSize), fields.indexOffset <= footerOffset,
              footerOffset - fields.indexOffset == indexBytes + tableBytes else {
            throw StorageError.corrupted(file: path, offset: footerOffset,
                                         reason: "footer index offset \(fields.indexOffset) / block count \(blocks) do not match the file size \(fileSize)")
        }
        let file = SegmentFile(handle)
        if version == L.unpagedVersion {
            let entries = try readWholeIndex(handle, fields: fields)
            return SortedRun(id: id, file: file, fileSize: fileSize, version: version, indexOffset: fields.indexOffset,
                             entries: entries, recordCount: fields.recordCount, payloadBytes: fields.payloadBytes)
        }
        let tableOffset = fields.indexOffset + indexBytes
        let table = try handle.readBytes(count: Int(tableBytes), at: tableOffset)
        guard UInt64(table.count) == tableBytes else {
            throw StorageError.corrupted(file: path, offset: tableOffset, reason: "page table is short")
        }
        let summaries = try table.withUnsafeBytes { bytes -> [RunPageSummary] in
            guard CRC32C.checksum(bytes) == fields.indexChecksum else {
                throw StorageError.corrupted(file: path, offset: tableOffset, reason: "page table checksum mismatch")
            }
            return try decodePageTable(bytes, fields: fields, file: path, at: tableOffset)
        }
        return SortedRun(id: id, file: file, fileSize: fileSize, version: version, indexOffset: fields.indexOffset,
                         blockCount: blocks, recordCount: fields.recordCount, payloadBytes: fields.payloadBytes,
                         highCompressionBlocks: Int(fields.highCompressionBlocks), summaries: summaries,
                         loadedPages: [RunIndexPage?](repeating: nil, count: summaries.count))
    }

    /// Version 1: the whole index, checked against the footer's crc and every rule.
    private static func readWholeIndex(_ handle: any FileHandle, fields: FooterFields) throws -> [RunBlockEntry] {
        let path = handle.path
        let indexBytes = Int(fields.blockCount) * L.indexEntrySize
        let index = try handle.readBytes(count: indexBytes, at: fields.indexOffset)
        guard index.count == indexBytes else {
            throw StorageError.corrupted(file: path, offset: fields.indexOffset, reason: "block index is short")
        }
        let entries = try index.withUnsafeBytes { bytes -> [RunBlockEntry] in
            guard CRC32C.checksum(bytes) == fields.indexChecksum else {
                throw StorageError.corrupted(file: path, offset: fields.indexOffset, reason: "block index checksum mismatch")
            }
            return try decodeIndex(bytes, count: Int(fields.blockCount), first: 0, file: path, at: fields.indexOffset)
        }
        let end = try checkEntries(entries, first: 0, startingAt: UInt64(L.headerSize), after: nil, file: path,
                                   indexOffset: fields.indexOffset)
        let records = entries.reduce(UInt64(0)) { $0 + UInt64($1.recordCount) }
        guard end == fields.indexOffset, records == fields.recordCount else {
            throw StorageError.corrupted(file: path, offset: fields.indexOffset,
                                         reason: "blocks cover \(end) bytes and \(records) records, footer says \(fields.indexOffset) / \(fields.recordCount)")
        }
        return entries
    }

    /// The page table's own rules: pages start at the first block and in increasing order,
    /// before the index; last keys strictly increase; reserved bytes zero.
    static func decodePageTable(_ b: UnsafeRawBufferPointer, fields: FooterFields, file: String, at tableOffset: UInt64) throws
        -> [RunPageSummary] {
        let count = b.count / L.pageSummarySize
        var summaries: [RunPageSummary] = []
        summaries.reserveCapacity(count)
        for p in 0..<count {
            let o = p * L.pageSummarySize
            let summary = RunPageSummary(lastKey: RunKey.load(b, at: o + L.summaryLastKeyOffset),
                                         firstOffset: b.loadLE(UInt64.self, at: o + L.summaryFirstOffset),
                                         checksum: b.loadLE(UInt32.self, at: o + L.summaryChecksumOffset))
            let previous = summaries.last
            guard b.loadLE(UInt32.self, at: o + L.summaryReservedOffset) == 0,
                  summary.firstOffset < fields.indexOffset,
                  p == 0 ? summary.firstOffset == UInt64(L.headerSize) : summary.firstOffset > previous!.firstOffset,
                  previous.map({ $0.lastKey < summary.lastKey }) ?? true else {
                throw StorageError.corrupted(file: file, offset: tableOffset + UInt64(o), reason: "page table entry \(p) is inconsistent")
            }
            summaries.append(summary)
        }
        if count == 0, fields.indexOffset != UInt64(L.headerSize) {
            throw StorageError.corrupted(file: file, offset: tableOffset, reason: "a run without blocks has its index at \(fields.indexOffset), not 32")
        }
        guard fields.highCompressionBlocks <= fields.blockCount else {
            throw StorageError.corrupted(file: file, offset: tableOffset, reason: "footer counts \(fields.highCompressionBlocks) LZ4 HC blocks of \(fields.blockCount)")
        }
        return summaries
    }

    /// Checks the header and returns the file's version; throws `.notAStore` for a foreign magic.
    @discardableResult
    package static func decodeHeader(_ bytes: UnsafeRawBufferPointer, file: String, expectedID: UInt32?) throws -> UInt32 {
        guard bytes.count >= L.headerSize else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "file shorter than its \(L.headerSize)-byte header")
        }
        guard bytes.loadLE(UInt32.self, at: L.headerChecksumOffset)
                == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<L.headerChecksumOffset])) else {
            throw StorageError.corrupted(file: file, offset: 0, reason: "run header checksum mismatch")
        }
        guard bytes.loadLE(UInt64.self, at: L.headerMagicOffset) == L.magic else { throw StorageError.notAStore(path: file) }
        let version = bytes.loadLE(UInt32.self, at: L.headerVersionOffset)
        guard version == L.formatVersion || version == L.unpagedVersion else {
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
        return version
    }

    struct FooterFields {
        var indexOffset: UInt64
        var blockCount: UInt32
        var highCompressionBlocks: UInt32
        var recordCount: UInt64
        var payloadBytes: UInt64
        var indexChecksum: UInt32
    }

    static func decodeFooter(_ f: UnsafeRawBufferPointer, version: UInt32, file: String, at offset: UInt64) throws -> FooterFields {
        guard f.loadLE(UInt32.self, at: L.footerChecksum) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: f[0..<L.footerChecksum])) else {
            throw StorageError.corrupted(file: file, offset: offset, reason: "run footer checksum mismatch")
        }
        let highCompression = f.loadLE(UInt32.self, at: L.footerHighCompressionBlocks)
        guard version != L.unpagedVersion || highCompression == 0, f.loadLE(UInt64.self, at: L.footerReserved2) == 0 else {
            throw StorageError.corrupted(file: file, offset: offset + UInt64(L.footerHighCompressionBlocks), reason: "run footer reserved bytes are not zero")
        }
        return FooterFields(indexOffset: f.loadLE(UInt64.self, at: L.footerIndexOffset),
                            blockCount: f.loadLE(UInt32.self, at: L.footerBlockCount),
                            highCompressionBlocks: highCompression,
                            recordCount: f.loadLE(UInt64.self, at: L.footerRecordCount),
                            payloadBytes: f.loadLE(UInt64.self, at: L.footerPayloadBytes),
                            indexChecksum: f.loadLE(UInt32.self, at: L.footerIndexChecksum))
    }

    /// Decodes `count` index entries; `first` is the block number of the first (for messages),
    /// `at` the file offset of the first entry.
    static func decodeIndex(_ b: UnsafeRawBufferPointer, count: Int, first: Int, file: String, at entriesOffset: UInt64) throws
        -> [RunBlockEntry] {
        var entries: [RunBlockEntry] = []
        entries.reserveCapacity(count)
        for i in 0..<count {
            let o = i * L.indexEntrySize
            let codecByte = b[o + L.entryCodecOffset]
            guard let codec = RunBlockCodec(rawValue: codecByte) else {
                throw StorageError.corrupted(file: file, offset: entriesOffset + UInt64(o + L.entryCodecOffset),
                                             reason: "block \(first + i) has unknown codec \(codecByte)")
            }
            for r in 0..<7 where b[o + L.entryReservedOffset + r] != 0 {
                throw StorageError.corrupted(file: file, offset: entriesOffset + UInt64(o + L.entryReservedOffset),
                                             reason: "block \(first + i) index entry reserved bytes are not zero")
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

    /// The structural rules of consecutive index entries (blocks `first`…): each block starts
    /// where the one before ended (the first at `start`), lengths and counts in range, keys
    /// increasing within and across blocks (the first block's first key after `after`).
    /// Returns where the last block ends.
    static func checkEntries(_ entries: [RunBlockEntry], first: Int, startingAt start: UInt64, after: RunKey?, file: String,
                             indexOffset: UInt64) throws -> UInt64 {
        var expectedOffset = start
        var previousLast = after
        for (i, entry) in entries.enumerated() {
            let at = indexOffset + UInt64((first + i) * L.indexEntrySize)
            let bound = UInt64(LZ4_compressBound(Int32(clamping: entry.rawLength)))
            let storedOK = entry.codec == .stored ? entry.storedLength == entry.rawLength
                : (entry.storedLength > 0 && UInt64(entry.storedLength) <= bound)
            guard entry.fileOffset == expectedOffset, entry.rawLength >= 4,
                  entry.rawLength <= UInt32(L.maximumBlockBytes), storedOK,
                  entry.recordCount >= 1, entry.recordCount <= UInt32(L.maximumRecordsPerBlock),
                  entry.firstKey <= entry.lastKey, (entry.recordCount == 1) == (entry.firstKey == entry.lastKey) else {
                throw StorageError.corrupted(file: file, offset: at, reason: "block index entry \(first + i) is inconsistent")
            }
            if let previousLast, !(previousLast < entry.firstKey) {
                throw StorageError.corrupted(file: file, offset: at, reason: "block \(first + i) does not start after the block before ends")
            }
            previousLast = entry.lastKey
            expectedOffset += UInt64(entry.storedLength)
        }
        return expectedOffset
    }

    // MARK: Index pages

    /// Index page `p`, read and checked on first use. Cost when loaded: one atomic load;
    /// otherwise one `pread` of up to 5 KiB and its checks.
    package func page(_ p: Int) throws -> RunIndexPage {
        guard p >= 0, p < summaries.count else {
            throw StorageError.invalidArgument("run \(id) has \(summaries.count) index pages, not page \(p)")
        }
        if let page = slots[p].load(ordering: .acquiring) { return page.takeUnretainedValue() }
        return try pageSlow(p)
    }

    /// `body` with index page `p` (loaded on first use), without retaining it: the hot path of
    /// lookups.
    @inline(__always)
    func withPage<R>(_ p: Int, _ body: (RunIndexPage) throws -> R) throws -> R {
        if let page = slots[p].load(ordering: .acquiring) { return try page._withUnsafeGuaranteedRef(body) }
        return try body(pageSlow(p))
    }

    @inline(never)
    private func pageSlow(_ p: Int) throws -> RunIndexPage {
        let page = try loadPage(p)
        let retained = Unmanaged.passRetained(page)
        let (exchanged, existing) = slots[p].compareExchange(expected: nil, desired: retained, ordering: .acquiringAndReleasing)
        guard exchanged else {
            retained.release()
            return existing!.takeUnretainedValue()
        }
        loaded.add(1, ordering: .relaxed)
        return page
    }

    private func loadPage(_ p: Int) throws -> RunIndexPage {
        let first = p * L.indexPageEntries
        let count = min(L.indexPageEntries, blockCount - first)
        let offset = indexOffset + UInt64(first * L.indexEntrySize)
        let bytes = try file.handle.readBytes(count: count * L.indexEntrySize, at: offset)
        guard bytes.count == count * L.indexEntrySize else {
            throw StorageError.corrupted(file: path, offset: offset, reason: "index page \(p) is short")
        }
        let summary = summaries[p]
        let entries = try bytes.withUnsafeBytes { b -> [RunBlockEntry] in
            guard CRC32C.checksum(b) == summary.checksum else {
                throw StorageError.corrupted(file: path, offset: offset, reason: "index page \(p) checksum mismatch")
            }
            return try Self.decodeIndex(b, count: count, first: first, file: path, at: offset)
        }
        let end = try Self.checkEntries(entries, first: first, startingAt: summary.firstOffset,
                                        after: p > 0 ? summaries[p - 1].lastKey : nil, file: path, indexOffset: indexOffset)
        let expectedEnd = p + 1 < summaries.count ? summaries[p + 1].firstOffset : indexOffset
        guard end == expectedEnd, entries[entries.count - 1].lastKey == summary.lastKey else {
            throw StorageError.corrupted(file: path, offset: offset,
                                         reason: "index page \(p) ends at \(end) with key \(entries[entries.count - 1].lastKey), its page table entry says \(expectedEnd) / \(summary.lastKey)")
        }
        return RunIndexPage(first: first, entries: entries)
    }

    /// Block `i`'s index entry (reads its index page on first use).
    @inline(__always)
    package func entry(_ i: Int) throws -> RunBlockEntry {
        try withPage(i / L.indexPageEntries) { $0.entries[i % L.indexPageEntries] }
    }

    /// Every index entry (reads every page). For `dump`, `verify` and tests.
    package func allEntries() throws -> [RunBlockEntry] {
        var entries: [RunBlockEntry] = []
        entries.reserveCapacity(blockCount)
        for p in 0..<summaries.count { entries += try page(p).entries }
        return entries
    }

    /// The index page that holds the first block whose last key is ≥ `key`, or nil if no
    /// block has one. O(log pages), no I/O.
    func pageNumber(atLeast key: RunKey) -> Int? {
        firstIndex(summaries.count, withLastKeyAtLeast: key) { summaries[$0].lastKey }
    }

    /// The first block whose last key is ≥ `key`: its number and entry; nil if none.
    /// O(log blocks), no lock; reads one index page on first use.
    /// `hint`: a page to try first (the page of the block a cursor is on); used when the key
    /// falls in its range, saving the search of the page table.
    @inline(__always)
    func locate(atLeast key: RunKey, hint: Int = -1) throws -> (block: Int, entry: RunBlockEntry)? {
        let p: Int
        if hint >= 0, hint < summaries.count, !(summaries[hint].lastKey < key), hint == 0 || summaries[hint - 1].lastKey < key {
            p = hint
        } else {
            guard let found = pageNumber(atLeast: key) else { return nil }
            p = found
        }
        return try withPage(p) { page in
            page.locate(atLeast: key).map { (page.first + $0, page.entries[$0]) }
        }
    }

    /// Index of the first block whose last key is ≥ `key` (`blockCount` if none).
    package func blockIndex(atLeast key: RunKey) throws -> Int {
        try locate(atLeast: key)?.block ?? blockCount
    }

    // MARK: Blocks

    /// Reads, checks, decompresses and decodes block `i` (no caching).
    package func readBlock(_ i: Int) throws -> DecodedRunBlock {
        try readBlock(i, entry: entry(i))
    }

    func readBlock(_ i: Int, entry: RunBlockEntry) throws -> DecodedRunBlock {
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

    /// Block `i` (whose index entry is `entry`) through `cache`.
    @inline(__always)
    func block(_ i: Int, entry: RunBlockEntry, cache: RunBlockCache) throws -> DecodedRunBlock {
        let key = RunBlockKey(run: id, block: UInt32(truncatingIfNeeded: i))
        if let cached = cache.lookup(key) { return cached }
        let block = try readBlock(i, entry: entry)
        return cache.insert(key, block, cost: block.memoryCost)
    }

    /// Checks every index page and every block (CRC, decompression, decoding) and the
    /// footer's totals. For `verify`. O(run size).
    package func verify() throws {
        let entries = try allEntries()
        let records = entries.reduce(UInt64(0)) { $0 + UInt64($1.recordCount) }
        let high = Self.highCompressionCount(entries)
        guard records == recordCount, high == highCompressionBlocks else {
            throw StorageError.corrupted(file: path, offset: fileSize - UInt64(L.footerSize),
                                         reason: "the blocks hold \(records) records (\(high) LZ4 HC blocks), the footer says \(recordCount) (\(highCompressionBlocks))")
        }
        for (i, entry) in entries.enumerated() { _ = try readBlock(i, entry: entry) }
    }
}

/// A run's index page as its page table summarizes it (spec/sorted-run.md, "Page table").
struct RunPageSummary: Equatable, Sendable {
    var lastKey: RunKey
    var firstOffset: UInt64
    var checksum: UInt32
}

/// Up to `SortedRunLayout.indexPageEntries` consecutive index entries of a run, checked.
/// Immutable.
package final class RunIndexPage: Sendable {
    /// The block number of `entries[0]`.
    package let first: Int
    package let entries: [RunBlockEntry]

    init(first: Int, entries: [RunBlockEntry]) {
        self.first = first
        self.entries = entries
    }

    /// Index in `entries` of the first entry whose last key is ≥ `key`, or nil.
    @inline(__always)
    func locate(atLeast key: RunKey) -> Int? {
        firstIndex(entries.count, withLastKeyAtLeast: key) { entries[$0].lastKey }
    }
}

/// The first of `count` items, in increasing order of `lastKey`, whose last key is ≥ `key`;
/// nil if none. Binary search: the page table and an index page share it.
@inline(__always)
private func firstIndex(_ count: Int, withLastKeyAtLeast key: RunKey, _ lastKey: (Int) -> RunKey) -> Int? {
    var low = 0, high = count
    while low < high {
        let mid = (low + high) >> 1
        if lastKey(mid) < key { low = mid + 1 } else { high = mid }
    }
    return low < count ? low : nil
}
