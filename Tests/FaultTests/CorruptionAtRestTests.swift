@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// Corruption at rest (issue 6), at the `MessageStore` level.
///
/// A healthy store (several conversations, edits, deletes, read markers, sealed segments, a
/// compaction, checkpoints and un-checkpointed commits at the end) is built on the crash
/// simulator and "powered off"; then, for each file type — page file, raw (active) log
/// segment, sealed segment — one damage is applied per case: a flipped bit (random offsets
/// and offsets computed from the spec layouts), a zeroed 512-byte sector, a truncation, two
/// swapped pages / blocks / sectors, appended garbage. Each case opens the damaged store and
/// runs every query primitive over every conversation and id:
///
/// - open and every query give either exactly the healthy result or
///   `ScrollbackError.corrupted` naming a store file and an offset within it; never a trap,
///   a hang (each case is bounded) or a wrong result;
/// - if a query failed, `verify()` reports something;
/// - if the damage changed live bytes, `verify()` reports it (when the store opened).
///
/// What is *not* live, so may go unreported (see `Liveness`):
/// - page file: free pages (never read), the unused tail `0x200..<pageSize` of meta pages,
///   bytes past `pageCount * pageSize` (appended garbage), and the meta pages themselves —
///   a damaged meta page is replaced by the other one plus a longer log replay, which either
///   gives the exact data or fails with a typed error (redundancy, not silent loss);
/// - raw active segment: appended garbage (a torn tail, never acknowledged), and the
///   documented known limit of spec/log-segment.md: damage in the last synced window of the
///   active segment (no later commit witnesses it) is cut off as a torn tail. The test then
///   requires the store to read exactly as the healthy store cut at the same transaction
///   boundary, and counts these cases separately ("tail cut").
/// Sorted runs (format 2's sealed history) are verified block by block by `verify()`, so every
/// damage there is live.
@Suite(.serialized) struct CorruptionAtRestTests {
    static let messageCount = 480

    enum FileKind: String, CaseIterable { case pages, raw, run }

    enum Damage: CustomStringConvertible {
        case flip(offset: Int, bit: Int, why: String)
        case zeroSector(Int)
        case truncate(Int)
        case swap(Range<Int>, Range<Int>, what: String)
        case append(Int)
        /// The whole file is lost (an empty array stands for "no file").
        case remove

        var description: String {
            switch self {
            case let .flip(offset, bit, why): "flip bit \(bit) at \(offset) (\(why))"
            case let .zeroSector(start): "zero sector at \(start)"
            case let .truncate(length): "truncate to \(length)"
            case let .swap(a, b, what): "swap \(what) \(a) and \(b)"
            case let .append(count): "append \(count) garbage bytes"
            case .remove: "remove the file"
            }
        }

        var kind: String {
            switch self {
            case .flip: "flip"
            case .zeroSector: "zero sector"
            case .truncate: "truncate"
            case .swap: "swap"
            case .append: "append garbage"
            case .remove: "remove"
            }
        }

        func apply(to original: [UInt8], rng: inout SeededRandom) -> [UInt8] {
            var bytes = original
            switch self {
            case let .flip(offset, bit, _): bytes[offset] ^= UInt8(1) << UInt8(bit)
            case let .zeroSector(start): for i in start..<min(start + 512, bytes.count) { bytes[i] = 0 }
            case let .truncate(length): bytes.removeLast(bytes.count - length)
            case let .swap(a, b, _):
                // Swap two ranges (possibly of different lengths: the bytes between move).
                let (first, second) = a.lowerBound < b.lowerBound ? (a, b) : (b, a)
                bytes = Array(original[..<first.lowerBound]) + Array(original[second]) + Array(original[first.upperBound..<second.lowerBound])
                    + Array(original[first]) + Array(original[second.upperBound...])
            case let .append(count): bytes += (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case .remove: bytes = []
            }
            return bytes
        }
    }

    struct Counts {
        var cases = 0, correct = 0, typedErrors = 0, openErrors = 0, verifyReported = 0, tailCut = 0, unchanged = 0
        var live = 0, errorsNamingFile = 0
        var byKind: [String: Int] = [:]
    }

