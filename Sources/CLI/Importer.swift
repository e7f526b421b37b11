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

/// Appends records to a store in batches of `batchSize` (each batch one atomic, durable
/// write). A batch the store rejects is split in halves until the bad record is found; it is
/// reported with its origin and skipped (or, `strict`, the import stops after the records
/// before it are written). Records whose id already exists are counted as duplicates
/// and change nothing (import is idempotent). Records exported with `"edited":true` are
/// appended, then edited with the same body, so the flag survives a round trip.
final class Importer {
    let store: MessageStore
    let batchSize: Int
    let strict: Bool
    private var pending: [ImportRecord] = []
    private(set) var appended = 0
    private(set) var duplicates = 0
    private(set) var rejected = 0

    init(store: MessageStore, batchSize: Int, strict: Bool) {
        self.store = store
        self.batchSize = max(1, min(batchSize, WriteBatch.maxOperations))
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
        pending.append(record)
        if pending.count >= batchSize { try flush() }
    }

    /// Writes what is pending.
    func flush() throws {
        guard !pending.isEmpty else { return }
        let records = pending
        pending.removeAll(keepingCapacity: true)
        try write(records[...])
    }

    /// Writes `records` as one batch. If the store rejects the batch, the halves are written
    /// separately (in order), down to the single bad record, which is reported and skipped:
    /// O(log n) extra commits per bad record.
    private func write(_ records: ArraySlice<ImportRecord>) throws {
        var batch = WriteBatch()
        for record in records { batch.append(record.message) }
        do {
            let outcomes = try store.write(batch)
            try finish(records, outcomes)
        } catch let error as ScrollbackError {
            guard case .invalidArgument = error else { throw error }
            if records.count == 1, let record = records.first {
                rejected += 1
                printError("\(record.origin): \(error.description)" + (strict ? "" : " (skipped)"))
                if strict { throw ExitStatus(code: 1) }
                return
            }
            let middle = records.startIndex + records.count / 2
            try write(records[records.startIndex..<middle])
            try write(records[middle...])
        }
    }

    private func finish(_ records: ArraySlice<ImportRecord>, _ outcomes: [AppendOutcome]) throws {
        var edits = WriteBatch()
        for (record, outcome) in zip(records, outcomes) {
            if outcome == .duplicate {
                duplicates += 1
            } else {
                appended += 1
                if record.edited { edits.edit(id: record.message.id, body: record.message.body) }
            }
        }
        if !edits.operations.isEmpty { try store.write(edits) }
    }

    var summary: String {
        var parts = ["\(appended) message\(appended == 1 ? "" : "s") imported"]
        if duplicates > 0 { parts.append("\(duplicates) already present") }
        if rejected > 0 { parts.append("\(rejected) bad record\(rejected == 1 ? "" : "s") skipped") }
        return parts.joined(separator: ", ")
    }
}
