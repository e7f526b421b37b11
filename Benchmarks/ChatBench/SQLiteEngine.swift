import CSQLite
import Foundation
import Scrollback

/// SQLite through its C API with prepared statements, WAL, `synchronous` matched to
/// Scrollback's durability (`full` → FULL, `normal` → NORMAL), and the same cache budget in
/// bytes. Two schemas:
/// - `rowid`: the reference schema — a rowid table with text ids (`id TEXT PRIMARY KEY`, so
///   an automatic unique index) and an index on `(conversationId, createdAt)`;
/// - `clustered`: a `WITHOUT ROWID` table keyed `(conversationId, createdAt, id)` and a
///   unique index on `id`.
/// Both keep a `conversations` table (last activity + live count, indexed by last activity),
/// maintained in the same transaction as every insert (what a trigger would do), and a
/// `readMarkers` table: the same functionality as Scrollback's trees.
final class SQLiteEngine: ChatEngine {
    enum Schema: String { case rowid, clustered }

    let schema: Schema
    let path: String
    let cacheBytes: Int
    let durability: Durability
    var name: String { "sqlite-\(schema.rawValue)" }

    private var connection: SQLiteConnection!
    private var statements: Statements!
    private var feedStatements: [Int: SQLiteStatement] = [:]

    static let columns = "id, conversationId, sender, createdAt, kind, body, replyTo, edited"

    private final class Statements {
        let begin, commit, rollback: SQLiteStatement
        let insert, upsertConversation: SQLiteStatement
        let latest, offset, keyset, count, range, byID: SQLiteStatement
        let conversations, markerTarget, upsertMarker, marker, countAll: SQLiteStatement

