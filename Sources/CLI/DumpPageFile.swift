import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackMessaging
import ScrollbackPager

/// Reads the page file directly (no pager, no recovery), so it works on damaged files. Meta
/// pages are judged by `MetaPage.decode`, pages by their header (`PageHeaderFields`), B+tree
/// pages decoded by `BTree.decodePage`, free-list pages by `FreeListPage.decode`.
final class PageFileDumper {
    struct Meta {
        var slot: Int
        var offset: UInt64
        var fields: MetaPageFields
        var decoded: MetaPage.Decoded

        var page: MetaPage? {
            if case .valid(let page) = decoded { return page }
            return nil
        }
    }

    struct RawPage {
        var number: UInt64
        var bytes: [UInt8]
        var header: PageHeaderFields
    }

    let path: String
    let out: Output
    private let file: (any FileHandle)?
    let fileSize: UInt64
    private(set) var metas: [Meta] = []

    init(path: String, out: Output, needsFile: Bool) throws {
        self.path = path
        self.out = out
        let fs = ReadOnlyFileSystem()
        if needsFile || fs.fileExists(path) {
            let handle = try fs.open(path, mode: .readOnly)
            file = handle
            fileSize = try handle.size()
            metas = try readMetas()
        } else {
            file = nil
            fileSize = 0
        }
    }

    deinit { try? file?.close() }

    private func read(_ count: Int, at offset: UInt64) throws -> [UInt8] {
        guard let file else { return [] }
        return try file.readBytes(count: count, at: offset)
    }

    private func readMeta(slot: Int, offset: UInt64) throws -> Meta {
        let bytes = try read(MetaPageLayout.bodySize, at: offset)
        return bytes.withUnsafeBytes {
            Meta(slot: slot, offset: offset, fields: MetaPageFields($0),
                 decoded: MetaPage.decode($0, fileOffset: offset, expectedSlot: UInt64(slot)))
        }
    }

    /// Meta 0 at offset 0; meta 1 at the page size meta 0 names, or at each allowed size.
    private func readMetas() throws -> [Meta] {
        let first = try readMeta(slot: 0, offset: 0)
        var second: Meta?
        if let page = first.page {
            second = try readMeta(slot: 1, offset: UInt64(page.pageSize))
        } else {
            for size in PageFileLayout.allowedPageSizes {
                let candidate = try readMeta(slot: 1, offset: UInt64(size))
                if candidate.page != nil || second == nil { second = candidate }
                if candidate.page != nil { break }
            }
        }
        return [first] + (second.map { [$0] } ?? [])
    }

    /// The valid meta page with the higher checkpoint sequence.
    var current: (meta: Meta, page: MetaPage)? {
        metas.compactMap { meta in meta.page.map { (meta, $0) } }.max { $0.page.checkpointSequence < $1.page.checkpointSequence }
    }

    private func requireCurrent() throws -> (meta: Meta, page: MetaPage) {
        guard let current else { throw CLIError("\(path): neither meta page is valid (see 'dump STORE meta')") }
        return current
    }

    // MARK: Meta pages

    func dumpMeta() throws {
        out.line("page file \(path): \(fileSize) bytes")
        for meta in metas { printMeta(meta) }
    }

    private func state(of meta: Meta) -> String {
        switch meta.decoded {
        case .notMagic: return "NO MAGIC (not a meta page)"
        case .newerVersion(let version): return "NEWER FORMAT (version \(version))"
        case .damaged(_, let reason):
            return meta.fields.storedChecksum != meta.fields.computedChecksum ? "DAMAGED (checksum mismatch)" : "DAMAGED (\(reason))"
        case .valid: return current?.meta.slot == meta.slot ? "valid, current" : "valid, older"
        }
    }