    /// Two stores: one whose last maintenance was a checkpoint (older sealed segments are not
    /// read at open: reads and verify() must find their damage), one whose last maintenance
    /// was a compaction that removed segments (the older meta page then refers to a removed
    /// segment). Each seed alternates between them.
    @Test(arguments: TestSeeds.seeds(default: [0xC0FFEE, 0xC0FFEF, 0xD00E, 0xD00F]))
    func damagedStoreGivesCorrectDataOrTypedErrors(seed: UInt64) throws {
        let finalCompaction = seed % 2 == 1
        let messageCount = finalCompaction ? 330 : Self.messageCount
        // 1. The healthy store.
        let files = try FaultFixture.healthyImage(seed: seed, messages: messageCount, bodyBytes: 300, finalCompaction: finalCompaction)
        let image = StoreImage(files: files)
        let pagesPath = "/db/pages"
        let runPaths = files.keys.filter { $0.hasSuffix(".run") }.sorted()
        let rawPaths = files.keys.filter { $0.hasSuffix(".seg") }.sorted()
        #expect(files[pagesPath] != nil && !runPaths.isEmpty && !rawPaths.isEmpty, "every file type must exist: \(files.keys.sorted())")
        let ids = FaultFixture.allIDs(messages: messageCount)

        let runner = CaseRunner(pristine: files, ids: ids)
        let expected = try runner.healthyObservation()
        #expect(expected.errors.isEmpty, "the healthy store must answer every query: \(expected.errors.first.map { "\($0.error)" } ?? "")")

        // 2. The cases, per file type.
        var rng = SeededRandom(seed: seed ^ 0x5EED)
        var plan: [(FileKind, String, Damage)] = []
        let pages = files[pagesPath]!
        let layout = image.pageLayout(pages)
        plan += Self.pageCases(pages, layout, &rng).map { (.pages, pagesPath, $0) }
        let lastRaw = rawPaths.last!
        for path in rawPaths { plan += Self.rawCases(files[path]!, image, &rng, share: path == lastRaw ? 1 : 4).map { (.raw, path, $0) } }
        for (i, path) in runPaths.enumerated() {
            plan += Self.runCases(files[path]!, image, &rng, full: i == 0).map { (.run, path, $0) }
        }
        print("corruption at rest seed \(seed)\(finalCompaction ? " (ends with a compaction)" : ""): \(files.count) files (\(runPaths.count) runs, \(rawPaths.count) raw, page file \(pages.count) bytes, \(layout.livePages.count) live pages of \(layout.pageCount)), \(plan.count) cases")

        let lastRawCommitEnds = image.frames(files[lastRaw]!).filter { $0.type == 1 }.map { $0.offset + 21 }
        var counts: [FileKind: Counts] = [:]
        var failures = 0
        for (kind, path, damage) in plan {
            let original = files[path]!
            let damaged = damage.apply(to: original, rng: &rng)
            var c = counts[kind] ?? Counts()
            c.cases += 1
            c.byKind[damage.kind, default: 0] += 1
            if damaged == original { c.unchanged += 1; counts[kind] = c; continue }
            let live = Self.isLive(kind: kind, path: path, damage: damage, original: original, damaged: damaged, layout: layout,
                                   lastRaw: path == lastRaw, logEnd: lastRawCommitEnds.last ?? 24)
            if live { c.live += 1 }
            // Where a torn-tail cut would put the end of the active segment: the end of the
            // last complete transaction before the damage (24 if none).
            var cutPoint: Int? = nil
            if path == lastRaw {
                let start = Self.damageStart(damage, original: original)
                cutPoint = lastRawCommitEnds.last { $0 <= start } ?? 24
            }
            var removing = false
            if case .remove = damage { removing = true }
            let outcome = runner.run(path: path, damaged: damaged, removing: removing, expected: expected, cutPoint: cutPoint, timeout: 30)
            let label = "seed \(seed), \(path): \(damage)"
            for problem in outcome.problems {
                failures += 1
                if failures <= 25 { Issue.record("\(label): \(problem)") }
            }
            switch outcome.result {
            case .openFailed: c.openErrors += 1; c.typedErrors += 1
            case .opened(let queryErrors, let verifyProblems, let tailCutAt):
                if queryErrors > 0 { c.typedErrors += 1 } else { c.correct += 1 }
                if !verifyProblems.isEmpty { c.verifyReported += 1 }
                if tailCutAt != nil {
                    c.tailCut += 1
                } else if live && verifyProblems.isEmpty {
                    failures += 1
                    if failures <= 25 { Issue.record("\(label): live damage, yet verify() reports nothing") }
                }
            case .hung:
                failures += 1
                Issue.record("\(label): the case did not finish within its bound")
            }
            if outcome.errorNamesFile { c.errorsNamingFile += 1 }
            counts[kind] = c
        }
        for kind in FileKind.allCases {
            let c = counts[kind] ?? Counts()
            print("  \(kind.rawValue): \(c.cases) cases (\(c.byKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))); "
                + "\(c.unchanged) left the bytes unchanged, \(c.live) hit live data; outcomes: \(c.correct) correct, "
                + "\(c.typedErrors) typed errors (\(c.openErrors) at open, \(c.errorsNamingFile) naming the damaged file), "
                + "\(c.verifyReported) reported by verify(), \(c.tailCut) torn-tail cuts (known limit)")
            #expect(c.cases >= 50, "\(kind): too few cases")
            #expect(c.typedErrors > 0, "\(kind): no damage was ever detected")
        }
        if failures > 0 { print("corruption at rest: \(failures) failures; replay with SCROLLBACK_SEED=\(seed)") }
    }

