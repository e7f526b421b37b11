#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackBTree
import ScrollbackStorage

/// What a bulk load did.
package struct BulkLoadSummary: Equatable, Sendable {
    /// Messages added.
    package var appended: Int = 0
    /// Messages skipped because their id was already live (in the store or earlier in the load).
    package var duplicates: Int = 0
    /// Sorted runs written (one per `runMessages` messages).
    package var runs: Int = 0

    package init(appended: Int = 0, duplicates: Int = 0, runs: Int = 0) {
        self.appended = appended
        self.duplicates = duplicates
        self.runs = runs
    }
}

extension MessageDatabase {
    /// Messages per sorted run of a bulk load: the load holds one run's messages in memory
    /// (their encoded records plus 40 bytes each) while it sorts them.
    package static let bulkLoadRunMessages = 1 << 20
    /// How a bulk load's run is compressed: LZ4 HC at level 3, on up to four cores at once.
    /// Measured on the reference dataset's run (8 KiB blocks, one core): LZ4's fast mode 79.7
    /// bytes per message at 630 MB/s, HC level 2 61.3 at 110 MB/s, level 3 58.8 at 89, level
    /// 4 57.5 at 72, level 9 56.1 at 49 (level 3: the store after the benchmark's load, writes
    /// and compaction under 0.6× SQLite's file, the load within 0.2 s of fast mode's on two
    /// cores). The run is marked highly compressed, so compaction does not rewrite it (before,
    /// a load's run stayed in fast mode while the change stream's retention kept the load, and
    /// the store after load and compaction was 18–20 MiB larger).
    package static let bulkLoadCompression = RunCompression.high(level: 3)
    static var bulkLoadCompressionThreads: Int { max(1, min(4, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))) }

    /// Adds `messages` in one durable commit: every message is validated first (an invalid one
    /// throws `.invalidArgument` and nothing is written); messages whose id is live already in
    /// the same conversation are skipped (counted as duplicates, like `append`'s false); one
    /// live in another conversation throws `idConflict` and nothing is written. The messages are written
    /// straight into sorted runs (`bulkLoadCompression`, blocks compressed on several cores; in
    /// key order, one per `runMessages` messages) and the
    /// commit that attaches them builds the trees from them — bottom-up into 90%-full leaves when
    /// the store has no message yet. A crash before the commit is durable leaves the store as
    /// it was (the runs are files no table names; the next open removes them).
    ///
    /// Other writers wait while the load runs (it holds the commit path, as a write transaction
    /// does in SQLite); readers do not. Cost: O(n log n) to sort, one descent per message when
    /// the store is not empty, one fsync per run plus one for the commit. Memory: one run's
    /// messages at a time (their encoded bytes and 40 bytes each), plus about 32 bytes per
    /// message for the ids seen (id and conversation).
    ///
    /// The messages come from `next`, called until it returns nil (an error it throws fails the
    /// load: nothing is written). A closure rather than a sequence: a generic sequence from
    /// another module is iterated unspecialized, with its iterator's type metadata looked up
    /// on every element (3% of a load in `perf`).
    package func bulkLoad(runMessages: Int = MessageDatabase.bulkLoadRunMessages, next: () throws -> StoredMessage?)
        throws -> BulkLoadSummary {
        try bulkLoad(conversations: [], runMessages: runMessages) { try next().map { BulkMessage(message: $0) } }
    }

    /// A message of a bulk load, optionally with the seq it keeps (an upgrade keeps a store's
    /// insertion order and edited flags; a load assigns seqs in input order).
    struct BulkMessage {
        var message: StoredMessage
        /// nil: the next seq. Given seqs must increase through the load and exceed the store's.
        var seq: UInt64? = nil
        /// Keeps `message.edited` (else a loaded message is not edited).
        var keepsEdited = false
    }

    /// `bulkLoad`, declaring `conversations` first (in this order, so they get ids in it, and
    /// exist even when no message names them).
    func bulkLoad(conversations: [String], runMessages: Int, next: () throws -> BulkMessage?) throws -> BulkLoadSummary {
        var summary = BulkLoadSummary()
        try engine.withMaintenanceRole {
            try engine.commit { transaction, batch in
                summary = BulkLoadSummary()
                var load = try BulkLoader(database: self, transaction: transaction, runMessages: max(1, runMessages))
                do {
                    for name in conversations {
                        try ArgumentLimits.check(name, "conversation", bytes: ArgumentLimits.nameBytes)
                        _ = try load.conversationID(name, into: &batch)
                    }
                    while let entry = try next() {
                        try self.validate(.append(entry.message))
                        try load.add(entry, into: &batch)
                        if load.buffered >= load.runMessages { try load.flushRun() }
                    }
                    try load.flushRun()
                    try load.finish(into: &batch)
                } catch {
                    load.discardRuns()
                    throw error
                }
                summary = load.summary
            }
        }
        if summary.appended > 0 { writesSincePolicyCheck.add(1, ordering: .relaxed) }
        return summary
    }
}

