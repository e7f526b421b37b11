@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// Records every read of a sorted-run file (`run-*`) of a store in a `MemoryFileSystem`:
/// which file, where, how many bytes. The store opens `files`.
final class RunReadRecorder: Sendable {
    struct Read: Hashable {
        var file: String
        var offset: UInt64
        var count: Int
    }

    let base = MemoryFileSystem()
    let files: ObservedFileSystem
    private let recorded: Lock<[Read]>

    init() {
        let recorded = Lock<[Read]>([])
        files = ObservedFileSystem(base: base) { call in
            guard case let .read(path, offset, count) = call else { return }
            let file = Path.name(of: path)
            guard SortedRun.id(fromFileName: file) != nil else { return }
            recorded.withLock { $0.append(Read(file: file, offset: offset, count: count)) }
        }
        self.recorded = recorded
    }

    /// The reads recorded since the last call, and forgets them.
    func take() -> [Read] { recorded.withLock { reads in defer { reads = [] }; return reads } }
}

/// Issue 11's cold-read goal, counted through the I/O layer (not timed): on a store opened
/// afresh (nothing of it cached in the process), the latest 20 messages of a heavy room, and
/// each page of a keyset walk through it, read at most 2 run blocks.
@Suite struct ColdReadTests {
    static let heavy = "heavy"

    /// A chat in time order, as the reference workload writes it: a heavy room of 3,000
    /// messages among 400 conversations of 5–40 messages, bodies of 40–200 characters.
    static func chat(seed: UInt64) -> [Message] {
        var random = SeededRandom(seed: seed)
        var rooms = Array(repeating: heavy, count: 3_000)
        for c in 0..<400 { rooms += Array(repeating: "c\(c)", count: 5 + Int(random.next() % 36)) }
        rooms.shuffle(using: &random)
        let words = ["lorem", "ipsum", "dolor", "sit", "amet", "chat", "message", "history", "block", "run"]
        return rooms.enumerated().map { i, room in
            var body = ""
            let length = 40 + Int(random.next() % 161)
            while body.utf8.count < length { body += words[Int(random.next() % 10)] + " " }
            return Message(id: "m\(i)", conversation: room, sender: "u\(random.next() % 300)",
                           createdAt: 1_700_000_000_000 + Int64(i) * 1_000, body: String(body.prefix(length)))
        }
    }

    /// The file offset of every block of every run in the store, by file name.
    static func blockOffsets(_ fs: RunReadRecorder) throws -> [String: Set<UInt64>] {
        var offsets: [String: Set<UInt64>] = [:]
        for name in try fs.base.listDirectory("/db") {
            guard let id = SortedRun.id(fromFileName: name) else { continue }
            let run = try SortedRun.open(fileSystem: fs.base, path: "/db/" + name, id: id)
            offsets[name] = Set(try run.allEntries().map(\.fileOffset))
        }
        return offsets
    }

    /// Reads of run blocks since the last call (index and page-table reads are not blocks).
    static func blocksRead(_ fs: RunReadRecorder, _ offsets: [String: Set<UInt64>]) -> Int {
        fs.take().filter { offsets[$0.file]?.contains($0.offset) == true }.count
    }

    /// Opens the store at /db afresh (nothing of it cached in the process), reads latest 20
    /// of the heavy room and of an ordinary conversation, then walks the heavy room in keyset
    /// pages of 20 (40 pages): each of these reads at most 2 run blocks, and returns the
    /// room's history in order.
    static func checkColdReads(_ fs: RunReadRecorder, _ label: String, expecting messages: [Message], allInRuns: Bool) throws {
        let offsets = try blockOffsets(fs)
        #expect(!offsets.isEmpty, "\(label): the store has no sorted run")
        let history = messages.filter { $0.conversation == heavy }.sorted { $0.createdAt > $1.createdAt }
        _ = fs.take()
        let store = try MessageStore(path: "/db", options: Fixture.options(), fileSystem: fs.files)
        defer { try? store.close() }
        _ = blocksRead(fs, offsets)   // the open's reads (none should be blocks; not the goal's)

        let latest = try store.latest(in: heavy, limit: 20)
        #expect(latest.map(\.id) == history.prefix(20).map(\.id), "\(label): latest 20 of the heavy room")
        let latestBlocks = blocksRead(fs, offsets)
        #expect(latestBlocks <= 2 && (latestBlocks > 0 || !allInRuns),
                "\(label): latest 20 of the heavy room read \(latestBlocks) run blocks")

        let ordinary = messages.first { $0.conversation != heavy }!.conversation
        _ = try store.latest(in: ordinary, limit: 20)
        let ordinaryBlocks = blocksRead(fs, offsets)
        #expect(ordinaryBlocks <= 2, "\(label): latest 20 of \(ordinary) read \(ordinaryBlocks) run blocks")

        var cursor: Cursor? = nil
        var walked: [String] = []
        var perPage: [Int] = []
        for _ in 0..<40 {
            let page = try store.page(in: heavy, after: cursor, limit: 20, order: .newestFirst)
            walked += page.messages.map(\.id)
            perPage.append(blocksRead(fs, offsets))
            cursor = page.next
        }
        #expect(walked == history.prefix(800).map(\.id), "\(label): keyset walk of the heavy room")
        #expect(perPage.allSatisfy { $0 <= 2 }, "\(label): run blocks read per keyset page: \(perPage)")
        // The walk's 800 messages lie in a few consecutive blocks of the room's history, each
        // read once (not a block per message, as a time-ordered log would need).
        let walkBlocks = perPage.reduce(0, +)
        #expect(walkBlocks > 0 && walkBlocks < 40, "\(label): the walk read \(walkBlocks) run blocks for 40 pages")
    }

    /// The bulk load's run (the reference benchmark's cold store).
    @Test func bulkLoadedStore() throws {
        let fs = RunReadRecorder()
        let messages = Self.chat(seed: 11)
        do {
            let store = try MessageStore(path: "/db", options: Fixture.options(), fileSystem: fs.files)
            _ = try store.load(messages)
            try store.close()
        }
        try Self.checkColdReads(fs, "bulk load", expecting: messages, allInRuns: true)
    }

    /// Messages written in batches of 100 (sealed segment by segment into runs), then compacted:
    /// the room's history converges to one run.
    @Test func writtenThenCompactedStore() throws {
        let fs = RunReadRecorder()
        let messages = Self.chat(seed: 12)
        do {
            let store = try MessageStore(path: "/db", options: Fixture.options(), fileSystem: fs.files)
            var batch = WriteBatch()
            for message in messages {
                batch.append(message)
                if batch.operations.count == 100 {
                    try store.write(batch)
                    batch = WriteBatch()
                }
            }
            if !batch.operations.isEmpty { try store.write(batch) }
            _ = try store.compact()
            try store.close()
        }
        // (The newest messages may still be in the active log segment: not run blocks.)
        try Self.checkColdReads(fs, "writes + compaction", expecting: messages, allInRuns: false)
    }
}