    // MARK: Which damage hits live data

    static func changedRange(_ original: [UInt8], _ damaged: [UInt8]) -> Range<Int>? {
        let n = min(original.count, damaged.count)
        var lo = 0
        while lo < n && original[lo] == damaged[lo] { lo += 1 }
        if lo == n && original.count == damaged.count { return nil }
        var hi = n
        if original.count == damaged.count { while hi > lo && original[hi - 1] == damaged[hi - 1] { hi -= 1 } }
        return lo..<max(hi, lo + 1)
    }

    static func damageStart(_ damage: Damage, original: [UInt8]) -> Int {
        switch damage {
        case let .flip(offset, _, _): offset
        case let .zeroSector(start): start
        case let .truncate(length): length
        case let .swap(a, b, _): min(a.lowerBound, b.lowerBound)
        case .append: original.count
        case .remove: 0
        }
    }

    static func isLive(kind: FileKind, path: String, damage: Damage, original: [UInt8], damaged: [UInt8],
                       layout: StoreImage.PageLayout, lastRaw: Bool, logEnd: Int) -> Bool {
        switch kind {
        case .run:
            return true
        case .raw:
            if case .append = damage { return !lastRaw }
            // The active segment's preallocated zeros after its last commit hold nothing:
            // damage wholly inside them changes no answer (recovery cuts them as a torn tail).
            if lastRaw, damageStart(damage, original: original) >= logEnd, damaged.count >= logEnd { return false }
            return true
        case .pages:
            let size = layout.pageSize
            let livePages = layout.livePages
            switch damage {
            case .append: return false
            case let .truncate(length):
                let end = ((livePages.max() ?? 1) + 1) * size
                return length < end
            default:
                // Every page whose bytes changed.
                var changedPages = Set<Int>()
                let n = min(original.count, damaged.count)
                var i = 0
                while i < n {
                    let page = i / size
                    let end = min((page + 1) * size, n)
                    if original[i..<end] != damaged[i..<end] { changedPages.insert(page) }
                    i = end
                }
                // Damage to the meta page in use makes the pager fall back to the other meta
                // page (an older checkpoint) and replay more log: the pages live in the newer
                // state may then be unreachable, so nothing is required of verify().
                if changedPages.contains(layout.metaInUse) { return false }
                return !changedPages.isDisjoint(with: livePages)
            }
        }
    }

    // MARK: Case plans

    static func sectorStarts(_ count: Int) -> [Int] { stride(from: 0, to: count, by: 512).map { $0 } }

