import ScrollbackMessaging

/// What `MessageStore.load(_:)` did.
public struct LoadSummary: Sendable, Hashable {
    /// Messages added.
    public var appended: Int
    /// Messages skipped because a live message of the same conversation (in the store, or
    /// earlier in the load) has their id, as `append` answers `.duplicate`.
    public var duplicates: Int

    public init(appended: Int, duplicates: Int) {
        self.appended = appended
        self.duplicates = duplicates
    }
}

extension MessageStore {
    /// Loads many messages at once, far faster than appends: they are sorted in memory and
    /// written straight into the store's sorted history, and the indexes are built from them
    /// (bottom-up, each leaf 90% full, when the store holds no message yet), in **one durable commit**.
    ///
    /// All or nothing: every message is checked against the limits of `Message` first; an
    /// invalid one throws `.invalidArgument` naming the field and nothing is written. A crash
    /// or power loss before the commit is durable leaves the store as it was. Messages whose id
    /// is live already in the same conversation are skipped and counted in `duplicates`; an id
    /// live in another conversation (in the store or earlier in the load) throws `.idConflict`
    /// and nothing is loaded.
    ///
    /// Other writers wait until the load has committed; readers keep reading the state before
    /// it. Memory: the encoded messages of one sorted run (about a million messages) at a time,
    /// plus about 32 bytes per message (its id — more for ids over 15 bytes — and its
    /// conversation), plus the new index pages, which stay in memory until the next checkpoint
    /// (about 50 bytes per message into an empty store). Measured: a load of 3,000,000
    /// messages streamed from a generator peaked at 640 MB resident, the 256 MiB page cache
    /// included; plan on about 150 bytes per message for the largest single load. Use appends
    /// for live traffic and `load` for imports, migrations and benchmarks.
    @discardableResult
    public func load(_ messages: some Sequence<Message>) throws -> LoadSummary {
        var iterator = messages.makeIterator()
        let summary = try mapErrors { try database.bulkLoad { iterator.next().map(Self.stored) } }
        return LoadSummary(appended: summary.appended, duplicates: summary.duplicates)
    }

    /// Checks `message` against the limits an append or load checks (see `Message`), without
    /// writing: throws `.invalidArgument` naming the field. Cost: the UTF-8 lengths.
    public func validate(_ message: Message) throws {
        try mapErrors { try database.validate(.append(Self.stored(message))) }
    }
}

/// One line of `MessageStore.spaceUsage()`.
public struct SpaceUsageEntry: Sendable, Hashable {
    /// "tree messages", "free pages", "sorted runs", "log", …
    public var structure: String
    public var bytes: UInt64
}

extension MessageStore {
    /// Where the store's bytes are: each index tree, the page file's free pages, the sorted
    /// runs (message history) and the log not sealed yet. Cost: reads every branch page of
    /// every tree (not the leaves); safe while writers run. A store opened read-only reports
    /// the page-file state its newest snapshot starts from (trees and that state's free pages)
    /// and the runs its state names; what it replayed from the log counts as log.
    public func spaceUsage() throws -> [SpaceUsageEntry] {
        try mapErrors { try database.spaceUsage().map { SpaceUsageEntry(structure: $0.structure, bytes: $0.bytes) } }
    }
}

extension MessageStore {
    /// The asynchronous form of `load(_:)`: the load runs on the store's threads.
    @discardableResult
    public func load(_ messages: [Message]) async throws -> LoadSummary {
        try await offload { [self] in try load(messages) }
    }

    /// Loads the messages of an asynchronous sequence (a file being read, a network stream) as
    /// one `load(_:)`: they are gathered first (memory: every message of the sequence), then
    /// loaded in one durable commit on the store's threads. Nothing is written if the sequence
    /// throws or a message is invalid.
    @discardableResult
    public func load<Messages: AsyncSequence>(contentsOf messages: Messages) async throws -> LoadSummary
    where Messages.Element == Message {
        var gathered: [Message] = []
        for try await message in messages { gathered.append(message) }
        return try await load(gathered)
    }
}
