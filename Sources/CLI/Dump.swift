import ArgumentParser
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the raw on-disk structures (for debugging the format).",
        discussion: """
            dump STORE meta       both meta pages of the page file, field by field, with checksums
            dump STORE pages      one line per page: type, tree, level, entries, checksum, state
            dump STORE page N     one page: header fields and every entry
            dump STORE log        log segments (headers, sizes) and every record
            The files are only read (never recovered or changed), so a damaged store can be \
            inspected; see spec/page-file.md, spec/btree-page.md, spec/log-segment.md and \
            spec/sealed-segment.md for the bytes.
            """)

    enum What: String, ExpressibleByArgument, CaseIterable {
        case meta, pages, page, log
    }

    @Argument(help: "The store directory.")
    var store: String

    @Argument(help: "meta, pages, page or log.")
    var what: What

    @Argument(help: "The page number (dump STORE page N).")
    var page: UInt64?

    @Option(help: "log: show the records of this segment only.")
    var segment: UInt32?

    @Option(help: "log: show at most this many records.")
    var maxRecords: Int?

    func validate() throws {
        if what == .page && page == nil { throw ValidationError("dump page needs a page number: dump STORE page N") }
        if what != .page && page != nil { throw ValidationError("only 'dump STORE page N' takes a page number") }
        if what != .log && (segment != nil || maxRecords != nil) {
            throw ValidationError("--segment and --max-records apply to 'dump STORE log'")
        }
        if let maxRecords, maxRecords < 0 { throw ValidationError("--max-records must be 0 or more") }
    }

    func run() throws {
        guard StoreAccess.exists(store) || what == .log else { throw CLIError("no Scrollback store at \(store)") }
        let out = Output.standardOutput
        let dumper = try PageFileDumper(path: Path.join(store, PageFileLayout.fileName), out: out, needsFile: what != .log)
        switch what {
        case .meta: try dumper.dumpMeta()
        case .pages: try dumper.dumpPages()
        case .page: try dumper.dumpPage(page ?? 0)
        case .log: try LogDumper(directory: store, out: out).dump(segment: segment, maxRecords: maxRecords)
        }
        out.flush()
    }
}

// MARK: Names from the message-layer design (tree slots and counters)

enum StoreLayoutNames {
    static let trees = ["messages", "messageIDs", "names", "conversations", "activity", "users", "readMarkers", "segments"]
    static let counters = [
        "next seq", "next conversation id", "next user id", "live messages", "cursor secret", "compactions",
        "message format version", "reserved",
    ]
    static func tree(_ slot: Int) -> String { slot >= 0 && slot < trees.count ? trees[slot] : "?" }
}

func hex<T: FixedWidthInteger>(_ value: T, width: Int = MemoryLayout<T>.size * 2) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, width - digits.count)) + digits
}

func hexBytes(_ bytes: some Collection<UInt8>, limit: Int = 32) -> String {
    let shown = bytes.prefix(limit).map { b -> String in
        let d = String(b, radix: 16)
        return d.count == 1 ? "0" + d : d
    }.joined(separator: " ")
    return bytes.count > limit ? shown + " … (\(bytes.count) bytes)" : shown
}

func describePosition(_ position: UInt64) -> String {
    "segment \(position >> 32) offset \(position & 0xFFFF_FFFF) (\(hex(position)))"
}

// MARK: Page file