    static func pageCases(_ b: [UInt8], _ layout: StoreImage.PageLayout, _ rng: inout SeededRandom) -> [Damage] {
        let size = layout.pageSize
        var cases: [Damage] = []
        func flip(_ offset: Int, _ why: String) {
            if offset >= 0 && offset < b.count { cases.append(.flip(offset: offset, bit: Int(rng.next() % 8), why: why)) }
        }
        // Both meta pages, every field (spec/page-file.md, "Meta page").
        var metaFields: [(Int, String)] = [(0, "magic"), (7, "magic"), (8, "version"), (0xC, "page size"), (0x10, "sequence"),
            (0x18, "transaction id"), (0x20, "page count"), (0x28, "free-list head"), (0x30, "free-list page count"),
            (0x38, "free page count"), (0x40, "log position"), (0x44, "log position segment"), (0x48, "counter 0"),
            (0x60, "counter 3"), (0x68, "counter 4 (secret)"), (0x78, "counter 6 (version)"),
            (0x148, "reserved"), (0x1FC, "checksum"), (0x300, "unused tail")]
        for s in 0..<8 {
            let entry: Int = 0x88 + 24 * s
            metaFields.append((entry, "slot \(s) root"))
            metaFields.append((entry + 8, "slot \(s) count"))
            metaFields.append((entry + 16, "slot \(s) height"))
            metaFields.append((entry + 17, "slot \(s) key words"))
            metaFields.append((entry + 18, "slot \(s) value size"))
            metaFields.append((entry + 20, "slot \(s) reserved"))
        }
        for meta in 0..<2 { for (offset, why) in metaFields { flip(meta * size + offset, "meta \(meta) \(why)") } }
        // Live tree pages: header fields and entries (spec/btree-page.md).
        let treePages = layout.treePages.sorted()
        let sample = layout.roots + treePages.shuffled(using: &rng).prefix(14)
        for page in sample {
            let base = page * size
            guard let info = layout.pageInfo[page] else { continue }
            let entrySize = info.leaf ? info.keyWords * 8 + info.valueSize : 16 + info.keyWords * 8
            let fields: [(Int, String)] = [(0, "checksum"), (4, "page type"), (5, "tree slot"), (6, "entry count"), (8, "page number"),
                (16, "write sequence"), (0x18, "level"), (0x19, "key words"), (0x1A, "value size"), (0x1C, "insert hint"),
                (0x1E, "reserved"), (0x20, "first entry"), (0x20 + 8, info.leaf ? "first key word 1" : "first subtree count"),
                (0x20 + max(0, info.entries - 1) * entrySize + entrySize - 1, "last entry's last byte"),
                (0x20 + info.entries * entrySize, "first byte after the entries"), (size - 1, "last byte")]
            for (offset, why) in fields { flip(base + offset, "page \(page) \(info.leaf ? "leaf" : "branch") \(why)") }
        }
        // Free-list pages.
        for page in layout.freeListPages.sorted() {
            for (offset, why) in [(0, "checksum"), (4, "type"), (6, "run count"), (24, "next"), (32, "first run page"), (40, "first run length")] {
                flip(page * size + offset, "free-list page \(page) \(why)")
            }
        }
        // Free pages (not live).
        let free = (2..<layout.pageCount).filter { !layout.livePages.contains($0) }
        for page in free.shuffled(using: &rng).prefix(8) { flip(page * size + Int(rng.next() % UInt64(size)), "free page \(page)") }
        // Random offsets.
        for _ in 0..<60 { flip(Int(rng.next() % UInt64(b.count)), "random") }
        // Zeroed sectors: every sector of both meta pages' bodies, sectors of live pages, random.
        cases += [0, 512, size, size + 512].map { .zeroSector($0) }
        for page in sample.prefix(8) { cases.append(.zeroSector(page * size + 512 * Int(rng.next() % UInt64(size / 512)))) }
        for start in sectorStarts(b.count).shuffled(using: &rng).prefix(24) { cases.append(.zeroSector(start)) }
        // Truncations.
        var lengths = [0, 100, size, 2 * size, 3 * size, b.count - 1, b.count - size, b.count - 512]
        for _ in 0..<12 { lengths.append(Int(rng.next() % UInt64(b.count))) }
        cases += lengths.filter { $0 >= 0 && $0 < b.count }.map { .truncate($0) }
        // Swapped pages.
        let pageCount = b.count / size
        let livePages = layout.livePages.sorted()
        for i in 0..<20 {
            let a = i < 10 ? livePages[Int(rng.next() % UInt64(livePages.count))] : 2 + Int(rng.next() % UInt64(pageCount - 2))
            var c = i % 3 == 0 ? Int(rng.next() % 2) : 2 + Int(rng.next() % UInt64(pageCount - 2))
            if c == a { c = a == 2 ? 3 : 2 }
            cases.append(.swap(a * size..<(a + 1) * size, c * size..<(c + 1) * size, what: "pages \(a), \(c)"))
        }
        cases += [1, 511, 512, 4096, 9000].map { .append($0) }
        cases.append(.remove)
        return cases
    }

