import ScrollbackFormat

// Decoding for inspection tools (`scrollback dump`): the fields of meta pages and page
// headers as they are on disk, read without validation so that damaged pages can be shown.
// Whether the bytes are valid is for `MetaPage.decode`, `Pager.verifyPage`,
// `FreeListPage.decode` and `BTree.decodePage` to say.

/// Every field of a meta page, as stored (spec/page-file.md, "Meta page").
package struct MetaPageFields: Sendable, Equatable {
    package var magic: UInt64
    package var formatVersion: UInt32
    package var pageSize: UInt32
    package var checkpointSequence: UInt64
    package var transactionID: UInt64
    package var pageCount: UInt64
    package var freeListHead: PageNumber
    package var freeListPageCount: UInt64
    package var freePageCount: UInt64
    package var logPosition: UInt64
    package var counters: [UInt64]
    package var trees: [TreeRoot]
    package var storedChecksum: UInt32
    package var computedChecksum: UInt32

    /// Reads the first `MetaPageLayout.bodySize` bytes of `body`; missing bytes read as zero.
    package init(_ body: UnsafeRawBufferPointer) {
        var padded = [UInt8](repeating: 0, count: MetaPageLayout.bodySize)
        padded.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: body.prefix(MetaPageLayout.bodySize))) }
        self = padded.withUnsafeBytes { Self(reading: $0) }
    }

    private init(reading b: UnsafeRawBufferPointer) {
        typealias M = MetaPageLayout
        magic = b.loadLE(UInt64.self, at: M.magic)
        formatVersion = b.loadLE(UInt32.self, at: M.formatVersion)
        pageSize = b.loadLE(UInt32.self, at: M.pageSize)
        checkpointSequence = b.loadLE(UInt64.self, at: M.checkpointSequence)
        transactionID = b.loadLE(UInt64.self, at: M.transactionID)
        pageCount = b.loadLE(UInt64.self, at: M.pageCount)
        freeListHead = b.loadLE(UInt64.self, at: M.freeListHead)
        freeListPageCount = b.loadLE(UInt64.self, at: M.freeListPageCount)
        freePageCount = b.loadLE(UInt64.self, at: M.freePageCount)
        logPosition = b.loadLE(UInt64.self, at: M.logPosition)
        counters = (0..<PageFileLayout.counterCount).map { b.loadLE(UInt64.self, at: M.counters + 8 * $0) }
        trees = (0..<PageFileLayout.treeSlotCount).map { Self.tree(b, $0) }
        storedChecksum = b.loadLE(UInt32.self, at: M.checksum)
        computedChecksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<M.checksum]))
    }

    private static func tree(_ b: UnsafeRawBufferPointer, _ slot: Int) -> TreeRoot {
        let base = MetaPageLayout.treeCatalog + MetaPageLayout.treeEntrySize * slot
        typealias E = MetaPageLayout.TreeEntry
        return TreeRoot(rootPage: b.loadLE(UInt64.self, at: base + E.rootPage), entryCount: b.loadLE(UInt64.self, at: base + E.entryCount),
                        height: b[base + E.height], keyWords: b[base + E.keyWords], valueSize: b.loadLE(UInt16.self, at: base + E.valueSize))
    }
}

/// The common header of a page other than the meta pages, as stored (spec/page-file.md,
/// "Common page header"), with the checksum its bytes imply.
package struct PageHeaderFields: Sendable, Equatable {
    package var pageType: UInt8
    package var treeSlot: UInt8
    package var entryCount: UInt16
    package var pageNumber: PageNumber
    package var writeSequence: UInt64
    package var userWord: UInt64
    package var storedChecksum: UInt32
    package var computedChecksum: UInt32

    /// Reads the header of a whole page (at least `PageHeader.size` bytes).
    package init(_ page: UnsafeRawBufferPointer) {
        pageType = page[PageHeader.pageType]
        treeSlot = page[PageHeader.treeSlot]
        entryCount = page.loadLE(UInt16.self, at: PageHeader.entryCount)
        pageNumber = page.loadLE(UInt64.self, at: PageHeader.pageNumber)
        writeSequence = page.loadLE(UInt64.self, at: PageHeader.writeSequence)
        userWord = page.loadLE(UInt64.self, at: PageHeader.userWord)
        storedChecksum = page.loadLE(UInt32.self, at: PageHeader.checksum)
        computedChecksum = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: page[PageHeader.checksummedStart...]))
    }

    package var checksumMatches: Bool { storedChecksum == computedChecksum }
}
