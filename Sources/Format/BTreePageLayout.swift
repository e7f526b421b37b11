// See spec/btree-page.md
//
// Byte layout of B+tree branch and leaf pages. Every integer is little-endian. The common
// 32-byte page header is shared with the pager (spec/page-file.md): the pager owns bytes
// 0..<4 (crc32c), 8..<16 (page number) and 16..<24 (write sequence); the B+tree owns the
// bytes named here.

/// Constants of the B+tree page format (spec/btree-page.md).
package enum BTreePageLayout {
    /// Size of the common page header; the entry area starts right after it.
    package static let headerSize = 32

    // Header fields owned by the B+tree.
    /// u8 page type (`BTreePageType`).
    package static let pageTypeOffset = 4
    /// u8 tree slot (0..<8): the catalog slot of the tree the page belongs to.
    package static let treeSlotOffset = 5
    /// u16 number of entries on the page.
    package static let entryCountOffset = 6
    /// u8 level: 0 for a leaf, parent level = child level + 1 (root level = height - 1).
    package static let levelOffset = 24
    /// u8 key words of the tree (1...4), repeated on every page to detect foreign pages.
    package static let keyWordsOffset = 25
    /// u16 value size of the tree (leaf pages; 0 on branch pages).
    package static let valueSizeOffset = 26
    /// u16 insert hint: index + 1 of the most recent insert into the page (0 = none). Only a
    /// hint for choosing split points (sequential inserts split at the insertion point); it
    /// may be stale and is never trusted for correctness.
    package static let insertHintOffset = 28
    /// 30..<32 reserved: zero (nonzero is corruption in version 1).
    package static let reservedOffset = 30

    /// The header fields the B+tree owns, as two ranges around the pager's page number and
    /// write sequence: type, tree slot and entry count …
    package static let ownedHeaderFields = PageHeader.userFields
    /// … and level, key words, value size, insert hint and the reserved bytes.
    package static let ownedHeaderTail = PageHeader.userTailStart..<headerSize

    /// Key words per key: a key is 1...4 little-endian u64 words compared as unsigned integers, word 0 first.
    package static let minKeyWords = 1
    package static let maxKeyWords = 4
    /// Bytes of one key word.
    package static let keyWordSize = 8

    /// Branch entry: u64 child page, u64 entry count of the child's subtree, key.
    package static let branchChildOffset = 0
    package static let branchCountOffset = 8
    package static let branchKeyOffset = 16
    package static let branchEntryFixedSize = 16

    /// Leaf entry: key then value.
    package static let leafKeyOffset = 0

    /// Smallest page size the format supports; the value-size limit is derived from it.
    package static let minPageSize = 4096
    /// Largest value size: a leaf of the smallest page size holds at least 4 entries with
    /// 4-word keys: 4 * (32 + 984) = 4064 = 4096 - 32.
    package static let maxValueSize = 984
    /// Minimum entries a leaf of any supported page size can hold.
    package static let minLeafCapacity = 4
    /// Most entries per page (the entry count is a u16).
    package static let maxEntriesPerPage = 65535

    /// Size of one leaf entry.
    @inlinable
    package static func leafEntrySize(keyWords: Int, valueSize: Int) -> Int { keyWords * keyWordSize + valueSize }
    /// Size of one branch entry.
    @inlinable
    package static func branchEntrySize(keyWords: Int) -> Int { branchEntryFixedSize + keyWords * keyWordSize }
}

/// Page type byte (header offset 4) of B+tree pages. On disk: never renumber.
package enum BTreePageType: UInt8, Sendable {
    /// On disk: never renumber.
    case branch = 1
    /// On disk: never renumber.
    case leaf = 2
}
