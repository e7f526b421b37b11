import Foundation
import Scrollback

/// Scrollback through its public API only, with the same cache budget and durability mode
/// as SQLite.
final class ScrollbackEngine: ChatEngine {
    let name = "scrollback"
    let path: String
    let options: StoreOptions
    private var store: MessageStore!

    /// False for the handles of the concurrency phase, which share the store.
    private let ownsStore: Bool

    var storePaths: [String] { [path] }

    private init(sharing other: ScrollbackEngine) {
        path = other.path
        options = other.options
        store = other.store
        ownsStore = false
    }

    func concurrentHandle(cacheBytes: Int) throws -> any ChatEngine { ScrollbackEngine(sharing: self) }

    func closeHandle() { if !ownsStore { store = nil } }

    /// The open store (the change-delivery phase follows it with the public API).
    var sharedStore: MessageStore { store }

    init(directory: String, cacheBytes: Int, durability: Durability, changeRetentionBytes: Int? = nil) throws {
        ownsStore = true
        path = directory + "/scrollback"
        try? FileManager.default.removeItem(atPath: path)
        var options = StoreOptions()
        options.cacheBytes = cacheBytes
        options.durability = durability
        if let changeRetentionBytes { options.changeRetentionBytes = changeRetentionBytes }
        self.options = options
        store = try MessageStore(path: path, options: options)
    }

    /// The bulk-load phase goes through the bulk-load API: `loadAll` streams the whole dataset
    /// into one `MessageStore.load` (sorted runs written directly, trees built bottom-up, one
    /// durable commit; memory: one run of messages plus the load's id set, not the dataset).
    /// Other loads (the concurrency phase's top-up) are atomic batches.
    func loadAll(_ messages: GeneratedMessages) throws -> Bool {
        try store.load(messages)
        return true
    }

    func beginLoad() {}

    func load(_ batch: [Message]) throws {
        var b = WriteBatch()
        for m in batch { b.append(m) }
        try store.write(b)
    }

    func finishLoad() throws {
        if options.durability == .normal { try store.sync() }
        try store.checkpoint()
    }

    /// The ordinary write path for comparison: `messages` appended in atomic batches of
    /// `batchSize` into a new scratch store beside this one. Returns messages per second.
    func batchedWriteRate(_ messages: [Message], batchSize: Int) throws -> Double {
        let scratch = path + "-batched"
        try? FileManager.default.removeItem(atPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let other = try MessageStore(path: scratch, options: options)
        let start = DispatchTime.now().uptimeNanoseconds
        var i = 0
        while i < messages.count {
            var b = WriteBatch()
            for m in messages[i..<min(i + batchSize, messages.count)] { b.append(m) }
            try other.write(b)
            i += batchSize
        }
        try other.checkpoint()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        try other.close()
        return Double(messages.count) / seconds
    }

    func latest(_ conversation: String, limit: Int) throws -> [Message] {
        try store.latest(in: conversation, limit: limit)
    }

    func latestInPlace(_ conversation: String, limit: Int) throws -> BorrowedDigest {
        var digest = BorrowedDigest()
        try store.withLatest(in: conversation, limit: limit) { m in
            digest.add(id: m.idBytes, sender: m.senderBytes, body: m.bodyBytes, createdAt: m.createdAt, kind: m.kind.rawValue,
                       edited: m.edited)
        }
        return digest
    }

    func page(_ conversation: String, offset: Int, limit: Int) throws -> [Message] {
        try store.page(in: conversation, offset: offset, limit: limit, order: .newestFirst)
    }

    func keysetPage(_ conversation: String, after cursor: KeysetCursor?, limit: Int) throws
        -> (messages: [Message], next: KeysetCursor?)
    {
        let start: Cursor?
        switch cursor {
        case nil: start = nil
        case let .scrollback(c): start = c
        case .before, .key: throw ScrollbackError.invalidArgument(argument: "cursor", reason: "another engine's cursor given to Scrollback")
        }
        let page = try store.page(in: conversation, after: start, limit: limit, order: .newestFirst)
        return (page.messages, page.next.map { .scrollback($0) })
    }

    func count(_ conversation: String, after: Int64) throws -> Int {
        try store.count(in: conversation, after: after)
    }

    func feed(_ conversations: [String], limit: Int) throws -> [Message] {
        try store.feed(conversations, limit: limit)
    }

    func range(_ conversation: String, from: Int64, through: Int64) throws -> [Message] {
        try store.messages(in: conversation, from: from, through: through, order: .newestFirst, limit: rangeLimit)
    }

    func latestMessage(_ conversations: [String]) throws -> [Message?] {
        try store.latestMessage(in: conversations)
    }

    func conversations(limit: Int) throws -> [ConversationSummary] {
        try store.conversations(limit: limit)
    }

    func message(id: String) throws -> Message? {
        try store.message(id: id)
    }

    func unreadCount(user: String, conversation: String) throws -> Int {
        try store.unreadCount(user: user, in: conversation)
    }

    func send(_ message: Message) throws {
        try store.append(message)
    }

    func markRead(user: String, conversation: String, through messageID: String) throws {
        try store.markRead(user: user, conversation: conversation, through: messageID)
    }

    func concurrentSends(_ messages: [[Message]]) throws {
        let failures = FailureBox()
        let store = self.store!
        try runThreads(messages.map { list in
            {
                do {
                    for m in list { try store.append(m) }
                } catch {
                    failures.record("\(error)")
                }
            }
        })
        if let failure = failures.first { throw ScrollbackError.invalidArgument(argument: "concurrent send", reason: failure) }
    }

    func diskBytes() throws -> UInt64 {
        try directoryBytes(path)
    }

    func backgroundActivity() -> BackgroundActivity? { store.backgroundActivity }

    func checkpoint() throws {
        if options.durability == .normal { try store.sync() }
        try store.checkpoint()
    }

    func compact() throws {
        try store.compact()
        try store.checkpoint()
    }

    func close() throws {
        try store.close()
        store = nil
    }

    func reopen() throws {
        store = try MessageStore(path: path, options: options)
    }

    /// Cache and file figures for the JSON report.
    func statistics() -> StoreStatistics? { try? store.statistics }

    func enableSearchIndex() throws { try store.enableSearchIndex() }

    /// `words` joined by spaces (every one a prefix), newest first.
    func search(_ words: [String], in conversations: [String]?, limit: Int) throws -> [Message] {
        try store.search(words.joined(separator: " "), in: conversations.map { .conversations($0) } ?? .wholeStore, limit: limit)
            .messages
    }

    /// Bytes of the search index's two trees (`spaceUsage`).
    func searchIndexBytes() throws -> UInt64 {
        try store.spaceUsage().filter { ["tree searchTerms", "tree searchPostings", "tree searchPostingBlocks"].contains($0.structure) }
            .reduce(0) { $0 + $1.bytes }
    }
}

/// Sum of the sizes of the regular files under `path` (recursively).
func directoryBytes(_ path: String) throws -> UInt64 {
    var total: UInt64 = 0
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    while let name = enumerator.nextObject() as? String {
        let attributes = try FileManager.default.attributesOfItem(atPath: path + "/" + name)
        if attributes[.type] as? FileAttributeType == .typeRegular, let size = attributes[.size] as? NSNumber {
            total += size.uint64Value
        }
    }
    return total
}
