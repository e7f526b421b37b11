// See spec/page-file.md
// Constants of the page file (`pages`): meta pages, the common page header, free-list pages.
// Every number here mirrors a table in spec/page-file.md; change both in the same commit.

/// File-level constants of the page file.
package enum PageFileLayout {
    /// Name of the page file inside a store directory.
    package static let fileName = "pages"
    /// Suffix of the temporary file a new page file is built in before it is renamed.
    package static let temporarySuffix = ".tmp"
    /// "SCRBPAGE" read as a little-endian UInt64 (bytes 53 43 52 42 50 41 47 45).
    package static let magic: UInt64 = 0x4547_4150_4252_4353
    /// The page-file format version this build writes and the newest it reads.
    package static let formatVersion: UInt32 = 1
    /// Allowed page sizes, fixed when the file is created.
    package static let allowedPageSizes: [Int] = [4096, 8192, 16384]
    /// Pages 0 and 1 are the two meta pages.
    package static let metaPageCount: UInt64 = 2
    /// Number of tree-catalog slots in a meta page.
    package static let treeSlotCount = 8
    /// Number of opaque counters in a meta page.
    package static let counterCount = 8
}

/// Byte offsets inside a meta page (page 0 or page 1). Only the first `bodySize` bytes carry
/// data; the rest of the page is written as zeros and never read.
package enum MetaPageLayout {
    package static let magic = 0x000                // u64
    package static let formatVersion = 0x008        // u32
    package static let pageSize = 0x00C             // u32
    package static let checkpointSequence = 0x010   // u64
    package static let transactionID = 0x018        // u64
    package static let pageCount = 0x020            // u64
    package static let freeListHead = 0x028         // u64 (0 = no free-list page)
    package static let freeListPageCount = 0x030    // u64
    package static let freePageCount = 0x038        // u64
    package static let logPosition = 0x040          // u64
    package static let counters = 0x048             // 8 x u64
    package static let treeCatalog = 0x088          // 8 x TreeRoot entry
    package static let treeEntrySize = 24
    package static let reserved = 0x148             // reserved, zero, up to `checksum`
    package static let checksum = 0x1FC             // u32 crc32c of bytes 0x000..<0x1FC
    package static let bodySize = 0x200

    /// Offsets inside one 24-byte tree-catalog entry.
    package enum TreeEntry {
        package static let rootPage = 0      // u64 (0 = empty tree)
        package static let entryCount = 8    // u64
        package static let height = 16       // u8
        package static let keyWords = 17     // u8 (0 = slot unused)
        package static let valueSize = 18    // u16
        package static let reserved = 20     // u32, zero
    }
}

/// The 32-byte header at the start of every non-meta page. The pager owns the checksum, the
/// page number and the write sequence; the page's user owns the rest.
package enum PageHeader {
    package static let size = 32
    package static let checksum = 0        // u32 crc32c of bytes 4..<pageSize (pager)
    package static let pageType = 4        // u8 (user)
    package static let treeSlot = 5        // u8 (user)
    package static let entryCount = 6      // u16 (user)
    package static let pageNumber = 8      // u64 (pager)
    package static let writeSequence = 16  // u64 checkpoint sequence that wrote the page (pager)
    package static let userWord = 24       // u64 (user; free list: next free-list page)

    /// The checksum covers every byte after itself: `checksummedStart ..< pageSize`.
    package static let checksummedStart = 4
    /// Header bytes the page's user owns: page type, tree slot, entry count …
    package static let userFields = 4..<8
    /// … and everything from the user word on (the rest of the header, then the body).
    package static let userTailStart = 24
}

/// Values of the page-type byte (header +4).
package enum PageType: UInt8, Sendable {
    case btreeBranch = 1  // on disk: never renumber
    case btreeLeaf = 2    // on disk: never renumber
    case freeList = 3     // on disk: never renumber
}

/// Payload of a free-list page: `entryCount` (header +6) ranges after the header, each a
/// run of consecutive free pages. The next free-list page is in the header's user word.
package enum FreeListPageLayout {
    package static let firstEntry = PageHeader.size
    package static let entrySize = 16
    package static let entryStart = 0   // u64 first free page of the run
    package static let entryLength = 8  // u64 number of pages in the run (>= 1)

    /// Ranges that fit in one free-list page of `pageSize` bytes.
    package static func capacity(pageSize: Int) -> Int { (pageSize - firstEntry) / entrySize }
}