    static func rawCases(_ b: [UInt8], _ image: StoreImage, _ rng: inout SeededRandom, share: Int) -> [Damage] {
        var cases: [Damage] = []
        func flip(_ offset: Int, _ why: String) {
            if offset >= 0 && offset < b.count { cases.append(.flip(offset: offset, bit: Int(rng.next() % 8), why: why)) }
        }
        for (offset, why) in [(0, "magic"), (7, "magic"), (8, "version"), (12, "segment id"), (16, "salt"), (20, "header crc")] {
            flip(offset, "header \(why)")
        }
        let frames = image.frames(b)
        let commits = frames.filter { $0.type == 1 }
        // The last transactions (the un-checkpointed tail), then a sample of the rest.
        let picked = Array(frames.suffix(10)) + frames.dropLast(10).shuffled(using: &rng).prefix(30 / share)
        for frame in picked {
            let what = frame.type == 1 ? "commit" : "record type \(frame.type)"
            flip(frame.offset, "\(what) at \(frame.offset): crc")
            flip(frame.offset + 4, "\(what) at \(frame.offset): length")
            flip(frame.offset + 8, "\(what) at \(frame.offset): type")
            flip(frame.offset + 9, "\(what) at \(frame.offset): first payload byte")
            flip(frame.offset + 8 + frame.length, "\(what) at \(frame.offset): last payload byte")
        }
        for commit in commits.suffix(5) {
            flip(commit.offset + 9, "commit at \(commit.offset): durable through")
            flip(commit.offset + 13, "commit at \(commit.offset): transaction start")
            flip(commit.offset + 17, "commit at \(commit.offset): record count")
        }
        for _ in 0..<(60 / share) { flip(24 + Int(rng.next() % UInt64(b.count - 24)), "random") }
        let sectors = sectorStarts(b.count)
        cases += ([0] + sectors.suffix(3) + sectors.shuffled(using: &rng).prefix(24 / share)).map { .zeroSector($0) }
        var lengths = [0, 10, 24, 25, b.count - 1, b.count - 21]
        if let last = commits.last, commits.count >= 3 {
            lengths += [commits[commits.count - 2].offset + 21, commits[commits.count - 3].offset + 21, last.offset]
        }
        for _ in 0..<(14 / share) { lengths.append(Int(rng.next() % UInt64(b.count))) }
        cases += lengths.filter { $0 >= 0 && $0 < b.count }.map { .truncate($0) }
        for _ in 0..<(10 / share) where sectors.count > 2 {
            let a = sectors[Int(rng.next() % UInt64(sectors.count - 1))], c = sectors[Int(rng.next() % UInt64(sectors.count - 1))]
            if a != c { cases.append(.swap(a..<a + 512, c..<c + 512, what: "sectors")) }
        }
        if frames.count > 4 {
            let x = frames[frames.count / 3], y = frames[frames.count / 2]
            cases.append(.swap(x.offset..<x.offset + 9 + x.length, y.offset..<y.offset + 9 + y.length, what: "frames"))
        }
        cases += [1, 21, 100, 700].map { .append($0) }
        cases.append(.remove)
        return cases
    }

