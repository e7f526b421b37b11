import ScrollbackFormat
import ScrollbackIO

/// Counters of the sorted runs of a store.
package struct RunStatistics: Sendable, Equatable {
    /// Run files listed.
    package var runs = 0
    /// Their bytes on disk.
    package var bytes: UInt64 = 0
    /// Records of the runs opened so far.
    package var records: UInt64 = 0
    package var blockCache = BlockCacheStatistics()
}

/// The sorted-run files of one directory (spec/sorted-run.md) and the cache of their decoded
/// blocks. It only manages files; which runs are live is decided by the layer above (the
/// storage engine's run table), which tells it to add and remove them.
///
/// At open it removes `*.run.tmp` leftovers (runs whose writing never finished) and lists the
/// run files; a run's index is read on first use.
///
/// Thread-safety: every method may be called from any thread.
package final class RunStore: Sendable {
    package let directory: String
    let fileSystem: any FileSystem
    let cache: RunBlockCache
    let blockSize: Int
    /// Run id → entry. An `IntegerMap` (no SipHash): `run(_:)` is once per read.
    private let table: Lock<IntegerMap<Entry>>

    enum Entry {
        case unopened
        case open(SortedRun)
    }

    package init(fileSystem: any FileSystem, directory: String, cacheBytes: Int, blockSize: Int = SortedRunLayout.defaultBlockSize,
                 removeTemporaryFiles: Bool = true) throws {
        self.fileSystem = fileSystem
        self.directory = directory
        self.blockSize = blockSize
        cache = RunBlockCache(capacity: max(0, cacheBytes))
        var entries = IntegerMap<Entry>()
        var removed = false
        for name in try fileSystem.listDirectory(directory) {
            if let id = SortedRun.id(fromFileName: name) {
                entries[UInt64(id)] = .unopened
            } else if removeTemporaryFiles, name.hasPrefix(SortedRunLayout.filePrefix), name.hasSuffix(SortedRunLayout.temporarySuffix) {
                try fileSystem.removeFile(Path.join(directory, name))
                removed = true
            }
        }
        if removed { try fileSystem.syncDirectory(directory) }
        table = Lock(entries)
    }

    /// Ids of the run files present, ascending.
    package func ids() -> [UInt32] { table.withLock { $0.keys.map { UInt32(truncatingIfNeeded: $0) } }.sorted() }

    /// The path of run `id`'s file (whether or not it exists).
    package func path(of id: UInt32) -> String { Path.join(directory, SortedRun.fileName(id)) }

    package func contains(_ id: UInt32) -> Bool { table.withLock { $0.contains(UInt64(id)) } }

    /// Run `id`, opening (and validating) it on first use. A missing file is `.corrupted`:
    /// the caller asks only for runs its table names.
    package func run(_ id: UInt32) throws -> SortedRun {
        switch table.withLock({ $0[UInt64(id)] }) {
        case .open(let run)?:
            return run
        case .unopened?:
            let run = try SortedRun.open(fileSystem: fileSystem, path: Path.join(directory, SortedRun.fileName(id)), id: id)
            return table.withLock { entries in
                if case .open(let existing)? = entries[UInt64(id)] { return existing }
                entries[UInt64(id)] = .open(run)
                return run
            }
        case nil:
            throw StorageError.corrupted(file: Path.join(directory, SortedRun.fileName(id)), offset: 0,
                                         reason: "run \(id) is named by the store's run table but its file is missing")
        }
    }

    /// A writer for a new run `id` (its file appears only when the writer finishes);
    /// `compressionThreads` as `SortedRunWriter`'s.
    package func writer(id: UInt32, compression: RunCompression, compressionThreads: Int = 1) throws -> SortedRunWriter {
        try SortedRunWriter(fileSystem: fileSystem, directory: directory, id: id, blockSize: blockSize, compression: compression,
                            compressionThreads: compressionThreads)
    }

    /// Registers a run a writer finished.
    package func add(_ run: SortedRun) {
        table.withLock { $0[UInt64(run.id)] = .open(run) }
    }

    /// Registers the run files present now that this store has not listed yet: a read-only
    /// store of a live directory calls it before reading a newer state, whose tables may name
    /// runs another process wrote since. Each is opened on first use. Cost: one directory
    /// listing.
    package func adoptFilesPresent() throws {
        let found = try fileSystem.listDirectory(directory).compactMap { SortedRun.id(fromFileName: $0) }
        table.withLock { entries in
            for id in found where !entries.contains(UInt64(id)) { entries[UInt64(id)] = .unopened }
        }
    }

    /// Forgets runs without touching their files (a read-only store: the writer removes them;
    /// a later `adoptFilesPresent` lists a file still present again). Their cached blocks are
    /// dropped; a cursor that holds one keeps reading it until it lets go.
    package func forget(_ ids: some Sequence<UInt32>) {
        for id in ids where table.withLock({ $0.remove(UInt64(id)) }) != nil { cache.removeAll(run: id) }
    }

    /// Removes run `id`'s file and syncs the directory; its cached blocks are dropped. Readers
    /// holding the run keep reading through their open handle until they let go.
    package func remove(_ id: UInt32) throws {
        guard table.withLock({ $0.remove(UInt64(id)) }) != nil else { return }
        cache.removeAll(run: id)
        try fileSystem.removeFile(Path.join(directory, SortedRun.fileName(id)))
        try fileSystem.syncDirectory(directory)
    }

    /// A cursor over run `id`.
    package func cursor(_ id: UInt32) throws -> RunCursor {
        RunCursor(run: try run(id), cache: cache)
    }

    /// Calls `body` with the payload of the record with `key` in run `id`; false if the run
    /// has no such record.
    package func withRecord(run id: UInt32, key: RunKey, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        var cursor = try cursor(id)
        guard try cursor.find(key) else { return false }
        try withExtendedLifetime(cursor.block) { try body(cursor.payload) }
        return true
    }

    /// `runs` and `bytes` cover every run file listed, opened or not (a run not opened yet is
    /// measured by its file's size: one open and close, no read); `records` counts the runs
    /// opened so far (a run's record count is in its footer, read when it is opened). A file
    /// that cannot be opened counts 0 bytes here; reading the run reports why.
    package var statistics: RunStatistics {
        let (opened, unopened) = table.withLock { entries in
            var opened: [SortedRun] = []
            var unopened: [UInt32] = []
            for (id, entry) in entries {
                switch entry {
                case .open(let run): opened.append(run)
                case .unopened: unopened.append(UInt32(truncatingIfNeeded: id))
                }
            }
            return (opened, unopened)
        }
        var s = RunStatistics()
        s.runs = opened.count + unopened.count
        for run in opened {
            s.bytes += run.fileSize
            s.records += run.recordCount
        }
        for id in unopened {
            guard let handle = try? fileSystem.open(path(of: id), mode: .readOnly) else { continue }
            s.bytes += (try? handle.size()) ?? 0
            try? handle.close()
        }
        s.blockCache = cache.statistics
        return s
    }
}
