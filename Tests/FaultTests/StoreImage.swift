import ScrollbackFormat
import ScrollbackIO

/// The files of a closed store and what their layouts (spec/*.md) say is live.
struct StoreImage {
    var files: [String: [UInt8]]

    func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
        guard at + 8 <= b.count else { return 0 }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(b[at + i]) << (8 * UInt64(i)) }
        return v
    }

    func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        guard at + 4 <= b.count else { return 0 }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(b[at + i]) << (8 * UInt32(i)) }
        return v
    }

    func u16(_ b: [UInt8], _ at: Int) -> Int { at + 2 <= b.count ? Int(b[at]) | Int(b[at + 1]) << 8 : 0 }

    // MARK: Page file (spec/page-file.md, spec/btree-page.md)

    struct PageLayout {
        var pageSize: Int
        var metaInUse: Int          // 0 or 1
        var pageCount: Int
        var treePages: Set<Int>     // reachable from the catalog of the meta page in use
        var freeListPages: Set<Int>
        var roots: [Int]
        /// (page, entry count, key words, value size, is leaf) of reachable tree pages.
        var pageInfo: [Int: (entries: Int, keyWords: Int, valueSize: Int, leaf: Bool)]
        var livePages: Set<Int> { treePages.union(freeListPages) }
    }

    func pageLayout(_ b: [UInt8]) -> PageLayout {
        let pageSize = Int(u32(b, 0x0C))
        func metaValid(_ slot: Int) -> Bool {
            let base = slot * pageSize
            guard base + 512 <= b.count, Array(b[base..<base + 8]) == Array("SCRBPAGE".utf8) else { return false }
            return CRC32C.checksum(b[base..<base + 0x1FC]) == u32(b, base + 0x1FC)
        }
        let candidates = [0, 1].filter(metaValid)
        let inUse = candidates.max { u64(b, $0 * pageSize + 0x10) < u64(b, $1 * pageSize + 0x10) }!
        let meta = inUse * pageSize
        let pageCount = Int(u64(b, meta + 0x20))
        var layout = PageLayout(pageSize: pageSize, metaInUse: inUse, pageCount: pageCount, treePages: [], freeListPages: [],
                                roots: [], pageInfo: [:])
        var next = Int(u64(b, meta + 0x28))
        while next != 0, layout.freeListPages.insert(next).inserted {
            next = Int(u64(b, next * pageSize + 24))
        }
        for slot in 0..<16 {   // slots 8…15 in the meta page's second sector (format 2)
            let entry = slot < 8 ? meta + 0x88 + 24 * slot : meta + 0x240 + 24 * (slot - 8)
            let root = Int(u64(b, entry))
            let keyWords = Int(b[entry + 17]), valueSize = u16(b, entry + 18)
            guard root != 0 else { continue }
            layout.roots.append(root)
            var stack = [root]
            while let page = stack.popLast() {
                guard layout.treePages.insert(page).inserted else { continue }
                let base = page * pageSize
                let entries = u16(b, base + 6)
                let leaf = b[base + 4] == 2
                layout.pageInfo[page] = (entries, keyWords, valueSize, leaf)
                if !leaf {
                    for i in 0..<entries { stack.append(Int(u64(b, base + 0x20 + i * (16 + keyWords * 8)))) }
                }
            }
        }
        return layout
    }

    // MARK: Raw log segment (spec/log-segment.md)

    struct Frame { var offset: Int; var length: Int; var type: UInt8 }

    /// Frames of a raw segment, from offset 24 to the first frame that does not fit.
    func frames(_ b: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var offset = 24
        while offset + 9 <= b.count {
            let length = Int(u32(b, offset + 4))
            // Type 0 is never written: the zeros an active segment is preallocated with
            // (spec/log-segment.md, "Writing") end the log.
            guard offset + 9 + length <= b.count, b[offset + 8] != 0 else { break }
            frames.append(Frame(offset: offset, length: length, type: b[offset + 8]))
            offset += 9 + length
        }
        return frames
    }

    // MARK: Sealed segment (spec/sealed-segment.md)

    struct SealedLayout {
        var indexOffset: Int
        var blocks: [(fileOffset: Int, length: Int)]
        var indexEntries: [Int] { (0..<blocks.count).map { indexOffset + 24 * $0 } }
    }

    func sealedLayout(_ b: [UInt8]) -> SealedLayout {
        let footer = b.count - 24
        let indexOffset = Int(u64(b, footer))
        let count = Int(u32(b, footer + 8))
        var blocks: [(Int, Int)] = []
        for i in 0..<count {
            let entry = indexOffset + 24 * i
            blocks.append((Int(u64(b, entry + 8)), Int(u32(b, entry + 16))))
        }
        return SealedLayout(indexOffset: indexOffset, blocks: blocks)
    }

    // MARK: Sorted run (spec/sorted-run.md)

    struct RunLayout {
        var indexOffset: Int
        var blocks: [(fileOffset: Int, length: Int)]
        var indexEntries: [Int] { (0..<blocks.count).map { indexOffset + 80 * $0 } }
    }

    func runLayout(_ b: [UInt8]) -> RunLayout {
        let footer = b.count - 48
        let indexOffset = Int(u64(b, footer))
        let count = Int(u32(b, footer + 8))
        var blocks: [(Int, Int)] = []
        for i in 0..<count {
            let entry = indexOffset + 80 * i
            blocks.append((Int(u64(b, entry + 48)), Int(u32(b, entry + 56))))
        }
        return RunLayout(indexOffset: indexOffset, blocks: blocks)
    }
}