/// The state of one bulk load inside its commit's prepare step.
struct BulkLoader {
    let database: MessageDatabase
    let transaction: PageTransaction
    let runMessages: Int
    let storeHasMessages: Bool
    /// The write path's per-commit state: the next seq and the conversations this commit
    /// creates (their name records go into the batch).
    var context: MessageDatabase.PrepareContext
    /// Ids seen in this load and their conversations (duplicates within the load are skipped;
    /// an id seen in another conversation is `idConflict`).
    var seenIDs = ByteKeyTable()
    /// Encoded body records of the buffered messages, back to back.
    let arena = RecordArena()
    var entries: [(key: MessageKey, start: Int, end: Int)] = []
    var written: [(run: RunAccount, segment: UInt32)] = []
    var summary = BulkLoadSummary()

    var buffered: Int { entries.count }

    init(database: MessageDatabase, transaction: PageTransaction, runMessages: Int) throws {
        self.database = database
        self.transaction = transaction
        self.runMessages = runMessages
        storeHasMessages = try BTree(transaction, .messages).count > 0
        context = try MessageDatabase.PrepareContext(database: database, transaction: transaction)
    }

    mutating func add(_ entry: MessageDatabase.BulkMessage, into batch: inout LogBatch) throws {
        let message = entry.message
        // The same rule as `append`: a live id in the same conversation is a duplicate, in
        // another one a conflict (which fails the whole load).
        var id = message.id
        let idHash = id.withUTF8 { Hash64.hash(UnsafeRawBufferPointer($0)) }
        if let owner = id.withUTF8({ seenIDs.value(of: UnsafeRawBufferPointer($0), hash: idHash) }) {
            guard try context.conversation(message.conversation, create: false, batch: &batch) == owner else {
                let name = try context.newConversations.first { $0.value == owner }?.key.string
                    ?? database.conversationName(owner, in: transaction, for: "conversation \(owner) of message \(message.id) is missing")
                throw MessagingError.idConflict(id: message.id, conversation: name)
            }
            summary.duplicates += 1
            return
        }
        if storeHasMessages, let located = try database.locate(id: message.id, in: transaction) {
            guard try context.conversation(message.conversation, create: false, batch: &batch) == located.key.conversation else {
                throw MessagingError.idConflict(id: message.id, conversation: try context.conversationName(of: .stored(located)))
            }
            summary.duplicates += 1
            return
        }
        let conversation = try conversationID(message.conversation, into: &batch)
        guard id.withUTF8({ seenIDs.insert(UnsafeRawBufferPointer($0), hash: idHash, value: conversation) }) else {
            throw StorageError.limitExceeded("bulk load: an id of \(id.utf8.count) bytes")   // validated ids are ≤ 128 bytes
        }
        guard context.nextSeq <= MessageLimits.maxSeq else {
            throw StorageError.limitExceeded("a store holds at most \(MessageLimits.maxSeq) messages over its lifetime")
        }
        if let seq = entry.seq {
            guard seq >= context.nextSeq, seq <= MessageLimits.maxSeq else {
                throw MessagingError.invalidArgument(argument: "seq", reason: "\(seq) is not after the store's last seq \(context.nextSeq - 1)")
            }
            context.nextSeq = seq
        }
        let key = MessageKey(conversation: conversation, createdAt: UInt64(message.createdAt), seq: context.nextSeq)
        context.nextSeq += 1
        var stored = message
        if !entry.keepsEdited { stored.edited = false }
        let start = arena.count
        let size = MessageRecord.bodySize(stored)
        MessageRecord.writeBody(stored, flags: stored.edited ? MessageFlags.edited : 0, into: try arena.append(size))
        entries.append((key, start, start + size))
        summary.appended += 1
    }

    mutating func conversationID(_ name: String, into batch: inout LogBatch) throws -> UInt64 {
        // `create: true` answers an id or throws; a nil would be a bug of the write path.
        guard let id = try context.conversation(name, create: true, batch: &batch) else {
            throw StorageError.invalidArgument("conversation \(name) was neither found nor created")
        }
        return id
    }

    /// Writes the buffered messages as one sorted run (synced before the commit can name it).
    mutating func flushRun() throws {
        guard !entries.isEmpty else { return }
        Self.sortByKey(&entries)
        let entries = self.entries
        let result = try database.engine.writeRun(compression: MessageDatabase.bulkLoadCompression,
                                                  compressionThreads: MessageDatabase.bulkLoadCompressionThreads) { sink in
            try arena.withBytes { bytes in
                for entry in entries {
                    try sink.append(entry.key.runKey, payload: UnsafeRawBufferPointer(rebasing: bytes[entry.start..<entry.end]))
                }
            }
        }
        written.append(result)
        self.entries.removeAll(keepingCapacity: true)
        arena.removeAll()
        summary.runs += 1
    }