    private func printMeta(_ meta: Meta) {
        let f = meta.fields
        out.line("meta page \(meta.slot) at offset \(meta.offset): \(state(of: meta))")
        var magic = f.magic.littleEndian
        let magicBytes = withUnsafeBytes(of: &magic) { Array($0) }
        let magicText = String(decoding: magicBytes.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
        var rows: [[String]] = [
            ["  magic", "\(magicText) (\(hexBytes(magicBytes)))"],
            ["  format version", String(f.formatVersion)],
            ["  page size", String(f.pageSize)],
            ["  checkpoint sequence", String(f.checkpointSequence)],
            ["  transaction id", String(f.transactionID)],
            ["  page count", String(f.pageCount)],
            ["  free list", "head page \(f.freeListHead), \(f.freeListPageCount) list pages, \(f.freePageCount) free pages"],
            ["  log position", MessageRecordDescription.describe(f.logPosition)],
        ]
        for (i, counter) in f.counters.enumerated() {
            rows.append(["  counter \(i)", "\(counter)  (\(StoreLayoutNames.counter(i)))"])
        }
        for (i, t) in f.trees.enumerated() {
            let text = t.keyWords == 0
                ? "unused"
                : "root page \(t.rootPage), height \(t.height), \(t.entryCount) entries, \(t.keyWords) key words, \(t.valueSize)-byte values"
            rows.append(["  tree \(i) \(StoreLayoutNames.tree(i))", text])
        }
        let ok = f.storedChecksum == f.computedChecksum
        rows.append(["  checksum", "stored \(hex(f.storedChecksum)), computed \(hex(f.computedChecksum))" + (ok ? " (ok)" : " (MISMATCH)")])
        Query.printRows(rows, to: out)
    }

    // MARK: Pages

    private func readPage(_ number: UInt64, pageSize: Int) throws -> RawPage? {
        let bytes = try read(pageSize, at: number &* UInt64(pageSize))
        guard bytes.count == pageSize else { return nil }
        return RawPage(number: number, bytes: bytes, header: bytes.withUnsafeBytes { PageHeaderFields($0) })
    }

    private func decodeTreePage(_ page: RawPage) -> Result<DecodedBTreePage, any Error> {
        Result { try page.bytes.withUnsafeBytes { try BTree.decodePage($0, pageNumber: page.number, file: path) } }
    }

    static func typeName(_ type: UInt8) -> String {
        switch type {
        case PageType.btreeBranch.rawValue: "branch"
        case PageType.btreeLeaf.rawValue: "leaf"
        case PageType.freeList.rawValue: "free-list"
        case 0: "zero"
        default: "unknown(\(type))"
        }
    }

    /// Whole pages the file holds.
    private func filePages(_ meta: MetaPage) -> UInt64 { fileSize / UInt64(max(1, meta.pageSize)) }

    /// Pages reachable from each tree root (damage stops a branch).
    private func reachablePages(_ meta: MetaPage) throws -> [UInt64: Int] {
        var owner: [UInt64: Int] = [:]
        for (slot, root) in meta.state.trees.enumerated() where root.rootPage != 0 {
            var stack = [root.rootPage]
            while let n = stack.popLast() {
                guard n >= PageFileLayout.metaPageCount, n < meta.pageCount, owner[n] == nil else { continue }
                owner[n] = slot
                guard let page = try readPage(n, pageSize: meta.pageSize), page.header.checksumMatches,
                      case .success(let decoded) = decodeTreePage(page) else { continue }
                if decoded.type == .branch { stack.append(contentsOf: decoded.children) }
            }
        }
        return owner
    }

    /// Free-list pages and free pages of a meta page (a damaged list page ends the chain).
    private func freeList(_ meta: MetaPage) throws -> (listPages: Set<UInt64>, freePages: Set<UInt64>) {
        var listPages = Set<UInt64>()
        var freePages = Set<UInt64>()
        var next = meta.freeListHead
        // Bounded by the file as well, so damaged counts cannot make this loop long.
        let limit = min(meta.pageCount, filePages(meta))
        while next != 0, next < meta.pageCount, !listPages.contains(next) {
            listPages.insert(next)
            guard let page = try readPage(next, pageSize: meta.pageSize), page.header.checksumMatches,
                  let list = try? decodeFreeList(page, meta) else { break }
            for range in list.ranges where range.start < limit {
                for p in range.start..<min(range.start + range.length, limit) { freePages.insert(p) }
            }
            next = list.next
        }
        return (listPages, freePages)
    }

    private func decodeFreeList(_ page: RawPage, _ meta: MetaPage) throws -> (ranges: [FreeRange], next: PageNumber) {
        try page.bytes.withUnsafeBytes {
            try FreeListPage.decode($0, pageCount: meta.pageCount, file: path, fileOffset: page.number &* UInt64(meta.pageSize))
        }
    }

    func dumpPages() throws {
        let (current, meta) = try requireCurrent()
        let owners = try reachablePages(meta)
        let (listPages, freePages) = try freeList(meta)
        out.line("page file \(path): page size \(meta.pageSize), \(meta.pageCount) pages (current meta page \(current.slot), checkpoint \(meta.checkpointSequence))")
        var rows = [["PAGE", "TYPE", "TREE", "LEVEL", "ENTRIES", "WRITE SEQ", "CHECKSUM", "STATE"]]
        for m in metas {
            let ok = m.fields.storedChecksum == m.fields.computedChecksum
            rows.append([String(m.slot), "meta", "-", "-", "-", String(m.fields.checkpointSequence), ok ? "ok" : "BAD",
                         m.slot == current.slot ? "current meta" : "older meta"])
        }
        var leaked = 0
        let listed = min(meta.pageCount, max(PageFileLayout.metaPageCount, filePages(meta) + 1))
        for n in PageFileLayout.metaPageCount..<listed {
            guard let page = try readPage(n, pageSize: meta.pageSize) else {
                rows.append([String(n), "-", "-", "-", "-", "-", "-", "beyond end of file"])
                continue
            }
            let state: String
            if let slot = owners[n] {
                state = "tree \(slot) (\(StoreLayoutNames.tree(slot)))"
            } else if listPages.contains(n) {
                state = "free-list page"
            } else if freePages.contains(n) {
                state = "free"
            } else {
                state = "UNREACHABLE"
                leaked += 1
            }
            rows.append(pageRow(page, state: state))
        }
        Query.printRows(rows, to: out)
        if listed < meta.pageCount {
            out.line("pages \(listed) ..< \(meta.pageCount) are beyond the end of the file (\(fileSize) bytes)")
        }
        if leaked > 0 { out.line("\(leaked) page\(leaked == 1 ? "" : "s") neither reachable nor free") }
    }

    private func pageRow(_ page: RawPage, state: String) -> [String] {
        let h = page.header
        let isTree = h.pageType == PageType.btreeBranch.rawValue || h.pageType == PageType.btreeLeaf.rawValue
        var level = "-"
        if isTree { level = (try? decodeTreePage(page).get()).map { String($0.level) } ?? "?" }
        let checksum = state == "free" ? "-"
            : h.checksumMatches ? (h.pageNumber == page.number ? "ok" : "WRONG PAGE NUMBER \(h.pageNumber)") : "BAD"
        return [String(page.number), Self.typeName(h.pageType), isTree ? String(h.treeSlot) : "-", level,
                String(h.entryCount), String(h.writeSequence), checksum, state]
    }

    // MARK: One page

    func dumpPage(_ number: UInt64) throws {
        if number < PageFileLayout.metaPageCount {
            guard let meta = metas.first(where: { $0.slot == Int(number) }) else { throw CLIError("meta page \(number) cannot be read") }
            printMeta(meta)
            return
        }
        let (_, meta) = try requireCurrent()
        guard number < meta.pageCount else {
            throw CLIError("page \(number) is beyond the page count \(meta.pageCount)")
        }
        guard let page = try readPage(number, pageSize: meta.pageSize) else {
            throw CLIError("page \(number) is beyond the end of \(path)")
        }
        let h = page.header
        out.line("page \(number) at offset \(number * UInt64(meta.pageSize)) (\(meta.pageSize) bytes)")
        let rows: [[String]] = [
            ["  checksum", "stored \(hex(h.storedChecksum)), computed \(hex(h.computedChecksum))" + (h.checksumMatches ? " (ok)" : " (MISMATCH)")],
            ["  type", "\(h.pageType) (\(Self.typeName(h.pageType)))"],
            ["  tree slot", "\(h.treeSlot)"],
            ["  entry count", "\(h.entryCount)"],
            ["  page number", "\(h.pageNumber)" + (h.pageNumber == number ? "" : " (WRONG: expected \(number))")],
            ["  write sequence", "\(h.writeSequence)"],
        ]
        switch h.pageType {
        case PageType.freeList.rawValue: printFreeListPage(page, meta, rows)
        case PageType.btreeBranch.rawValue, PageType.btreeLeaf.rawValue: printTreePage(page, rows)
        default:
            Query.printRows(rows + [["  user word", "\(h.userWord)"]], to: out)
            out.line("  payload: \(hexBytes(page.bytes[PageHeader.size...], limit: 64))")
        }
    }

    private func printFreeListPage(_ page: RawPage, _ meta: MetaPage, _ rows: [[String]]) {
        Query.printRows(rows + [["  next free-list page", "\(page.header.userWord)"]], to: out)
        do {
            let list = try decodeFreeList(page, meta)
            out.line("  runs of free pages:")
            for (i, range) in list.ranges.enumerated() {
                out.line("    [\(i)] pages \(range.start) ..< \(range.start &+ range.length) (\(range.length))")
            }
        } catch {
            out.line("  cannot decode the runs: \(error)")
            out.line("  payload: \(hexBytes(page.bytes[PageHeader.size...], limit: 64))")
        }
    }

    private func printTreePage(_ page: RawPage, _ rows: [[String]]) {
        switch decodeTreePage(page) {
        case .success(let decoded):
            Query.printRows(rows + [["  level", "\(decoded.level)"], ["  key words", "\(decoded.keyWords)"],
                                    ["  value size", "\(decoded.valueSize)"]], to: out)
            func key(_ k: BTreeKey) -> String { "(" + (0..<decoded.keyWords).map { String(k[word: $0]) }.joined(separator: ", ") + ")" }
            out.line("  entries (tree \(decoded.treeSlot) \(StoreLayoutNames.tree(decoded.treeSlot))):")
            for (i, k) in decoded.keys.enumerated() {
                if decoded.type == .branch {
                    out.line("    [\(i)] key \(key(k)) -> child page \(decoded.children[i]) (\(decoded.subtreeCounts[i]) entries)")
                } else {
                    let value = decoded.values[i]
                    out.line("    [\(i)] key \(key(k))" + (value.isEmpty ? "" : " value \(hexBytes(value))"))
                }
            }
        case .failure(let error):
            Query.printRows(rows, to: out)
            out.line("  cannot decode the entries: \(error)")
            out.line("  payload: \(hexBytes(page.bytes[PageHeader.size...], limit: 64))")
        }
    }
}
