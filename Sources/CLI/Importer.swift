#if canImport(Glibc)
import Glibc
#endif
import Scrollback

/// Opening stores from the command line. Commands that only read open the store read-only
/// (they work while another process writes it, and include every write acknowledged before
/// they started); commands that write take the store's writer lock, named after the
/// command, and a store another writer holds is refused (`.storeLocked`, exit 1).
enum StoreAccess {
    /// True if `path` holds a store (the store's own decision: a directory with a page file).
    static func exists(_ path: String) -> Bool {
        MessageStore.storeExists(at: path)
    }

    /// Opens an existing store read-only; never creates one.
    static func openReadOnly(_ path: String, options: StoreOptions = StoreOptions()) throws -> MessageStore {
        guard exists(path) else { throw CLIError("no Scrollback store at \(path)") }
        return try MessageStore(readingAt: path, options: options)
    }

    /// Opens an existing store for writing as `scrollback <command>`; never creates one (a
    /// mistyped path must not become a new, empty store).
    static func openExisting(_ path: String, command: String, options: StoreOptions = StoreOptions()) throws -> MessageStore {
        guard exists(path) else { throw CLIError("no Scrollback store at \(path)") }
        return try MessageStore(path: path, options: labelled(options, command))
    }

    /// Opens a store for writing as `scrollback <command>`, creating it if the directory is
    /// missing or empty.
    static func openOrCreate(_ path: String, command: String, options: StoreOptions = StoreOptions()) throws -> MessageStore {
        try MessageStore(path: path, options: labelled(options, command))
    }

    private static func labelled(_ options: StoreOptions, _ command: String) -> StoreOptions {
        var options = options
        if options.lockLabel == nil { options.lockLabel = "scrollback \(command)" }
        return options
    }
}

/// Loads records into a store in chunks of `batchSize` (each chunk one atomic, durable bulk
/// load: `MessageStore.load`, which writes sorted history directly). Every record is checked
/// against the store's limits as it is added: a bad one is reported with its origin and
/// skipped (or, `strict`, the import stops after the chunks before it are written). Records
/// whose id already exists are counted as duplicates and change nothing (import is
/// idempotent). Records exported with `"edited":true` are loaded, then edited with the same
/// body, so the flag survives a round trip.
final class Importer {
    let store: MessageStore
    let batchSize: Int
    let strict: Bool
    /// The largest chunk: about a sorted run's worth of messages held in memory.
    static let maximumBatchSize = 1 << 22
    private var pending: [ImportRecord] = []
    private(set) var appended = 0
    private(set) var duplicates = 0
    private(set) var rejected = 0

    init(store: MessageStore, batchSize: Int, strict: Bool) {
        self.store = store
        self.batchSize = max(1, min(batchSize, Self.maximumBatchSize))
        self.strict = strict
    }

    /// Reports a record that could not be read (bad JSON, bad column). Throws in strict mode.
    func reject(origin: String, reason: String) throws {
        rejected += 1
        printError("\(origin): \(reason)" + (strict ? "" : " (skipped)"))
        if strict {
            try flush()
            throw ExitStatus(code: 1)
        }
    }

    func add(_ record: ImportRecord) throws {
        do {
            try store.validate(record.message)
        } catch let error as ScrollbackError {
            try reject(origin: record.origin, reason: error.description)
            return
        }
        pending.append(record)
        if pending.count >= batchSize { try flush() }
    }

    /// Writes what is pending.
    func flush() throws {
        guard !pending.isEmpty else { return }
        let records = pending
        pending.removeAll(keepingCapacity: true)
        // Records exported edited are edited after the load, unless their id was live before
        // it (a duplicate keeps the store's message untouched). Rare: looked up one by one.
        var edited: [ImportRecord] = []
        var seen = Set<String>()
        for record in records where seen.insert(record.message.id).inserted {
            if record.edited, try store.message(id: record.message.id) == nil { edited.append(record) }
        }
        let summary = try store.load(records.lazy.map(\.message))
        duplicates += summary.duplicates
        appended += summary.appended
        try writeEdits(edited)
    }

    private func writeEdits(_ records: [ImportRecord]) throws {
        var start = 0
        while start < records.count {
            let end = min(records.count, start + WriteBatch.maxOperations)
            var edits = WriteBatch()
            for record in records[start..<end] { edits.edit(id: record.message.id, body: record.message.body) }
            try store.write(edits)
            start = end
        }
    }

    var summary: String {
        var parts = ["\(appended) message\(appended == 1 ? "" : "s") imported"]
        if duplicates > 0 { parts.append("\(duplicates) already present") }
        if rejected > 0 { parts.append("\(rejected) bad record\(rejected == 1 ? "" : "s") skipped") }
        return parts.joined(separator: ", ")
    }
}