/// Reads the page file directly (no pager, no recovery): it works on damaged files.
final class PageFileDumper {
    struct Meta {
        var slot: Int
        var offset: UInt64
        var bytes: [UInt8]
        var magicOK: Bool
        var checksumOK: Bool
        var storedChecksum: UInt32
        var computedChecksum: UInt32
        func u64(_ at: Int) -> UInt64 { bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: at) } }
        func u32(_ at: Int) -> UInt32 { bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: at) } }
        func u16(_ at: Int) -> UInt16 { bytes.withUnsafeBytes { $0.loadLE(UInt16.self, at: at) } }
        var valid: Bool { magicOK && checksumOK }
        var sequence: UInt64 { u64(MetaPageLayout.checkpointSequence) }
        var pageSize: Int { Int(u32(MetaPageLayout.pageSize)) }
        var pageCount: UInt64 { u64(MetaPageLayout.pageCount) }
        func tree(_ i: Int) -> TreeRoot {
            let base = MetaPageLayout.treeCatalog + MetaPageLayout.treeEntrySize * i
            return TreeRoot(
                rootPage: u64(base + MetaPageLayout.TreeEntry.rootPage),
                entryCount: u64(base + MetaPageLayout.TreeEntry.entryCount),
                height: bytes[base + MetaPageLayout.TreeEntry.height],
                keyWords: bytes[base + MetaPageLayout.TreeEntry.keyWords],
                valueSize: u16(base + MetaPageLayout.TreeEntry.valueSize))
        }
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
        var bytes = try read(MetaPageLayout.bodySize, at: offset)
        let complete = bytes.count == MetaPageLayout.bodySize
        if !complete { bytes += [UInt8](repeating: 0, count: MetaPageLayout.bodySize - bytes.count) }
        let magicOK = complete && bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: MetaPageLayout.magic) } == PageFileLayout.magic
        let stored = bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: MetaPageLayout.checksum) }
        let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<MetaPageLayout.checksum])) }
        return Meta(slot: slot, offset: offset, bytes: bytes, magicOK: magicOK, checksumOK: complete && stored == computed,
                    storedChecksum: stored, computedChecksum: computed)
    }

    /// Meta 0 at offset 0; meta 1 at the page size meta 0 names, or at each allowed size.
    private func readMetas() throws -> [Meta] {
        let first = try readMeta(slot: 0, offset: 0)
        var second: Meta?
        if first.valid, PageFileLayout.allowedPageSizes.contains(first.pageSize) {
            second = try readMeta(slot: 1, offset: UInt64(first.pageSize))
        } else {
            for size in PageFileLayout.allowedPageSizes {
                let candidate = try readMeta(slot: 1, offset: UInt64(size))
                if candidate.valid || second == nil { second = candidate }
                if candidate.valid { break }
            }
        }
        return [first] + (second.map { [$0] } ?? [])
    }

    /// The valid meta page with the higher sequence.
    var current: Meta? {
        metas.filter { $0.valid && PageFileLayout.allowedPageSizes.contains($0.pageSize) }.max { $0.sequence < $1.sequence }
    }

    func dumpMeta() throws {
        out.line("page file \(path): \(fileSize) bytes")
        for meta in metas { printMeta(meta) }
    }

    private func printMeta(_ meta: Meta) {
        typealias M = MetaPageLayout
        let isCurrent = current.map { $0.slot == meta.slot } ?? false
        let state = !meta.magicOK ? "NO MAGIC (not a meta page)" : !meta.checksumOK ? "DAMAGED (checksum mismatch)" : isCurrent ? "valid, current" : "valid, older"
        out.line("meta page \(meta.slot) at offset \(meta.offset): \(state)")
        let magicBytes = meta.bytes.prefix(8)
        let magicText = String(decoding: magicBytes.map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
        var rows: [[String]] = [
            ["  magic", "\(magicText) (\(hexBytes(magicBytes)))"],
            ["  format version", String(meta.u32(M.formatVersion))],
            ["  page size", String(meta.u32(M.pageSize))],
            ["  checkpoint sequence", String(meta.sequence)],
            ["  transaction id", String(meta.u64(M.transactionID))],
            ["  page count", String(meta.pageCount)],
            ["  free list", "head page \(meta.u64(M.freeListHead)), \(meta.u64(M.freeListPageCount)) list pages, \(meta.u64(M.freePageCount)) free pages"],
            ["  log position", describePosition(meta.u64(M.logPosition))],
        ]
        for i in 0..<PageFileLayout.counterCount {
            rows.append(["  counter \(i)", "\(meta.u64(M.counters + 8 * i))  (\(StoreLayoutNames.counters[i]))"])
        }
        for i in 0..<PageFileLayout.treeSlotCount {
            let t = meta.tree(i)
            let text = t.keyWords == 0
                ? "unused"
                : "root page \(t.rootPage), height \(t.height), \(t.entryCount) entries, \(t.keyWords) key words, \(t.valueSize)-byte values"
            rows.append(["  tree \(i) \(StoreLayoutNames.tree(i))", text])
        }
        rows.append(["  checksum", "stored \(hex(meta.storedChecksum)), computed \(hex(meta.computedChecksum))" + (meta.checksumOK ? " (ok)" : " (MISMATCH)")])
        Query.printRows(rows, to: out)
    }

    private func requireCurrent() throws -> Meta {
        guard let meta = current else { throw CLIError("\(path): neither meta page is valid (see 'dump STORE meta')") }
        return meta
    }

    struct RawPage {
        var number: UInt64
        var bytes: [UInt8]
        var storedChecksum: UInt32
        var computedChecksum: UInt32
        var checksumOK: Bool { storedChecksum == computedChecksum }
        var type: UInt8 { bytes[PageHeader.pageType] }
        var treeSlot: UInt8 { bytes[PageHeader.treeSlot] }
        var entryCount: UInt16 { bytes.withUnsafeBytes { $0.loadLE(UInt16.self, at: PageHeader.entryCount) } }
        var pageNumber: UInt64 { bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: PageHeader.pageNumber) } }
        var writeSequence: UInt64 { bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: PageHeader.writeSequence) } }
        var userWord: UInt64 { bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: PageHeader.userWord) } }
        var level: UInt8 { bytes[BTreePageLayout.levelOffset] }
    }

    private func readPage(_ number: UInt64, pageSize: Int) throws -> RawPage? {
        let bytes = try read(pageSize, at: number &* UInt64(pageSize))
        guard bytes.count == pageSize else { return nil }
        let stored = bytes.withUnsafeBytes { $0.loadLE(UInt32.self, at: PageHeader.checksum) }
        let computed = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[PageHeader.checksummedStart...])) }
        return RawPage(number: number, bytes: bytes, storedChecksum: stored, computedChecksum: computed)
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
    private func filePages(_ meta: Meta) -> UInt64 { fileSize / UInt64(max(1, meta.pageSize)) }

    /// Pages reachable from each tree root (walked on the raw bytes; damage stops a branch).
    private func reachablePages(_ meta: Meta) throws -> [UInt64: Int] {
        var owner: [UInt64: Int] = [:]
        for slot in 0..<PageFileLayout.treeSlotCount {
            let root = meta.tree(slot)
            guard root.rootPage != 0 else { continue }
            var stack = [root.rootPage]
            while let n = stack.popLast() {
                guard n >= PageFileLayout.metaPageCount, n < meta.pageCount, owner[n] == nil else { continue }
                owner[n] = slot
                guard let page = try readPage(n, pageSize: meta.pageSize), page.checksumOK,
                      let decoded = try? page.bytes.withUnsafeBytes({ try BTree.decodePage($0, pageNumber: n, file: path) })
                else { continue }
                if decoded.type == .branch { stack.append(contentsOf: decoded.children) }
            }
        }
        return owner
    }

    /// Free-list pages and free pages of the current meta page (walked on the raw bytes).
    private func freeList(_ meta: Meta) throws -> (listPages: Set<UInt64>, freePages: Set<UInt64>) {
        var listPages = Set<UInt64>()
        var freePages = Set<UInt64>()
        var next = meta.u64(MetaPageLayout.freeListHead)
        while next != 0, next < meta.pageCount, !listPages.contains(next) {
            listPages.insert(next)
            guard let page = try readPage(next, pageSize: meta.pageSize), page.checksumOK,
                  page.type == PageType.freeList.rawValue else { break }
            let capacity = FreeListPageLayout.capacity(pageSize: meta.pageSize)
            for i in 0..<min(Int(page.entryCount), capacity) {
                let offset = FreeListPageLayout.firstEntry + i * FreeListPageLayout.entrySize
                let start = page.bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryStart) }
                let length = page.bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryLength) }
                // Bounded by the file as well, so damaged counts cannot make this loop long.
                let limit = min(meta.pageCount, filePages(meta))
                guard start < limit, length <= limit - start else { continue }
                for p in start..<(start + length) { freePages.insert(p) }
            }
            next = page.userWord
        }
        return (listPages, freePages)
    }

    func dumpPages() throws {
        let meta = try requireCurrent()
        let owners = try reachablePages(meta)
        let (listPages, freePages) = try freeList(meta)
        out.line("page file \(path): page size \(meta.pageSize), \(meta.pageCount) pages (current meta page \(meta.slot), checkpoint \(meta.sequence))")
        var rows = [["PAGE", "TYPE", "TREE", "LEVEL", "ENTRIES", "WRITE SEQ", "CHECKSUM", "STATE"]]
        for m in metas {
            rows.append([String(m.slot), "meta", "-", "-", "-", String(m.sequence), m.checksumOK ? "ok" : "BAD",
                         m.slot == meta.slot ? "current meta" : "older meta"])
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
            let isTree = page.type == PageType.btreeBranch.rawValue || page.type == PageType.btreeLeaf.rawValue
            rows.append([
                String(n), Self.typeName(page.type), isTree ? String(page.treeSlot) : "-", isTree ? String(page.level) : "-",
                String(page.entryCount), String(page.writeSequence),
                state == "free" ? "-" : page.checksumOK ? (page.pageNumber == n ? "ok" : "WRONG PAGE NUMBER \(page.pageNumber)") : "BAD",
                state,
            ])
        }
        Query.printRows(rows, to: out)
        if listed < meta.pageCount {
            out.line("pages \(listed) ..< \(meta.pageCount) are beyond the end of the file (\(fileSize) bytes)")
        }
        if leaked > 0 { out.line("\(leaked) page\(leaked == 1 ? "" : "s") neither reachable nor free") }
    }

    func dumpPage(_ number: UInt64) throws {
        if number < PageFileLayout.metaPageCount {
            guard let meta = metas.first(where: { $0.slot == Int(number) }) else { throw CLIError("meta page \(number) cannot be read") }
            printMeta(meta)
            return
        }
        let meta = try requireCurrent()
        guard number < meta.pageCount else {
            throw CLIError("page \(number) is beyond the page count \(meta.pageCount)")
        }
        guard let page = try readPage(number, pageSize: meta.pageSize) else {
            throw CLIError("page \(number) is beyond the end of \(path)")
        }
        out.line("page \(number) at offset \(number * UInt64(meta.pageSize)) (\(meta.pageSize) bytes)")
        var rows: [[String]] = [
            ["  checksum", "stored \(hex(page.storedChecksum)), computed \(hex(page.computedChecksum))" + (page.checksumOK ? " (ok)" : " (MISMATCH)")],
            ["  type", "\(page.type) (\(Self.typeName(page.type)))"],
            ["  tree slot", "\(page.treeSlot)"],
            ["  entry count", "\(page.entryCount)"],
            ["  page number", "\(page.pageNumber)" + (page.pageNumber == number ? "" : " (WRONG: expected \(number))")],
            ["  write sequence", "\(page.writeSequence)"],
        ]
        switch page.type {
        case PageType.freeList.rawValue:
            rows.append(["  next free-list page", "\(page.userWord)"])
            Query.printRows(rows, to: out)
            let capacity = FreeListPageLayout.capacity(pageSize: meta.pageSize)
            out.line("  runs of free pages:")
            for i in 0..<min(Int(page.entryCount), capacity) {
                let offset = FreeListPageLayout.firstEntry + i * FreeListPageLayout.entrySize
                let start = page.bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryStart) }
                let length = page.bytes.withUnsafeBytes { $0.loadLE(UInt64.self, at: offset + FreeListPageLayout.entryLength) }
                out.line("    [\(i)] pages \(start) ..< \(start &+ length) (\(length))")
            }
        case PageType.btreeBranch.rawValue, PageType.btreeLeaf.rawValue:
            rows.append(["  level", "\(page.level)"])
            rows.append(["  key words", "\(page.bytes[BTreePageLayout.keyWordsOffset])"])
            rows.append(["  value size", "\(page.bytes.withUnsafeBytes { $0.loadLE(UInt16.self, at: BTreePageLayout.valueSizeOffset) })"])
            Query.printRows(rows, to: out)
            do {
                let decoded = try page.bytes.withUnsafeBytes { try BTree.decodePage($0, pageNumber: number, file: path) }
                func key(_ k: BTreeKey) -> String {
                    "(" + (0..<decoded.keyWords).map { String(k[word: $0]) }.joined(separator: ", ") + ")"
                }
                out.line("  entries (tree \(decoded.treeSlot) \(StoreLayoutNames.tree(decoded.treeSlot))):")
                for (i, k) in decoded.keys.enumerated() {
                    if decoded.type == .branch {
                        out.line("    [\(i)] key \(key(k)) -> child page \(decoded.children[i]) (\(decoded.subtreeCounts[i]) entries)")
                    } else {
                        let value = decoded.values[i]
                        out.line("    [\(i)] key \(key(k))" + (value.isEmpty ? "" : " value \(hexBytes(value))"))
                    }
                }
            } catch {
                out.line("  cannot decode the entries: \(error)")
                out.line("  payload: \(hexBytes(page.bytes[PageHeader.size...], limit: 64))")
            }
        default:
            rows.append(["  user word", "\(page.userWord)"])
            Query.printRows(rows, to: out)
            out.line("  payload: \(hexBytes(page.bytes[PageHeader.size...], limit: 64))")
        }
    }
}

