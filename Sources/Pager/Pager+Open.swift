import ScrollbackFormat
import ScrollbackIO

extension Pager {
    /// Creates a new page file at `path` and opens it.
    ///
    /// Crash-safe: both meta pages are written to `path + ".tmp"`, synced, renamed to `path`
    /// and the directory is synced. A crash before the rename leaves no page file, so creation
    /// is simply retried (a stale temporary file is removed first).
    /// REQUIRES: no file at `path` (throws `.invalidArgument`); `pageSize` is 4096, 8192 or 16384.
    package static func create(fileSystem: any FileSystem, path: String, pageSize: Int, cacheBytes: Int) throws -> Pager {
        guard PageFileLayout.allowedPageSizes.contains(pageSize) else {
            throw StorageError.invalidArgument("page size \(pageSize) is not one of \(PageFileLayout.allowedPageSizes)")
        }
        guard !fileSystem.fileExists(path) else {
            throw StorageError.invalidArgument("\(path) already exists; open it instead of creating it")
        }
        let temporary = path + PageFileLayout.temporarySuffix
        if fileSystem.fileExists(temporary) { try fileSystem.removeFile(temporary) }
        var bytes: [UInt8] = []
        for sequence: UInt64 in 0...1 {
            let meta = MetaPage(
                pageSize: pageSize, checkpointSequence: sequence, pageCount: PageFileLayout.metaPageCount,
                freeListHead: 0, freeListPageCount: 0, freePageCount: 0, state: .initial)
            bytes += meta.encoded()
        }
        let file = try fileSystem.open(temporary, mode: .createNew)
        do {
            try file.write(bytes, at: 0)
            try file.syncData()
        } catch {
            try? file.close()
            throw error
        }
        try file.close()
        try fileSystem.rename(temporary, to: path)
        try fileSystem.syncDirectory(Path.directory(of: path))
        return try open(fileSystem: fileSystem, path: path, cacheBytes: cacheBytes)
    }

    /// Opens an existing page file: reads both meta pages, uses the valid one with the higher
    /// checkpoint sequence, and loads its free list.
    ///
    /// Errors: `.notAStore` if neither meta page has the magic; `.unsupportedVersion` if a
    /// meta page has a newer format version; `.corrupted` naming the file if both meta pages
    /// are damaged or the chosen state's free list is. The file is never written here.
    package static func open(fileSystem: any FileSystem, path: String, cacheBytes: Int) throws -> Pager {
        let file = try fileSystem.open(path, mode: .existing)
        do {
            let meta = try readMeta(file: file, path: path)
            let (listPages, freePages) = try readFreeList(file: file, path: path, meta: meta)
            return Pager(
                fileSystem: fileSystem, path: path, file: file, meta: meta,
                freeListPages: listPages, freePages: freePages, cacheBytes: cacheBytes)
        } catch {
            try? file.close()
            throw error
        }
    }

    /// Reads both meta pages (page size unknown: meta 1 is tried at every allowed page size)
    /// and returns the valid one with the higher sequence.
    static func readMeta(file: any FileHandle, path: String) throws -> MetaPage {
        func candidate(at offset: UInt64, slot: UInt64) throws -> MetaPage.Decoded {
            let body = try file.readBytes(count: MetaPageLayout.bodySize, at: offset)
            return body.withUnsafeBytes { MetaPage.decode($0, fileOffset: offset, expectedSlot: slot) }
        }
        var decoded: [MetaPage.Decoded] = [try candidate(at: 0, slot: 0)]
        for size in PageFileLayout.allowedPageSizes {
            decoded.append(try candidate(at: UInt64(size), slot: 1))
        }
        var valid: [MetaPage] = []
        var damage: (offset: UInt64, reason: String)?
        for result in decoded {
            switch result {
            case .newerVersion(let version):
                throw StorageError.unsupportedVersion(file: path, found: version, supported: PageFileLayout.formatVersion)
            case .valid(let meta): valid.append(meta)
            case .damaged(let offset, let reason): if damage == nil { damage = (offset, reason) }
            case .notMagic: break
            }
        }
        // Meta 0 fixes the page size, and with it where meta 1 is.
        if case .valid(let first) = decoded[0] {
            valid.removeAll { $0.slot == 1 && $0.pageSize != first.pageSize }
        }
        if let newest = valid.max(by: { $0.checkpointSequence < $1.checkpointSequence }) { return newest }
        if let damage {
            throw StorageError.corrupted(
                file: path, offset: damage.offset, reason: "both meta pages are invalid; first damage: \(damage.reason)")
        }
        throw StorageError.notAStore(path: path)
    }

    /// Follows the free-list chain of `meta`, verifying every page, and returns the chain's
    /// pages and the free pages (sorted). Checks: chain length, run bounds, no page counted
    /// twice, total equals the meta page's free-page count.
    static func readFreeList(file: any FileHandle, path: String, meta: MetaPage) throws -> ([PageNumber], [PageNumber]) {
        let pageSize = meta.pageSize
        var listPages: [PageNumber] = []
        var ranges: [FreeRange] = []
        var buffer = [UInt8](repeating: 0, count: pageSize)
        var next = meta.freeListHead
        var previousOffset: UInt64 = UInt64(meta.slot) * UInt64(pageSize) + UInt64(MetaPageLayout.freeListHead)
        for _ in 0..<meta.freeListPageCount {
            guard next != 0 else {
                throw StorageError.corrupted(
                    file: path, offset: previousOffset,
                    reason: "free-list chain ends after \(listPages.count) pages; the meta page says \(meta.freeListPageCount)")
            }
            let page = next
            let offset = page * UInt64(pageSize)
            try buffer.withUnsafeMutableBytes { raw in
                try file.readExactly(into: raw, at: offset)
                try verifyPage(UnsafeRawBufferPointer(raw), number: page, maxSequence: meta.checkpointSequence, file: path)
                let decoded = try FreeListPage.decode(UnsafeRawBufferPointer(raw), pageCount: meta.pageCount, file: path, fileOffset: offset)
                ranges.append(contentsOf: decoded.ranges)
                next = decoded.next
            }
            listPages.append(page)
            previousOffset = offset + UInt64(PageHeader.userWord)
        }
        guard next == 0 else {
            throw StorageError.corrupted(
                file: path, offset: previousOffset,
                reason: "free-list chain is longer than the \(meta.freeListPageCount) pages the meta page says")
        }
        // Runs of every list page together must be disjoint, and disjoint from the list pages.
        let listOffset = UInt64(meta.slot) * UInt64(pageSize)
        var spans = ranges
        for page in listPages { spans.append(FreeRange(start: page, length: 1)) }
        spans.sort { $0.start < $1.start }
        var end: UInt64 = 0
        var total: UInt64 = 0
        for span in spans {
            guard span.start >= end else {
                throw StorageError.corrupted(
                    file: path, offset: listOffset + UInt64(MetaPageLayout.freeListHead),
                    reason: "free list counts page \(span.start) twice")
            }
            end = span.start + span.length
        }
        for range in ranges { total += range.length }
        guard total == meta.freePageCount else {
            throw StorageError.corrupted(
                file: path, offset: listOffset + UInt64(MetaPageLayout.freePageCount),
                reason: "free list holds \(total) pages; the meta page says \(meta.freePageCount)")
        }
        var pages: [PageNumber] = []
        pages.reserveCapacity(Int(total))
        for range in ranges.sorted(by: { $0.start < $1.start }) {
            for page in range.start..<(range.start + range.length) { pages.append(page) }
        }
        return (listPages, pages)
    }
}
