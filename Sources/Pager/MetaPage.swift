import ScrollbackFormat

/// The decoded contents of one meta page (spec/page-file.md, "Meta page").
///
/// Encoding and decoding are pure functions over byte buffers; decoding never traps on bad
/// bytes and reports damage as `.corrupted` naming the file and the absolute offset.
package struct MetaPage: Equatable, Sendable {
    package var pageSize: Int
    package var checkpointSequence: UInt64
    package var pageCount: UInt64
    package var freeListHead: PageNumber
    package var freeListPageCount: UInt64
    package var freePageCount: UInt64
    package var state: CommittedState
    /// The page-file format version the page was written in (`encode` always writes the
    /// current one; 1 only for pages decoded from an older store).
    package var formatVersion: UInt32

    package init(pageSize: Int, checkpointSequence: UInt64, pageCount: UInt64, freeListHead: PageNumber,
                 freeListPageCount: UInt64, freePageCount: UInt64, state: CommittedState,
                 formatVersion: UInt32 = PageFileLayout.formatVersion) {
        self.formatVersion = formatVersion
        self.pageSize = pageSize
        self.checkpointSequence = checkpointSequence
        self.pageCount = pageCount
        self.freeListHead = freeListHead
        self.freeListPageCount = freeListPageCount
        self.freePageCount = freePageCount
        self.state = state
    }

    /// The meta slot (0 or 1) a meta page with this sequence is written to: they alternate.
    package var slot: UInt64 { checkpointSequence & 1 }

    /// Writes the meta page into `page` (exactly `pageSize` bytes) in the current format:
    /// body, both checksums, zero tail.
    /// REQUIRES: `state` has 16 trees and 16 counters (checked by the transaction on commit).
    package func encode(into page: UnsafeMutableRawBufferPointer) {
        assert(page.count == pageSize)
        typealias M = MetaPageLayout
        page.initializeMemory(as: UInt8.self, repeating: 0)
        page.storeLE(PageFileLayout.magic, at: M.magic)
        page.storeLE(PageFileLayout.formatVersion, at: M.formatVersion)
        page.storeLE(UInt32(pageSize), at: M.pageSize)
        page.storeLE(checkpointSequence, at: M.checkpointSequence)
        page.storeLE(state.transactionID, at: M.transactionID)
        page.storeLE(pageCount, at: M.pageCount)
        page.storeLE(freeListHead, at: M.freeListHead)
        page.storeLE(freeListPageCount, at: M.freeListPageCount)
        page.storeLE(freePageCount, at: M.freePageCount)
        page.storeLE(state.logPosition, at: M.logPosition)
        for (i, counter) in state.counters.prefix(PageFileLayout.counterCount).enumerated() {
            page.storeLE(counter, at: M.counterOffset(i))
        }
        for (i, tree) in state.trees.prefix(PageFileLayout.treeSlotCount).enumerated() {
            let base = M.treeEntryOffset(i)
            page.storeLE(tree.rootPage, at: base + M.TreeEntry.rootPage)
            page.storeLE(tree.entryCount, at: base + M.TreeEntry.entryCount)
            page.storeLE(tree.height, at: base + M.TreeEntry.height)
            page.storeLE(tree.keyWords, at: base + M.TreeEntry.keyWords)
            page.storeLE(tree.valueSize, at: base + M.TreeEntry.valueSize)
        }
        page.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: page[0..<M.checksum])), at: M.checksum)
        page.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: page[0..<M.extendedChecksum])), at: M.extendedChecksum)
    }

    /// The encoded meta page as a new array (tests and the create path).
    package func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: pageSize)
        bytes.withUnsafeMutableBytes { encode(into: $0) }
        return bytes
    }

    /// Outcome of decoding one meta-page candidate.
    package enum Decoded: Equatable {
        case valid(MetaPage)
        /// The magic is not ours (or the bytes are missing): not a meta page at all.
        case notMagic
        /// Our magic with a newer format version than this build reads.
        case newerVersion(UInt32)
        /// Our magic but damaged (checksum or a field out of range): the reason and the
        /// absolute offset of the damage.
        case damaged(offset: UInt64, reason: String)
    }

    /// Decodes a meta-page body. `body` holds the bytes read at `fileOffset` (at most
    /// `MetaPageLayout.bodySize` are looked at; fewer means the file ends early).
    /// `expectedSlot` is the meta slot the bytes were read from (0 or 1). Version 1 pages
    /// decode into a state of 16 slots and counters (the last 8 unused / zero).
    package static func decode(_ body: UnsafeRawBufferPointer, fileOffset: UInt64, expectedSlot: UInt64) -> Decoded {
        typealias M = MetaPageLayout
        guard body.count >= 8, body.loadLE(UInt64.self, at: M.magic) == PageFileLayout.magic else { return .notMagic }
        guard body.count >= M.version1BodySize else {
            return .damaged(offset: fileOffset + UInt64(body.count), reason: "meta page truncated: file ends after \(body.count) bytes")
        }
        // Every format version keeps the magic, the version and the first sector's checksum
        // where version 1 has them, so a damaged meta page is never mistaken for a newer one.
        let stored = body.loadLE(UInt32.self, at: M.checksum)
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: body[0..<M.checksum]))
        guard stored == computed else {
            return .damaged(
                offset: fileOffset + UInt64(M.checksum),
                reason: "meta page checksum mismatch: stored \(hex(stored)), computed \(hex(computed))")
        }
        let version = body.loadLE(UInt32.self, at: M.formatVersion)
        if version > PageFileLayout.formatVersion { return .newerVersion(version) }
        func damaged(_ at: Int, _ reason: String) -> Decoded { .damaged(offset: fileOffset + UInt64(at), reason: reason) }
        guard version >= PageFileLayout.oldestReadableVersion else {
            return damaged(M.formatVersion, "meta page format version \(version) is unknown")
        }
        let extended = version >= 2
        if extended {
            guard body.count >= M.bodySize else {
                return .damaged(offset: fileOffset + UInt64(body.count), reason: "meta page truncated: file ends after \(body.count) bytes")
            }
            let stored = body.loadLE(UInt32.self, at: M.extendedChecksum)
            let computed = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: body[0..<M.extendedChecksum]))
            guard stored == computed else {
                return damaged(M.extendedChecksum, "meta page second-sector checksum mismatch: stored \(hex(stored)), computed \(hex(computed))")
            }
        }
        let slots = extended ? PageFileLayout.treeSlotCount : PageFileLayout.version1TreeSlotCount
        let counterSlots = extended ? PageFileLayout.counterCount : PageFileLayout.version1CounterCount
        let pageSize = Int(body.loadLE(UInt32.self, at: M.pageSize))
        guard PageFileLayout.allowedPageSizes.contains(pageSize) else { return damaged(M.pageSize, "page size \(pageSize) not allowed") }
        let sequence = body.loadLE(UInt64.self, at: M.checkpointSequence)
        guard sequence & 1 == expectedSlot else {
            return damaged(M.checkpointSequence, "checkpoint sequence \(sequence) does not belong in meta slot \(expectedSlot)")
        }
        guard fileOffset == expectedSlot * UInt64(pageSize) else {
            return damaged(M.pageSize, "meta slot \(expectedSlot) found at offset \(fileOffset) but page size is \(pageSize)")
        }
        let pageCount = body.loadLE(UInt64.self, at: M.pageCount)
        guard pageCount >= PageFileLayout.metaPageCount, pageCount <= UInt64(Int32.max) else {
            return damaged(M.pageCount, "page count \(pageCount) out of range")
        }
        func validPage(_ page: UInt64) -> Bool { page == 0 || (page >= PageFileLayout.metaPageCount && page < pageCount) }
        let head = body.loadLE(UInt64.self, at: M.freeListHead)
        let listPages = body.loadLE(UInt64.self, at: M.freeListPageCount)
        let freePages = body.loadLE(UInt64.self, at: M.freePageCount)
        guard validPage(head), (head == 0) == (listPages == 0), listPages < pageCount, freePages < pageCount else {
            return damaged(M.freeListHead, "free-list head \(head), \(listPages) list pages, \(freePages) free pages: inconsistent with page count \(pageCount)")
        }
        var counters = [UInt64](repeating: 0, count: PageFileLayout.counterCount)
        for i in 0..<counterSlots { counters[i] = body.loadLE(UInt64.self, at: M.counterOffset(i)) }
        var trees: [TreeRoot] = []
        trees.reserveCapacity(PageFileLayout.treeSlotCount)
        for i in 0..<slots {
            let base = M.treeEntryOffset(i)
            let tree = TreeRoot(
                rootPage: body.loadLE(UInt64.self, at: base + M.TreeEntry.rootPage),
                entryCount: body.loadLE(UInt64.self, at: base + M.TreeEntry.entryCount),
                height: body.loadLE(UInt8.self, at: base + M.TreeEntry.height),
                keyWords: body.loadLE(UInt8.self, at: base + M.TreeEntry.keyWords),
                valueSize: body.loadLE(UInt16.self, at: base + M.TreeEntry.valueSize))
            guard validPage(tree.rootPage), (tree.rootPage == 0) == (tree.height == 0),
                  tree.keyWords <= 4, tree.valueSize <= 1024,
                  body.loadLE(UInt32.self, at: base + M.TreeEntry.reserved) == 0
            else { return damaged(base, "tree catalog slot \(i) is invalid: \(tree)") }
            trees.append(tree)
        }
        for offset in M.reserved..<M.checksum where body[offset] != 0 {
            return damaged(offset, "reserved meta byte is not zero")
        }
        if extended {
            for offset in M.extendedReserved..<M.extendedChecksum where body[offset] != 0 {
                return damaged(offset, "reserved meta byte is not zero")
            }
        }
        while trees.count < PageFileLayout.treeSlotCount { trees.append(.unused) }
        let state = CommittedState(
            transactionID: body.loadLE(UInt64.self, at: M.transactionID), trees: trees,
            logPosition: body.loadLE(UInt64.self, at: M.logPosition), counters: counters)
        return .valid(MetaPage(
            pageSize: pageSize, checkpointSequence: sequence, pageCount: pageCount, freeListHead: head,
            freeListPageCount: listPages, freePageCount: freePages, state: state, formatVersion: version))
    }
}

func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}