// MARK: Log

/// Lists the log's segment files (headers read directly) and its records (through the log's
/// own recovery scan on a read-only view, so nothing on disk changes).
struct LogDumper {
    let directory: String
    let out: Output

    func dump(segment only: UInt32?, maxRecords: Int?) throws {
        let fs = ReadOnlyFileSystem()
        let names = try fs.listDirectory(directory).filter {
            $0.hasPrefix(LogSegmentLayout.filePrefix)
                && ($0.hasSuffix(LogSegmentLayout.fileSuffix) || $0.hasSuffix(SealedSegmentLayout.fileSuffix)
                    || $0.hasSuffix(SealedSegmentLayout.temporarySuffix))
        }
        guard !names.isEmpty else {
            out.line("no log segments in \(directory)")
            return
        }
        out.line("log segments in \(directory):")
        for name in names { try describeFile(name, fs: fs) }

        out.line("records (complete transactions, in log order):")
        var shown = 0
        var skippedTransactions = 0
        var truncated = false
        let log = try Log.open(fileSystem: fs, directory: directory, options: LogOptions(), replayFrom: 0) { txn in
            if let only, txn.segment != only { return }
            if let maxRecords, shown >= maxRecords {
                truncated = true
                skippedTransactions += 1
                return
            }
            out.line("  transaction at \(describePosition(txn.start)): \(txn.recordCount) record\(txn.recordCount == 1 ? "" : "s"), ends at offset \(txn.end & 0xFFFF_FFFF)")
            txn.forEachRecord { position, type, payload in
                if let maxRecords, shown >= maxRecords {
                    truncated = true
                    return
                }
                shown += 1
                out.line("    \(position >> 32):\(position & 0xFFFF_FFFF)  type \(type) \(RecordDescriber.name(type))  \(payload.count) B  \(RecordDescriber.describe(type, payload))")
            }
        }
        defer { try? log.close() }
        if truncated { out.line("  … more records not shown (--max-records \(maxRecords ?? 0)); \(skippedTransactions) more transactions") }
        for info in try log.listSegments() where only == nil || info.id == only {
            out.line("segment \(info.id): \(info.state), records end at offset \(info.endOffset)")
        }
    }