    static func runCases(_ b: [UInt8], _ image: StoreImage, _ rng: inout SeededRandom, full: Bool) -> [Damage] {
        var cases: [Damage] = []
        func flip(_ offset: Int, _ why: String) {
            if offset >= 0 && offset < b.count { cases.append(.flip(offset: offset, bit: Int(rng.next() % 8), why: why)) }
        }
        let share = full ? 1 : 4
        let layout = image.runLayout(b)
        let footer = b.count - 48
        if full {
            for (offset, why) in [(0, "magic"), (7, "magic"), (8, "version"), (12, "run id"), (16, "key words"), (20, "reserved"), (28, "header crc")] {
                flip(offset, "header \(why)")
            }
            for (i, block) in layout.blocks.enumerated() {
                flip(block.fileOffset, "block \(i) first byte")
                flip(block.fileOffset + block.length / 2, "block \(i) middle")
                flip(block.fileOffset + block.length - 1, "block \(i) last byte")
            }
            for (i, entry) in layout.indexEntries.enumerated() {
                for (offset, why) in [(0, "first key"), (24, "last key"), (48, "file offset"), (56, "stored length"), (60, "raw length"),
                                      (64, "record count"), (68, "codec"), (69, "reserved"), (76, "block crc")] {
                    flip(entry + offset, "index entry \(i) \(why)")
                }
            }
            let table = layout.indexOffset + 80 * layout.blocks.count
            for p in 0..<((layout.blocks.count + 63) / 64) {
                for (offset, why) in [(0, "last key"), (23, "last key's last byte"), (24, "first offset"), (32, "page crc"), (36, "reserved")] {
                    flip(table + 40 * p + offset, "page table entry \(p) \(why)")
                }
            }
            for (offset, why) in [(0, "index offset"), (8, "block count"), (12, "LZ4 HC blocks"), (16, "record count"), (24, "payload bytes"),
                                  (32, "reserved"), (40, "index crc"), (44, "footer crc")] {
                flip(footer + offset, "footer \(why)")
            }
        } else if let block = layout.blocks.randomElement(using: &rng) {
            flip(block.fileOffset + Int(rng.next() % UInt64(block.length)), "a block")
            flip(footer + Int(rng.next() % 48), "footer")
        }
        for _ in 0..<(40 / share) { flip(Int(rng.next() % UInt64(b.count)), "random") }
        let sectors = sectorStarts(b.count)
        cases += ([0] + sectors.suffix(1) + sectors.shuffled(using: &rng).prefix(16 / share)).map { .zeroSector($0) }
        var lengths = [0, 32, 47, b.count - 1, b.count - 48, layout.indexOffset]
        for _ in 0..<(10 / share) { lengths.append(Int(rng.next() % UInt64(b.count))) }
        cases += lengths.filter { $0 >= 0 && $0 < b.count }.map { .truncate($0) }
        if layout.blocks.count >= 2 {
            for _ in 0..<(8 / share) {
                let i = Int(rng.next() % UInt64(layout.blocks.count)), j = Int(rng.next() % UInt64(layout.blocks.count))
                if i == j { continue }
                let x = layout.blocks[i], y = layout.blocks[j]
                cases.append(.swap(x.fileOffset..<x.fileOffset + x.length, y.fileOffset..<y.fileOffset + y.length, what: "blocks \(i), \(j)"))
            }
        }
        cases += [1, 48, 300].map { .append($0) }
        cases.append(.remove)
        return cases
    }
}

/// Opens damaged copies of a store image and checks one case.
final class CaseRunner: @unchecked Sendable {
    let pristine: [String: [UInt8]]
    let ids: [String]
    /// Observations of the healthy store cut at a log length (the known-limit comparison).
    private var cutObservations: [String: Observation] = [:]

    init(pristine: [String: [UInt8]], ids: [String]) {
        self.pristine = pristine
        self.ids = ids
    }

    enum Result {
        case openFailed
        case opened(queryErrors: Int, verify: [String], tailCutAt: Int?)
        case hung
    }

    struct Outcome {
        var result: Result = .hung
        var problems: [String] = []
        var errorNamesFile = false
    }

    func fileSystem(replacing path: String? = nil, with bytes: [UInt8] = [], removing: Bool = false) -> MemoryFileSystem {
        let fs = MemoryFileSystem()
        try? fs.createDirectory(FaultFixture.directory)
        for (file, contents) in pristine where !(removing && file == path) {
            fs.setContents(of: file, to: file == path ? bytes : contents)
        }
        return fs
    }

    func healthyObservation() throws -> Observation {
        let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fileSystem())
        let observation = Observation.observe(store, ids: ids, searches: true)
        #expect(try store.verify() == [])
        return observation
    }

