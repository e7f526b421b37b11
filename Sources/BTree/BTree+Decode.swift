import ScrollbackFormat
import ScrollbackPager

/// The fields of one B+tree page, decoded without a tree (for verify, dump tools and tests).
package struct DecodedBTreePage: Sendable, Equatable {
    package var type: BTreePageType
    package var treeSlot: Int
    package var level: Int
    package var keyWords: Int
    /// Value size of the tree (leaf pages; 0 on branch pages).
    package var valueSize: Int
    package var keys: [BTreeKey]
    /// Leaf pages: one value per key.
    package var values: [[UInt8]]
    /// Branch pages: one child page and subtree entry count per key.
    package var children: [PageNumber]
    package var subtreeCounts: [UInt64]
}

extension BTree {
    /// Decodes a B+tree page (spec/btree-page.md) with every read bounds-checked. Throws
    /// `.corrupted(file:offset:reason:)` (offset = `pageNumber * bytes.count` + field offset)
    /// for an unknown page type, a shape outside the format's limits, an entry count that
    /// does not fit the page, nonzero reserved bytes or bytes after the last entry.
    /// Key order and counts are not checked here (they need the tree: `checkInvariants`).
    package static func decodePage(_ bytes: UnsafeRawBufferPointer, pageNumber: PageNumber,
                                   file: String = "pages") throws -> DecodedBTreePage {
        var reader = ByteReader(bytes, file: file, baseOffset: pageNumber &* UInt64(bytes.count))
        guard bytes.count >= BTreePageLayout.minPageSize else {
            throw reader.corruption("page of \(bytes.count) bytes is smaller than \(BTreePageLayout.minPageSize)", at: 0)
        }
        reader.position = BTreePageLayout.pageTypeOffset
        let rawType: UInt8 = try reader.read()
        guard let type = BTreePageType(rawValue: rawType) else {
            throw reader.corruption("unknown B+tree page type \(rawType)", at: BTreePageLayout.pageTypeOffset)
        }
        let slot = Int(try reader.read(UInt8.self))
        let count = Int(try reader.read(UInt16.self))
        reader.position = BTreePageLayout.levelOffset
        let level = Int(try reader.read(UInt8.self))
        let keyWords = Int(try reader.read(UInt8.self))
        let valueSize = Int(try reader.read(UInt16.self))
        let reserved: UInt32 = try reader.read()
        guard (BTreePageLayout.minKeyWords...BTreePageLayout.maxKeyWords).contains(keyWords) else {
            throw reader.corruption("key words \(keyWords) outside 1...4", at: BTreePageLayout.keyWordsOffset)
        }
        guard (type == .leaf ? (0...BTreePageLayout.maxValueSize).contains(valueSize) : valueSize == 0) else {
            throw reader.corruption("value size \(valueSize) invalid for a \(type) page", at: BTreePageLayout.valueSizeOffset)
        }
        guard (type == .leaf) == (level == 0) else {
            throw reader.corruption("\(type) page at level \(level)", at: BTreePageLayout.levelOffset)
        }
        guard reserved == 0 else { throw reader.corruption("reserved header bytes are not zero", at: BTreePageLayout.reservedOffset) }
        let entrySize = type == .leaf
            ? BTreePageLayout.leafEntrySize(keyWords: keyWords, valueSize: valueSize)
            : BTreePageLayout.branchEntrySize(keyWords: keyWords)
        guard count >= 1, count <= (bytes.count - BTreePageLayout.headerSize) / entrySize else {
            throw reader.corruption("entry count \(count) does not fit the page", at: BTreePageLayout.entryCountOffset)
        }
        var page = DecodedBTreePage(type: type, treeSlot: slot, level: level, keyWords: keyWords, valueSize: valueSize,
                                    keys: [], values: [], children: [], subtreeCounts: [])
        reader.position = BTreePageLayout.headerSize
        func readKey() throws -> BTreeKey {
            var key = BTreeKey(0)
            for w in 0..<keyWords { key[word: w] = try reader.read() }
            return key
        }
        for _ in 0..<count {
            if type == .leaf {
                page.keys.append(try readKey())
                page.values.append(Array(try reader.readBytes(valueSize)))
            } else {
                page.children.append(try reader.read())
                page.subtreeCounts.append(try reader.read())
                page.keys.append(try readKey())
            }
        }
        while reader.remaining > 0 {
            let at = reader.position
            guard try reader.read(UInt8.self) == 0 else { throw reader.corruption("nonzero byte after the last entry", at: at) }
        }
        return page
    }
}