    private func describeFile(_ name: String, fs: ReadOnlyFileSystem) throws {
        let path = Path.join(directory, name)
        let handle = try fs.open(path, mode: .readOnly)
        defer { try? handle.close() }
        let size = try handle.size()
        let header = try handle.readBytes(count: LogSegmentLayout.headerSize, at: 0)
        guard header.count == LogSegmentLayout.headerSize else {
            out.line("  \(name): \(size) bytes, header truncated")
            return
        }
        let magic = header.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) }
        let version = header.withUnsafeBytes { $0.loadLE(UInt32.self, at: LogSegmentLayout.headerVersionOffset) }
        let id = header.withUnsafeBytes { $0.loadLE(UInt32.self, at: LogSegmentLayout.headerSegmentIDOffset) }
        let salt = header.withUnsafeBytes { $0.loadLE(UInt32.self, at: LogSegmentLayout.headerSaltOffset) }
        let stored = header.withUnsafeBytes { $0.loadLE(UInt32.self, at: LogSegmentLayout.headerChecksumOffset) }
        let computed = header.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<LogSegmentLayout.headerChecksumOffset])) }
        let kind = magic == LogSegmentLayout.magic ? "raw" : magic == SealedSegmentLayout.magic ? "sealed" : "UNKNOWN MAGIC \(hex(magic))"
        out.line("  \(name): \(kind), \(size) bytes, version \(version), id \(id), salt \(hex(salt)), header checksum "
            + (stored == computed ? "ok" : "MISMATCH (stored \(hex(stored)), computed \(hex(computed)))"))
        if magic == SealedSegmentLayout.magic, size >= UInt64(SealedSegmentLayout.headerSize + SealedSegmentLayout.footerSize) {
            let footer = try handle.readBytes(count: SealedSegmentLayout.footerSize, at: size - UInt64(SealedSegmentLayout.footerSize))
            guard footer.count == SealedSegmentLayout.footerSize else { return }
            let indexOffset = footer.withUnsafeBytes { $0.loadLE(UInt64.self, at: SealedSegmentLayout.footerIndexOffset) }
            let blocks = footer.withUnsafeBytes { $0.loadLE(UInt32.self, at: SealedSegmentLayout.footerBlockCount) }
            let rawLength = footer.withUnsafeBytes { $0.loadLE(UInt32.self, at: SealedSegmentLayout.footerRawLength) }
            let fStored = footer.withUnsafeBytes { $0.loadLE(UInt32.self, at: SealedSegmentLayout.footerChecksum) }
            let fComputed = footer.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<SealedSegmentLayout.footerChecksum])) }
            out.line("      footer: \(blocks) LZ4 blocks, index at offset \(indexOffset), replaces \(rawLength) raw bytes, footer checksum "
                + (fStored == fComputed ? "ok" : "MISMATCH"))
        }
    }
}

