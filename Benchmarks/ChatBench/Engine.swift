import Scrollback
import ScrollbackWorkload

/// Where the next keyset page starts: each engine has its own cursor form.
enum KeysetCursor: Hashable {
    case scrollback(Cursor)
    /// SQLite: `createdAt < value` (the generated timestamps are unique, so the time alone
    /// is a total order within a conversation).
    case before(Int64)
    /// LMDB, RocksDB: below the key (conversation, createdAt, seq) of the last message returned.
    case key(createdAt: Int64, seq: UInt64)
}

/// How the benchmark talks to an engine. Every query returns Swift values (`Message` with
/// its strings), so both sides pay for materializing results.
///
/// Not thread-safe, except `concurrentSends`, which drives its own threads.
protocol ChatEngine: AnyObject {
    /// `scrollback`, `sqlite-rowid`, `sqlite-clustered`, `lmdb` or `rocksdb`.
    var name: String { get }
    /// The directory or files that hold the store (the cold-read phase evicts them from the
    /// OS page cache).
    var storePaths: [String] { get }

    /// Appends a batch in one durable transaction (bulk load). Idempotent on message id.
    func load(_ batch: [Message]) throws
    /// Called once before the bulk load's batches (an engine with a bulk-load path may gather
    /// them); no-op by default.
    func beginLoad()
    /// Called once after the bulk load (timed as part of it).
    func finishLoad() throws
    /// An engine whose bulk-load path pulls its input (Scrollback's `MessageStore.load`) loads
    /// the whole dataset from `messages` in one call and returns true; the others return
    /// false and get batches through `load(_:)` instead (the default).
    func loadAll(_ messages: GeneratedMessages) throws -> Bool

    func latest(_ conversation: String, limit: Int) throws -> [Message]
    /// `latest` read in place: each message's fields hashed from the engine's own buffers
    /// (Scrollback's `withLatest`, LMDB's and RocksDB's cursor memory, SQLite's column
    /// pointers), no `Message` or `String` made.
    func latestInPlace(_ conversation: String, limit: Int) throws -> BorrowedDigest
    func page(_ conversation: String, offset: Int, limit: Int) throws -> [Message]
    /// One keyset page, newest first, and where the next one starts (nil at the end).
    func keysetPage(_ conversation: String, after cursor: KeysetCursor?, limit: Int) throws
        -> (messages: [Message], next: KeysetCursor?)
    func count(_ conversation: String, after: Int64) throws -> Int
    func feed(_ conversations: [String], limit: Int) throws -> [Message]
    /// `from ≤ createdAt ≤ through`, newest first, at most `rangeLimit` messages.
    func range(_ conversation: String, from: Int64, through: Int64) throws -> [Message]
    func latestMessage(_ conversations: [String]) throws -> [Message?]
    func conversations(limit: Int) throws -> [ConversationSummary]
    func message(id: String) throws -> Message?
    func unreadCount(user: String, conversation: String) throws -> Int

    /// One durable append.
    func send(_ message: Message) throws
    /// One durable read-marker update.
    func markRead(user: String, conversation: String, through messageID: String) throws
    /// `threads` threads each append `messages[t]` one durable append at a time; returns when
    /// all are done.
    func concurrentSends(_ messages: [[Message]]) throws

    /// Bytes of the engine's files.
    func diskBytes() throws -> UInt64
    /// Reclaims space (Scrollback: compact + checkpoint; SQLite: VACUUM).
    func compact() throws
    /// Makes everything durable and flushes the trees/WAL into the main file.
    func checkpoint() throws
    /// Scrollback's checkpoints and seals begun and ended (`MessageStore.backgroundActivity`);
    /// nil for the engines that do not report them (the default).
    func backgroundActivity() -> BackgroundActivity?
    func close() throws
    /// Opens the files again (after `close`).
    func reopen() throws

    /// Another handle on the same open store, for one other thread of the concurrency phase
    /// (SQLite: a new connection with `cacheBytes` of cache; LMDB: its own read transaction;
    /// RocksDB: its own read options; Scrollback: the same `MessageStore`).
    func concurrentHandle(cacheBytes: Int) throws -> any ChatEngine
    /// Releases a handle made by `concurrentHandle` (not the store).
    func closeHandle()
}

/// All engines, in the order the table shows them.
let allEngineNames = ["scrollback", "sqlite-rowid", "sqlite-clustered", "lmdb", "rocksdb"]
/// The peers Scrollback is compared with.
let peerNames = ["sqlite-rowid", "sqlite-clustered", "lmdb", "rocksdb"]

/// Cap of the one-day range query on every engine: Scrollback's largest `limit`
/// (`MessageStore.maxLimit`), so that both sides return the same rows even where a day of a
/// room holds more (the 100M band's largest room does).
let rangeLimit = MessageStore.maxLimit

extension ChatEngine {
    func beginLoad() {}
    func backgroundActivity() -> BackgroundActivity? { nil }
}

extension ChatEngine {
    func loadAll(_ messages: GeneratedMessages) throws -> Bool { false }
}

/// The dataset as one sequence for a pulling bulk load: generated `chunk` messages at a time,
/// the time spent generating (and reporting progress) added up in `clock` (a load's time
/// excludes it, as the batched loads' time excludes generating their batches), the progress
/// reported per chunk generated. Memory: one chunk. One pass: the generator's iterator is
/// made (untimed) with the sequence, and `makeIterator` hands it out once.
struct GeneratedMessages: Sequence {
    final class Clock {
        var generatingNanos: UInt64 = 0
        var produced = 0
    }

    let source: DatasetGenerator.Iterator
    let chunk: Int
    let clock: Clock
    let progress: (Int) -> Void

    init(generator: DatasetGenerator, chunk: Int, clock: Clock, progress: @escaping (Int) -> Void) {
        source = generator.makeIterator()
        self.chunk = chunk
        self.clock = clock
        self.progress = progress
    }

    struct Iterator: IteratorProtocol {
        var source: DatasetGenerator.Iterator
        let chunk: Int
        let clock: Clock
        let progress: (Int) -> Void
        var buffer: [Message] = []
        var position = 0

        mutating func next() -> Message? {
            if position == buffer.count {
                let start = nowNanoseconds()
                buffer.removeAll(keepingCapacity: true)
                while buffer.count < chunk, let message = source.next() { buffer.append(message) }
                position = 0
                clock.produced += buffer.count
                if !buffer.isEmpty { progress(clock.produced) }
                clock.generatingNanos += nowNanoseconds() - start
                if buffer.isEmpty { return nil }
            }
            position += 1
            return buffer[position - 1]
        }
    }

    func makeIterator() -> Iterator {
        Iterator(source: source, chunk: Swift.max(1, chunk), clock: clock, progress: progress)
    }
}
