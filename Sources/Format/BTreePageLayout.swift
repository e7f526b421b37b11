// See spec/btree-page.md
//
// Byte layout of B+tree branch and leaf pages. Every integer is little-endian. The common
// 32-byte page header is shared with the pager (spec/page-file.md): the pager owns bytes
// 0..<4 (crc32c), 8..<16 (page number) and 16..<24 (write sequence); the B+tree owns the
// bytes named here.

/// Constants of the B+tree page format (spec/btree-page.md).
///
/// Public and inlinable (the format's numbers as literals in the B+tree's code): a constant
/// of a `package` type is read through a call from another module, and the B+tree reads
/// these on every page it visits.
public enum BTreePageLayout {
    /// Size of the common page header; the entry area starts right after it.
    @inlinable public static var headerSize: Int { 32 }

    // Header fields owned by the B+tree.
    /// u8 page type (`BTreePageType`).
    @inlinable public static var pageTypeOffset: Int { 4 }
    /// u8 tree slot (0..<8): the catalog slot of the tree the page belongs to.
    @inlinable public static var treeSlotOffset: Int { 5 }
    /// u16 number of entries on the page.
    @inlinable public static var entryCountOffset: Int { 6 }
    /// u8 level: 0 for a leaf, parent level = child level + 1 (root level = height - 1).
    @inlinable public static var levelOffset: Int { 24 }
    /// u8 key words of the tree (1...4), repeated on every page to detect foreign pages.
    @inlinable public static var keyWordsOffset: Int { 25 }
    /// u16 value size of the tree (leaf pages; 0 on branch pages).
    @inlinable public static var valueSizeOffset: Int { 26 }
    /// u16 insert hint: index + 1 of the most recent insert into the page (0 = none). Only a
    /// hint for choosing split points (sequential inserts split at the insertion point); it
    /// may be stale and is never trusted for correctness.
    @inlinable public static var insertHintOffset: Int { 28 }
    /// 30..<32 reserved: zero (nonzero is corruption in version 1).
    @inlinable public static var reservedOffset: Int { 30 }

    /// The header fields the B+tree owns, as two ranges around the pager's page number and
    /// write sequence: type, tree slot and entry count …
    package static let ownedHeaderFields = PageHeader.userFields
    /// … and level, key words, value size, insert hint and the reserved bytes.
    package static let ownedHeaderTail = PageHeader.userTailStart..<headerSize

    /// Key words per key: a key is 1...4 little-endian u64 words compared as unsigned integers, word 0 first.
    @inlinable public static var minKeyWords: Int { 1 }
    @inlinable public static var maxKeyWords: Int { 4 }
    /// Bytes of one key word.
    @inlinable public static var keyWordSize: Int { 8 }

    /// Branch entry: u64 child page, u64 entry count of the child's subtree, key.
    @inlinable public static var branchChildOffset: Int { 0 }
    @inlinable public static var branchCountOffset: Int { 8 }
    @inlinable public static var branchKeyOffset: Int { 16 }
    @inlinable public static var branchEntryFixedSize: Int { 16 }

    /// Leaf entry: key then value.
    @inlinable public static var leafKeyOffset: Int { 0 }

    /// Smallest page size the format supports; the value-size limit is derived from it.
    @inlinable public static var minPageSize: Int { 4096 }
    /// Largest value size: a leaf of the smallest page size holds at least 4 entries with
    /// 4-word keys: 4 * (32 + 984) = 4064 = 4096 - 32.
    @inlinable public static var maxValueSize: Int { 984 }
    /// Minimum entries a leaf of any supported page size can hold.
    @inlinable public static var minLeafCapacity: Int { 4 }
    /// Most entries per page (the entry count is a u16).
    @inlinable public static var maxEntriesPerPage: Int { 65535 }

    /// Size of one leaf entry.
    @inlinable
    public static func leafEntrySize(keyWords: Int, valueSize: Int) -> Int { keyWords * keyWordSize + valueSize }
    /// Size of one branch entry.
    @inlinable
    public static func branchEntrySize(keyWords: Int) -> Int { branchEntryFixedSize + keyWords * keyWordSize }
}

/// Page type byte (header offset 4) of B+tree pages. On disk: never renumber.
public enum BTreePageType: UInt8, Sendable {
    /// On disk: never renumber.
    case branch = 1
    /// On disk: never renumber.
    case leaf = 2
}