    /// Checks that `error` is `.corrupted` naming a store file (or the store) and an offset
    /// inside it. Returns a problem, or nil; sets `namesFile`.
    func checkError(_ error: any Error, damagedPath: String, damagedSize: Int, namesFile: inout Bool) -> String? {
        guard case let ScrollbackError.corrupted(file, offset, _) = error else { return "not a typed corruption error: \(error)" }
        if file == damagedPath { namesFile = true }
        guard file.hasPrefix(FaultFixture.directory + "/") else {
            return "the error names \(file), not a file of the store: \(error)"
        }
        // A file the store needs but cannot find (e.g. a removed segment an old checkpoint
        // still refers to) has no size to check the offset against.
        guard let size = pristine[file]?.count ?? (file == damagedPath ? damagedSize : nil) else { return nil }
        let bound = max(size, file == damagedPath ? damagedSize : 0)
        if offset > UInt64(bound) + 16384 { return "the error's offset \(offset) is outside \(file) (\(bound) bytes): \(error)" }
        return nil
    }

    func run(path: String, damaged: [UInt8], removing: Bool, expected: Observation, cutPoint: Int?, timeout: Double) -> Outcome {
        let box = Box(Outcome())
        let ok = finishes(within: timeout) { [self] in
            box.value = self.runCase(path: path, damaged: damaged, removing: removing, expected: expected, cutPoint: cutPoint)
        }
        if !ok { return Outcome(result: .hung) }
        return box.value
    }

    private func runCase(path: String, damaged: [UInt8], removing: Bool, expected: Observation, cutPoint: Int?) -> Outcome {
        var outcome = Outcome()
        let fs = fileSystem(replacing: path, with: damaged, removing: removing)
        let store: MessageStore
        do {
            store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
        } catch {
            if let problem = checkError(error, damagedPath: path, damagedSize: damaged.count, namesFile: &outcome.errorNamesFile) {
                outcome.problems.append("open: \(problem)")
            }
            outcome.result = .openFailed
            return outcome
        }
        defer { try? store.close() }
        let observation = Observation.observe(store, ids: ids, searches: true)
        // The known limit: recovery cut the active segment at the last commit before the
        // damage (no later commit witnessed it). Then the store must read exactly as the
        // healthy store cut there.
        var reference = expected
        var tailCut: Int? = nil
        if let cutPoint, observation.firstWrongResult(comparedTo: expected) != nil {
            let cut = cutObservation(path: path, length: cutPoint)
            if observation.firstWrongResult(comparedTo: cut) == nil {
                tailCut = cutPoint
                reference = cut
            }
        }
        for (index, error) in observation.errors {
            if let problem = checkError(error, damagedPath: path, damagedSize: damaged.count, namesFile: &outcome.errorNamesFile) {
                outcome.problems.append("\(observation.labels[index]): \(problem)")
            }
        }
        if let wrong = observation.firstWrongResult(comparedTo: reference) {
            outcome.problems.append("WRONG RESULT for \(observation.labels[wrong]) without an error:\n got \(observation.results[wrong].prefix(400))\n expected \(reference.results[wrong].prefix(400))")
        }
        let problems: [String]
        do { problems = try store.verify() } catch {
            problems = ["verify threw \(error)"]
        }
        if !observation.errors.isEmpty && problems.isEmpty {
            outcome.problems.append("queries failed (\(observation.errors[0].error)) but verify() reports nothing")
        }
        if tailCut != nil && !problems.isEmpty && observation.errors.isEmpty {
            // Fine: verify may still see something (e.g. another structure); recorded as reported.
        }
        outcome.result = .opened(queryErrors: observation.errors.count, verify: problems, tailCutAt: tailCut)
        return outcome
    }

    /// The healthy store with `path` cut to `length` bytes, observed (cached per length).
    func cutObservation(path: String, length: Int) -> Observation {
        let key = "\(path)#\(length)"
        if let cached = cutObservations[key] { return cached }
        let fs = fileSystem(replacing: path, with: Array(pristine[path]!.prefix(length)))
        let observation: Observation
        do {
            let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
            observation = Observation.observe(store, ids: ids, searches: true)
            try? store.close()
        } catch {
            observation = Observation(results: ["the healthy store cut at \(length) does not open: \(error)"], labels: ["open"])
        }
        cutObservations[key] = observation
        return observation
    }
}