    typealias Entry = (key: MessageKey, start: Int, end: Int)

    @inline(__always)
    static func keyOrder(_ a: Entry, _ b: Entry) -> Bool {
        if a.key.conversation != b.key.conversation { return a.key.conversation < b.key.conversation }
        if a.key.createdAt != b.key.createdAt { return a.key.createdAt < b.key.createdAt }
        return a.key.seq < b.key.seq
    }

    /// Orders `entries` by key (conversation, createdAt, seq), the run's order. Conversation
    /// ids are small dense integers (the store's counter) and a load usually lists each
    /// conversation's messages in time order (seqs always rise in input order): a stable
    /// counting sort by conversation, O(n + conversations), then sorts only the conversations
    /// whose messages arrived out of order. Ids spread wider than 4× the entries fall back to
    /// a comparison sort. (A comparison sort of the reference load's 977,561 entries through
    /// `RunKey`'s `<` was 15% of the load's time.)
    static func sortByKey(_ entries: inout [Entry]) {
        guard entries.count > 1 else { return }
        var low = UInt64.max, high: UInt64 = 0
        for entry in entries {
            low = min(low, entry.key.conversation)
            high = max(high, entry.key.conversation)
        }
        guard high - low < UInt64(entries.count) * 4 + 1024 else {
            entries.sort(by: keyOrder)
            return
        }
        let span = Int(high - low) + 1
        var starts = [Int](repeating: 0, count: span + 1)
        for entry in entries { starts[Int(entry.key.conversation - low) + 1] += 1 }
        for c in 0..<span { starts[c + 1] += starts[c] }   // starts[c] = first slot of conversation c
        var next = starts
        var sorted = [Entry](unsafeUninitializedCapacity: entries.count) { buffer, initialized in
            for entry in entries {
                let c = Int(entry.key.conversation - low)
                (buffer.baseAddress! + next[c]).initialize(to: entry)
                next[c] += 1
            }
            initialized = entries.count
        }
        for c in 0..<span where starts[c + 1] - starts[c] > 1 {
            let bucket = starts[c]..<starts[c + 1]
            var ordered = true
            for i in bucket.dropFirst() where !keyOrder(sorted[i - 1], sorted[i]) {
                ordered = false
                break
            }
            if !ordered { sorted[bucket].sort(by: keyOrder) }
        }
        entries = sorted
    }

    /// Encodes, after the name records, each run's attachment and its bulk-load record.
    func finish(into batch: inout LogBatch) throws {
        for (run, segment) in written {
            try database.engine.encodeAttachment(of: run, segment: segment, into: &batch)
            try BulkLoadRecord(run: run.id, segment: segment, count: run.records).append(into: &batch)
        }
    }

    /// Removes the runs of a load that will not commit.
    func discardRuns() {
        for (run, _) in written { database.engine.discardRun(run) }
    }
}

/// The encoded records of the messages a bulk load buffers, back to back, in one block of
/// memory grown by `realloc` (glibc moves a large block by remapping its pages, not by
/// copying them, and nothing is zero-filled first): an `[UInt8]` grown by appends copied the
/// whole buffer at every doubling and zeroed each record before writing it. Not thread-safe.
final class RecordArena {
    /// The first allocation: above glibc's largest dynamic mmap threshold (32 MiB), so the
    /// block is always its own mapping, which `realloc` remaps and `free` returns to the OS
    /// (smaller blocks come from the heap, which keeps freed memory: +21 MiB of RSS after the
    /// reference load). Pages are only resident once written.
    static let initialCapacity = 64 << 20
    private var base: UnsafeMutableRawPointer? = nil
    private var capacity = 0
    private(set) var count = 0

    /// `size` more bytes at the end, uninitialized, for the caller to write now. Throws
    /// `.limitExceeded` when the memory cannot be had.
    func append(_ size: Int) throws -> UnsafeMutableRawBufferPointer {
        if count + size > capacity {
            let wanted = max(count + size, capacity * 2, Self.initialCapacity)
            guard let grown = realloc(base, wanted) else {
                throw StorageError.limitExceeded("bulk load: no memory for \(wanted) bytes of records buffered for one run")
            }
            base = grown
            capacity = wanted
        }
        defer { count += size }
        return UnsafeMutableRawBufferPointer(start: base! + count, count: size)
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Forgets the contents; keeps the memory for the next run.
    func removeAll() { count = 0 }

    deinit { free(base) }
}