/// Best-effort decoding of the message layer's record types (16…23, Sources/Messaging/
/// MessageLayout.swift); anything that does not parse is shown as hex.
///
/// INTEGRATION POINT (message layer): keep in step with spec/message-records.md.
enum RecordDescriber {
    static func name(_ type: UInt8) -> String {
        switch type {
        case 16: "message"
        case 17: "delete"
        case 18: "markRead"
        case 19: "newConversation"
        case 20: "newUser"
        case 21: "relocate"
        case 22: "initialize"
        case 23: "retireSegment"
        default: "?"
        }
    }

    private static func text(_ r: inout ByteReader, _ count: Int) throws -> String {
        let bytes = try r.readBytes(count)
        return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
    }

    /// A type-16 payload (also the tail of a type-21 record).
    private static func message(_ r: inout ByteReader) throws -> String {
        let seq: UInt64 = try r.read(), conversation: UInt64 = try r.read(), createdAt: UInt64 = try r.read()
        let kind: UInt8 = try r.read(), flags: UInt8 = try r.read()
        let idLength = Int(try r.read(UInt8.self)), senderLength = Int(try r.read(UInt8.self))
        let replyLength = Int(try r.read(UInt8.self))
        _ = try r.read(UInt8.self)
        let bodyLength = Int(try r.read(UInt32.self))
        let id = try text(&r, idLength), sender = try text(&r, senderLength), reply = try text(&r, replyLength)
        let body = try r.readBytes(bodyLength)
        guard r.remaining == 0 else { throw CLIError("trailing bytes") }
        var preview = String(decoding: body.prefix(40), as: UTF8.self)
        if body.count > 40 { preview += "…" }
        var flagNames: [String] = []
        if flags & 1 != 0 { flagNames.append("edited") }
        if flags & 2 != 0 { flagNames.append("reply") }
        return "seq \(seq) conversation \(conversation) createdAt \(Int64(bitPattern: createdAt)) kind \(kind) flags \(flags)"
            + (flagNames.isEmpty ? "" : " (\(flagNames.joined(separator: ",")))") + " id \(id) sender \(sender)"
            + (replyLength > 0 ? " replyTo \(reply)" : "") + " body \(bodyLength) B \"\(preview)\""
    }