        init(_ c: SQLiteConnection) throws {
            let cols = SQLiteEngine.columns
            begin = try c.prepare("BEGIN IMMEDIATE")
            commit = try c.prepare("COMMIT")
            rollback = try c.prepare("ROLLBACK")
            insert = try c.prepare(
                "INSERT OR IGNORE INTO messages(\(cols)) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            upsertConversation = try c.prepare("""
                INSERT INTO conversations(id, lastActivity, messageCount) VALUES(?1, ?2, 1)
                ON CONFLICT(id) DO UPDATE SET lastActivity = max(lastActivity, excluded.lastActivity),
                messageCount = messageCount + 1
                """)
            latest = try c.prepare(
                "SELECT \(cols) FROM messages WHERE conversationId = ?1 ORDER BY createdAt DESC LIMIT ?2")
            offset = try c.prepare(
                "SELECT \(cols) FROM messages WHERE conversationId = ?1 ORDER BY createdAt DESC LIMIT ?2 OFFSET ?3")
            keyset = try c.prepare(
                "SELECT \(cols) FROM messages WHERE conversationId = ?1 AND createdAt < ?2 ORDER BY createdAt DESC LIMIT ?3")
            count = try c.prepare("SELECT COUNT(*) FROM messages WHERE conversationId = ?1 AND createdAt > ?2")
            range = try c.prepare(
                "SELECT \(cols) FROM messages WHERE conversationId = ?1 AND createdAt BETWEEN ?2 AND ?3 ORDER BY createdAt DESC LIMIT ?4")
            byID = try c.prepare("SELECT \(cols) FROM messages WHERE id = ?1")
            conversations = try c.prepare(
                "SELECT id, lastActivity, messageCount FROM conversations ORDER BY lastActivity DESC, id ASC LIMIT ?1")
            markerTarget = try c.prepare("SELECT conversationId, createdAt FROM messages WHERE id = ?1")
            upsertMarker = try c.prepare("""
                INSERT INTO readMarkers(user, conversationId, createdAt, messageId) VALUES(?1, ?2, ?3, ?4)
                ON CONFLICT(user, conversationId) DO UPDATE SET createdAt = excluded.createdAt, messageId = excluded.messageId
                WHERE excluded.createdAt > readMarkers.createdAt
                """)
            marker = try c.prepare("SELECT createdAt FROM readMarkers WHERE user = ?1 AND conversationId = ?2")
            countAll = try c.prepare("SELECT COUNT(*) FROM messages WHERE conversationId = ?1")
        }
    }

    init(schema: Schema, directory: String, cacheBytes: Int, durability: Durability) throws {
        self.schema = schema
        self.path = directory + "/\(schema.rawValue).sqlite"
        self.cacheBytes = cacheBytes
        self.durability = durability
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        try open(create: true)
    }

    private func configure(_ c: SQLiteConnection) throws {
        try c.exec("PRAGMA journal_mode = WAL")
        try c.exec("PRAGMA synchronous = \(durability == .full ? "FULL" : "NORMAL")")
        try c.exec("PRAGMA cache_size = -\(cacheBytes / 1024)")
        try c.exec("PRAGMA temp_store = MEMORY")
        try c.exec("PRAGMA busy_timeout = 60000")
    }

    private func open(create: Bool) throws {
        let c = try SQLiteConnection(path: path)
        try configure(c)
        if create {
            switch schema {
            case .rowid:
                try c.exec("""
                    CREATE TABLE messages(id TEXT NOT NULL PRIMARY KEY, conversationId TEXT NOT NULL,
                      sender TEXT NOT NULL, createdAt INTEGER NOT NULL, kind INTEGER NOT NULL, body TEXT NOT NULL,
                      replyTo TEXT, edited INTEGER NOT NULL);
                    CREATE INDEX messages_conversation_time ON messages(conversationId, createdAt);
                    """)
            case .clustered:
                try c.exec("""
                    CREATE TABLE messages(conversationId TEXT NOT NULL, createdAt INTEGER NOT NULL, id TEXT NOT NULL,
                      sender TEXT NOT NULL, kind INTEGER NOT NULL, body TEXT NOT NULL, replyTo TEXT,
                      edited INTEGER NOT NULL, PRIMARY KEY(conversationId, createdAt, id)) WITHOUT ROWID;
                    CREATE UNIQUE INDEX messages_id ON messages(id);
                    """)
            }
            try c.exec("""
                CREATE TABLE conversations(id TEXT NOT NULL PRIMARY KEY, lastActivity INTEGER NOT NULL,
                  messageCount INTEGER NOT NULL) WITHOUT ROWID;
                CREATE INDEX conversations_activity ON conversations(lastActivity DESC, id);
                CREATE TABLE readMarkers(user TEXT NOT NULL, conversationId TEXT NOT NULL, createdAt INTEGER NOT NULL,
                  messageId TEXT NOT NULL, PRIMARY KEY(user, conversationId)) WITHOUT ROWID;
                """)
        }
        connection = c
        statements = try Statements(c)
        feedStatements = [:]
    }

    // MARK: Writes

    private func transaction(_ body: () throws -> Void) throws {
        let s = statements!
        try s.begin.run()
        do {
            try body()
            try s.commit.run()
        } catch {
            s.commit.reset()
            try? s.rollback.run()
            throw error
        }
    }

    private func insert(_ m: Message) throws {
        let s = statements!
        let insert = s.insert
        try insert.bind(1, m.id)
        try insert.bind(2, m.conversation)
        try insert.bind(3, m.sender)
        try insert.bind(4, m.createdAt)
        try insert.bind(5, Int64(m.kind.rawValue))
        try insert.bind(6, m.body)
        try insert.bind(7, m.replyTo)
        try insert.bind(8, Int64(0))
        try insert.run()
        if connection.changes == 1 {
            let upsert = s.upsertConversation
            try upsert.bind(1, m.conversation)
            try upsert.bind(2, m.createdAt)
            try upsert.run()
        }
    }

    func load(_ batch: [Message]) throws {
        try transaction {
            for m in batch { try insert(m) }
        }
    }

    func finishLoad() throws {
        try connection.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        try connection.exec("ANALYZE")
        // ANALYZE changes plans: re-prepare.
        statements = try Statements(connection)
        feedStatements = [:]
    }

    func send(_ message: Message) throws {
        try transaction { try insert(message) }
    }

    func markRead(user: String, conversation: String, through messageID: String) throws {
        try transaction {
            let s = statements!
            try s.markerTarget.bind(1, messageID)
            guard try s.markerTarget.step() else {
                s.markerTarget.reset()
                throw ScrollbackError.notFound(messageID)
            }
            let owner = s.markerTarget.string(0)
            let createdAt = s.markerTarget.int64(1)
            s.markerTarget.reset()
            guard owner == conversation else {
                throw ScrollbackError.invalidArgument(argument: "through", reason: "message of another conversation")
            }
            try s.upsertMarker.bind(1, user)
            try s.upsertMarker.bind(2, conversation)
            try s.upsertMarker.bind(3, createdAt)
            try s.upsertMarker.bind(4, messageID)
            try s.upsertMarker.run()
        }
    }

    func concurrentSends(_ messages: [[Message]]) throws {
        let failures = FailureBox()
        let path = self.path
        let cacheBytes = self.cacheBytes
        let durability = self.durability
        let schema = self.schema
        let threads: [@Sendable () -> Void] = messages.map { list in
            {
                do {
                    // Each writer thread has its own connection, as an application would.
                    let engine = try SQLiteEngine(attachingTo: path, schema: schema, cacheBytes: cacheBytes, durability: durability)
                    for m in list { try engine.send(m) }
                } catch {
                    failures.record("\(error)")
                }
            }
        }
        try runThreads(threads)
        if let failure = failures.first { throw SQLiteError(code: SQLITE_ERROR, message: failure) }
    }

    var storePaths: [String] { [path, path + "-wal"] }

    /// A connection of its own with `cacheBytes` of page cache (a reader or writer thread of
    /// the concurrency phase: one connection per thread, as an application would).
    func concurrentHandle(cacheBytes: Int) throws -> any ChatEngine {
        try SQLiteEngine(attachingTo: path, schema: schema, cacheBytes: cacheBytes, durability: durability)
    }

    func closeHandle() { try? close() }

    /// A second connection to an existing database (for writer threads).
    private init(attachingTo path: String, schema: Schema, cacheBytes: Int, durability: Durability) throws {
        self.schema = schema
        self.path = path
        self.cacheBytes = cacheBytes
        self.durability = durability
        try open(create: false)
    }

    // MARK: Reads

    @inline(__always)
    private func row(_ s: SQLiteStatement) -> Message {
        Message(
            id: s.string(0), conversation: s.string(1), sender: s.string(2), createdAt: s.int64(3),
            kind: MessageKind(rawValue: UInt8(truncatingIfNeeded: s.int64(4))) ?? .text, body: s.string(5),
            replyTo: s.isNull(6) ? nil : s.string(6), edited: s.int64(7) != 0)
    }

    /// Column order differs between schemas only in the table, not in the SELECT list.
    private func rows(_ s: SQLiteStatement, capacity: Int) throws -> [Message] {
        var out: [Message] = []
        out.reserveCapacity(capacity)
        while try s.step() { out.append(row(s)) }
        s.reset()
        return out
    }

    func latest(_ conversation: String, limit: Int) throws -> [Message] {
        let s = statements.latest
        try s.bind(1, conversation)
        try s.bind(2, Int64(limit))
        return try rows(s, capacity: limit)
    }

    func latestInPlace(_ conversation: String, limit: Int) throws -> BorrowedDigest {
        let s = statements.latest
        try s.bind(1, conversation)
        try s.bind(2, Int64(limit))
        var digest = BorrowedDigest()
        while try s.step() {
            digest.add(id: s.bytes(0), sender: s.bytes(2), body: s.bytes(5), createdAt: s.int64(3),
                       kind: UInt8(truncatingIfNeeded: s.int64(4)), edited: s.int64(7) != 0)
        }
        s.reset()
        return digest
    }

    func page(_ conversation: String, offset: Int, limit: Int) throws -> [Message] {
        let s = statements.offset
        try s.bind(1, conversation)
        try s.bind(2, Int64(limit))
        try s.bind(3, Int64(offset))
        return try rows(s, capacity: limit)
    }

    func keysetPage(_ conversation: String, after cursor: KeysetCursor?, limit: Int) throws
        -> (messages: [Message], next: KeysetCursor?)
    {
        let before: Int64
        switch cursor {
        case nil: before = Int64.max
        case let .before(t): before = t
        case .scrollback, .key: throw SQLiteError(code: SQLITE_MISUSE, message: "another engine's cursor given to SQLite")
        }
        let s = statements.keyset
        try s.bind(1, conversation)
        try s.bind(2, before)
        try s.bind(3, Int64(limit))
        let messages = try rows(s, capacity: limit)
        let next: KeysetCursor? = messages.count == limit ? .before(messages[messages.count - 1].createdAt) : nil
        return (messages, next)
    }

    func count(_ conversation: String, after: Int64) throws -> Int {
        let s = statements.count
        try s.bind(1, conversation)
        try s.bind(2, after)
        _ = try s.step()
        let n = Int(s.int64(0))
        s.reset()
        return n
    }

    func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        var unique: [String] = []
        var seen = Set<String>()
        for c in conversations where seen.insert(c).inserted { unique.append(c) }
        let s: SQLiteStatement
        if let cached = feedStatements[unique.count] {
            s = cached
        } else {
            let placeholders = (0..<unique.count).map { "?\($0 + 2)" }.joined(separator: ", ")
            s = try connection.prepare(
                "SELECT \(SQLiteEngine.columns) FROM messages WHERE conversationId IN (\(placeholders)) ORDER BY createdAt DESC LIMIT ?1")
            feedStatements[unique.count] = s
        }
        try s.bind(1, Int64(limit))
        for (i, c) in unique.enumerated() { try s.bind(Int32(i + 2), c) }
        return try rows(s, capacity: limit)
    }

    func range(_ conversation: String, from: Int64, through: Int64) throws -> [Message] {
        let s = statements.range
        try s.bind(1, conversation)
        try s.bind(2, from)
        try s.bind(3, through)
        try s.bind(4, Int64(rangeLimit))
        return try rows(s, capacity: 64)
    }

    func latestMessage(_ conversations: [String]) throws -> [Message?] {
        let s = statements.latest
        var out: [Message?] = []
        out.reserveCapacity(conversations.count)
        for c in conversations {
            try s.bind(1, c)
            try s.bind(2, Int64(1))
            out.append(try s.step() ? row(s) : nil)
            s.reset()
        }
        return out
    }

    func conversations(limit: Int) throws -> [ConversationSummary] {
        let s = statements.conversations
        try s.bind(1, Int64(limit))
        var out: [ConversationSummary] = []
        out.reserveCapacity(limit)
        while try s.step() {
            out.append(ConversationSummary(id: s.string(0), lastActivity: s.int64(1), messageCount: Int(s.int64(2))))
        }
        s.reset()
        return out
    }

    func message(id: String) throws -> Message? {
        let s = statements.byID
        try s.bind(1, id)
        let m = try s.step() ? row(s) : nil
        s.reset()
        return m
    }

    func unreadCount(user: String, conversation: String) throws -> Int {
        let marker = statements.marker
        try marker.bind(1, user)
        try marker.bind(2, conversation)
        let after: Int64? = try marker.step() ? marker.int64(0) : nil
        marker.reset()
        guard let after else {
            let all = statements.countAll
            try all.bind(1, conversation)
            _ = try all.step()
            let n = Int(all.int64(0))
            all.reset()
            return n
        }
        return try count(conversation, after: after)
    }

    // MARK: Files

    func diskBytes() throws -> UInt64 {
        var total: UInt64 = 0
        for suffix in ["", "-wal"] {
            if let attributes = try? FileManager.default.attributesOfItem(atPath: path + suffix),
                let size = attributes[.size] as? NSNumber
            {
                total += size.uint64Value
            }
        }
        return total
    }

    func checkpoint() throws {
        try connection.exec("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    // MARK: Full-text search (FTS5)

    private var searchStatements: [Int: SQLiteStatement] = [:]

    /// FTS5's tokenizer for `buildFullTextIndex`.
    enum FullTextTokenizer {
        /// Words: `unicode61 remove_diacritics 2` with prefix indexes of 2 and 3 characters;
        /// query words match as prefixes (`"w"*`).
        case words
        /// `trigram`: every 3-character substring; query words (3 characters or more) match as
        /// substrings (`"w"`).
        case trigram
    }

    private var fullTextTokenizer = FullTextTokenizer.words

    /// An FTS5 index over the bodies (external content: the messages table, rowid schema
    /// only), built in one transaction. Not maintained by later writes (no triggers): build it
    /// after the writes it should see.
    func buildFullTextIndex(tokenizer: FullTextTokenizer = .words) throws {
        precondition(schema == .rowid, "FTS5 external content needs the rowid schema")
        let options = tokenizer == .words ? "tokenize='unicode61 remove_diacritics 2', prefix='2 3'" : "tokenize='trigram'"
        try connection.exec("""
            CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='rowid', \(options));
            INSERT INTO messages_fts(messages_fts) VALUES('rebuild');
            """)
        try connection.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        fullTextTokenizer = tokenizer
    }

    /// The newest `limit` messages whose body matches every word (as a prefix with the word
    /// tokenizer, as a substring with trigram), in `conversations` (nil: all), newest first,
    /// ties by insertion (rowid) descending.
    func search(_ words: [String], in conversations: [String]?, limit: Int) throws -> [Message] {
        let count = conversations?.count ?? -1
        let s: SQLiteStatement
        if let cached = searchStatements[count] {
            s = cached
        } else {
            let cols = SQLiteEngine.columns.split(separator: ",").map { "m." + $0.trimmingCharacters(in: .whitespaces) }
                .joined(separator: ", ")
            var sql = "SELECT \(cols) FROM messages_fts f JOIN messages m ON m.rowid = f.rowid WHERE messages_fts MATCH ?1"
            if count == 1 { sql += " AND m.conversationId = ?3" }
            if count > 1 { sql += " AND m.conversationId IN (" + (0..<count).map { "?\($0 + 3)" }.joined(separator: ", ") + ")" }
            sql += " ORDER BY m.createdAt DESC, m.rowid DESC LIMIT ?2"
            s = try connection.prepare(sql)
            searchStatements[count] = s
        }
        let star = fullTextTokenizer == .words ? "*" : ""
        try s.bind(1, words.map { "\"\($0)\"" + star }.joined(separator: " "))
        try s.bind(2, Int64(limit))
        for (i, c) in (conversations ?? []).enumerated() { try s.bind(Int32(i + 3), c) }
        return try rows(s, capacity: limit)
    }

    func compact() throws {
        statements = nil
        feedStatements = [:]
        searchStatements = [:]
        try connection.exec("VACUUM")
        try connection.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        statements = try Statements(connection)
    }

    func close() throws {
        statements = nil
        feedStatements = [:]
        searchStatements = [:]
        connection = nil
    }

    func reopen() throws {
        try open(create: false)
    }
}

/// Collects errors from worker threads.
final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    func record(_ failure: String) {
        lock.lock()
        failures.append(failure)
        lock.unlock()
    }
    var first: String? {
        lock.lock()
        defer { lock.unlock() }
        return failures.first
    }
}

/// Runs each body on its own thread (real threads, not a pool limited by the core count)
/// and waits for all of them.
func runThreads(_ bodies: [@Sendable () -> Void]) throws {
    let group = DispatchGroup()
    var threads: [Thread] = []
    for body in bodies {
        group.enter()
        let t = Thread {
            body()
            group.leave()
        }
        t.stackSize = 1 << 20
        threads.append(t)
    }
    for t in threads { t.start() }
    group.wait()
}