    static func describe(_ type: UInt8, _ payload: UnsafeRawBufferPointer) -> String {
        var r = ByteReader(payload, file: "")
        do {
            switch type {
            case 16:
                return try message(&r)
            case 21:
                let from: UInt64 = try r.read()
                return "copy of the record at \(describePosition(from)): " + (try message(&r))
            case 17:
                let c: UInt64 = try r.read(), t: UInt64 = try r.read(), s: UInt64 = try r.read(), h: UInt64 = try r.read()
                guard r.remaining == 0 else { break }
                return "conversation \(c) createdAt \(Int64(bitPattern: t)) seq \(s) idHash \(hex(h))"
            case 18:
                let u: UInt64 = try r.read(), c: UInt64 = try r.read(), t: UInt64 = try r.read(), s: UInt64 = try r.read()
                guard r.remaining == 0 else { break }
                return "user \(u) conversation \(c) through createdAt \(Int64(bitPattern: t)) seq \(s)"
            case 19, 20:
                let id: UInt64 = try r.read()
                let length = Int(try r.read(UInt8.self))
                let name = try text(&r, length)
                guard r.remaining == 0 else { break }
                return "\(type == 19 ? "conversation" : "user") \(id) name \(name)"
            case 22:
                let version: UInt64 = try r.read(), secret: UInt64 = try r.read()
                guard r.remaining == 0 else { break }
                return "message format version \(version), cursor secret \(hex(secret))"
            case 23:
                let count: UInt64 = try r.read()
                guard count <= UInt64(r.remaining / 8) else { break }
                var ids: [String] = []
                for _ in 0..<count { ids.append(String(try r.read(UInt64.self))) }
                guard r.remaining == 0 else { break }
                return "retires segments [\(ids.joined(separator: ", "))]"
            default:
                break
            }
        } catch {}
        return hexBytes(payload, limit: 48)
    }
}
