#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager

/// The state of a read-only engine, guarded by one mutex that also serializes refreshes.
final class ReadOnlyEngineState: Sendable {
    /// Sendable because the log reader is only used under the lock.
    struct State: @unchecked Sendable {
        /// The end of the last transaction replayed: the newest snapshot includes the log
        /// through here.
        var replayedThrough: LogPosition
        /// The checkpoint sequence of the meta page the reader slot holds.
        var slotSequence: UInt64
        var refreshes: UInt64 = 0
        /// A refresh changed the state: bindings and open runs that only older snapshots use
        /// may be dropped once those snapshots end (`pruneBindings`).
        var bindingsToPrune = false
        /// Tails the log between refreshes (keeps the newest raw segment's bytes).
        let logReader: LogReader
    }

    let state: Lock<State>

    init(base: MetaPage, logReader: LogReader) {
        state = Lock(State(replayedThrough: base.state.logPosition, slotSequence: base.checkpointSequence, logReader: logReader))
    }
}

/// Read-only opens of a live store (spec/reader-table.md, "Reader protocol"; LMDB's model):
/// a reader in any process — or a second open in the writer's own process — reads a
/// consistent snapshot of the committed state: the newest checkpoint (a meta page, registered
/// in a reader slot by the race rule) plus every complete transaction of the log after it, up
/// to the durable end the writer published. It never creates, truncates, renames or removes
/// a file of the store and never writes one (only its slot in `readers`, which it may also
/// create or rebuild when no other process has it open).
///
/// `refresh()` moves to the newest state: it replays what the log gained since, or, when the
/// writer has checkpointed since, starts from the newer meta page. Snapshots taken before
/// keep reading their own state; the reader slot holds the oldest state in use (advanced at
/// a later refresh once older snapshots end), so the writer reuses no page and removes no
/// segment such a snapshot may read. A reader that keeps an old snapshot delays that reuse
/// (the page file and the log grow meanwhile); it never makes the writer wait.
///
/// Costs: the open reads both meta pages (twice, the race rule) and replays the log written
/// since the newest checkpoint into memory (at most about `checkpointLogBytes` of log); a
/// refresh reads only what is new. Pages of a newer checkpoint start cold in the cache.
extension StorageEngine {
    /// Opens the store in `directory` read-only. Throws `.notAStore` when `directory` holds no
    /// store (missing, empty, a regular file, other files), `.corrupted` for damage met while
    /// reading the newest state, `.unsupportedVersion` for a newer format. Writes, checkpoints,
    /// syncs, compactions and backups into the store throw `.readOnly`.
    package static func openReadOnly(
        fileSystem: any FileSystem, directory: String, options: StorageOptions = StorageOptions(),
        schema: StorageSchema
    ) throws -> StorageEngine {
        try validate(schema)
        try checkIsDirectory(fileSystem: fileSystem, directory: directory)
        let contents = StoreDirectory.inspect(fileSystem: fileSystem, directory: directory)
        let pagesPath = Path.join(directory, PageFileLayout.fileName)
        switch contents.kind {
        case .store: break
        case .logWithoutPageFile:
            throw StorageError.corrupted(
                file: pagesPath, offset: 0,
                reason: "page file is missing but the log exists (\(contents.logSegment ?? ""))")
        case .empty, .interruptedCreation, .foreign:
            throw StorageError.notAStore(path: directory)
        }
        // A store of an older format is refused before the reader table is created in it
        // (`scrollback upgrade` converts it; other damage is reported by the open below).
        if let meta = try? Pager.readNewestMeta(fileSystem: fileSystem, path: pagesPath),
           meta.formatVersion < PageFileLayout.formatVersion {
            throw StorageError.needsUpgrade(file: PageFileLayout.fileName, found: meta.formatVersion,
                                            current: PageFileLayout.formatVersion)
        }
        let table = try ReaderTable.open(fileSystem: fileSystem, directory: directory, role: .reader)
        let pager: Pager
        let log: Log
        var registered: MetaPage?
        do {
            pager = try Pager.openReadOnly(fileSystem: fileSystem, path: pagesPath, cacheBytes: options.pageCacheBytes) { readNewest in
                // The race rule: the meta page read last is the one the slot holds.
                _ = try table.publishSnapshot {
                    let meta = try readNewest()
                    registered = meta
                    return ReaderSnapshot(transactionID: meta.state.transactionID, logPosition: meta.state.logPosition)
                }
                guard let registered else {
                    throw StorageError.invalidArgument("the reader table published no snapshot for \(pagesPath)")
                }
                return registered
            }
            do {
                log = try Log.openReadOnlyView(fileSystem: fileSystem, directory: directory, options: options.log)
            } catch {
                try? pager.close()
                throw error
            }
        } catch StorageError.notAStore where contents.logSegment != nil {
            try? table.close()
            throw StorageError.corrupted(
                file: pagesPath, offset: 0,
                reason: "neither meta page of the page file is valid but the log exists (\(contents.logSegment ?? ""))")
        } catch {
            try? table.close()
            throw error
        }
        // Set by the pager's open above (which throws otherwise).
        guard let base = registered else {
            try? log.close()
            try? pager.close()
            try? table.close()
            throw StorageError.invalidArgument("the reader table published no snapshot for \(pagesPath)")
        }
        // The run files present now; newer ones are adopted at each refresh. Nothing is removed
        // (a `.run.tmp` may be a run the writer is writing).
        let runs: RunStore
        do {
            runs = try RunStore(fileSystem: fileSystem, directory: directory, cacheBytes: options.runCacheBytes,
                                removeTemporaryFiles: false)
        } catch {
            try? log.close()
            try? pager.close()
            try? table.close()
            throw error
        }
        let state = ReadOnlyEngineState(base: base, logReader: LogReader(fileSystem: fileSystem, directory: directory))
        let engine = StorageEngine(
            directory: directory, options: options, schema: schema, pager: pager, log: log, runs: runs,
            aliases: SegmentAliases([]), fileSystem: fileSystem, replayed: 0,
            coordination: ProcessCoordination(storeLock: nil, readers: table, readOnly: state))
        do {
            try state.state.withLock { state in _ = try engine.refreshLocked(&state, initial: true) }
            try schema.checkState(engine.committedState, pager.path)
        } catch {
            try? engine.close()
            throw error
        }
        return engine
    }

    /// Read-only engines: moves to the newest committed state the writer has made durable
    /// (new snapshots see it; snapshots taken before keep theirs) and returns whether
    /// anything changed. Also advances the reader slot once older snapshots have ended.
    /// Writers: a no-op returning false (a writer always reads its newest state).
    /// Cost: reading the meta pages and the published bound (three `pread`s) when nothing is
    /// new; otherwise the log written since (and, after a checkpoint, cold pages).
    @discardableResult
    package func refresh() throws -> Bool {
        guard let readOnly = coordination.readOnly else { return false }
        if refusal() == .closed { throw StorageError.closed }
        return try readOnly.state.withLock { state in try refreshLocked(&state, initial: false) }
    }

    /// The refresh (and the open's first replay). REQUIRES: the state lock.
    fileprivate func refreshLocked(_ state: inout ReadOnlyEngineState.State, initial: Bool) throws -> Bool {
        let table = coordination.readers
        var attempt = 0
        while true {
            attempt += 1
            let current = pager.baseMeta
            let newest = initial ? current : try pager.readNewestMeta()
            let rebase = newest.checkpointSequence > current.checkpointSequence ? newest : nil
            let start = rebase?.state.logPosition ?? state.replayedThrough
            let published = try table.readPublished()
            let limit: LogPosition? = published.hasBound ? published.durableLogEnd : nil
            if !initial, rebase == nil, let limit, limit <= state.replayedThrough {
                try advanceReaderSlot(&state)
                return false
            }
            let transaction = try rebase.map { try pager.beginRebase(to: $0) } ?? pager.beginWrite()
            do {
                // Runs the writer wrote before the bound was published are in the directory
                // now: the state about to be read (and a bulk load replayed into it) names
                // no other.
                try runs.adoptFilesPresent()
                if initial || rebase != nil {
                    // A store whose creation crashed before its trees were checkpointed: the
                    // writer's recovery creates them; the reader does so in memory.
                    _ = try Self.prepareTrees(schema, in: transaction, file: pager.path)
                }
                var applied = 0
                let end = try state.logReader.read(from: start, through: limit) { logged in
                    try Self.apply(logged, to: transaction, schema: schema, runs: runs)
                    applied += 1
                }
                if limit == nil, try table.readPublished().hasBound {
                    // A writer started while the log was read: read again within its bound.
                    transaction.rollback()
                    continue
                }
                if applied == 0 && rebase == nil && !initial {
                    transaction.rollback()
                } else {
                    let accounts = try Self.segmentTable(of: transaction, schema: schema)
                    let id = transaction.state.transactionID
                    try transaction.commit()
                    bindRuns(accounts, from: initial ? 0 : id)
                    state.bindingsToPrune = state.bindingsToPrune || !initial
                }
                state.replayedThrough = max(state.replayedThrough, end)
                try log.refreshReadOnlyView(through: state.replayedThrough)
                state.refreshes += initial ? 0 : 1
                try advanceReaderSlot(&state)
                return applied > 0 || rebase != nil
            } catch let error as StorageError where attempt < 8 && Self.isRace(error) {
                // A file removed (sealed, compacted) between listing and opening: look again.
                if !transaction.isFinished { transaction.rollback() }
                continue
            } catch {
                if !transaction.isFinished { transaction.rollback() }
                throw error
            }
        }
    }

    /// Binds each segment of the new state to the run its segment table names, for snapshots
    /// from transaction `from` (local to this engine's pager) on; older snapshots keep their
    /// bindings (a segment sealed after their state is read from its raw log file, which the
    /// writer keeps while this reader's slot is older than the sealing: StorageEngine+Segments).
    /// Bindings of segments the state no longer lists stay for the older snapshots.
    private func bindRuns(_ accounts: [SegmentAccount], from: UInt64) {
        for account in accounts where account.run != 0 && aliases.bindings(of: account.id).first?.run != account.run {
            aliases.bind(account.id, to: account.run, from: from)
        }
    }

    /// Once no snapshot older than the newest state is alive: the bindings become exactly
    /// those of the newest state's segment table, and the runs its run table does not name are
    /// forgotten (their open files are closed once no cursor holds them; the writer removes
    /// them). Keeps a long-lived reader from holding every run file it ever read. A snapshot
    /// that begins meanwhile starts from the newest state, whose bindings stay the same.
    private func pruneBindings(_ state: inout ReadOnlyEngineState.State) throws {
        guard state.bindingsToPrune else { return }
        let newest = pager.committedState.transactionID
        guard (pager.oldestSnapshotID ?? .max) >= newest else { return }
        let (accounts, named) = try read { snapshot in
            (try Self.segmentTable(of: snapshot, schema: schema), Set(try Self.runTable(of: snapshot, schema: schema).map(\.id)))
        }
        aliases.reset(to: accounts)
        runs.forget(runs.ids().filter { !named.contains($0) })
        state.bindingsToPrune = false
    }

    private static func isRace(_ error: StorageError) -> Bool {
        if case .io(_, _, let code) = error, code == ENOENT { return true }
        return false
    }

    /// Moves the reader slot forward to the oldest page-file state a snapshot still reads.
    /// Pages cached from older states are dropped first: once the slot moves, the writer may
    /// reuse the pages only those states could reach.
    private func advanceReaderSlot(_ state: inout ReadOnlyEngineState.State) throws {
        try pruneBindings(&state)
        let oldest = pager.oldestBaseInUse()
        guard oldest.checkpointSequence > state.slotSequence else { return }
        pager.dropCachedFilePages()
        try coordination.readers.update(
            snapshot: ReaderSnapshot(transactionID: oldest.state.transactionID, logPosition: oldest.state.logPosition))
        state.slotSequence = oldest.checkpointSequence
    }

    /// Closes the files and gives up the reader slot. Idempotent.
    func closeReadOnly() throws {
        try withWriterRole {
            guard markClosed() else { return }
            var firstError: (any Error)?
            do { try log.close() } catch { firstError = error }
            do { try pager.close() } catch { firstError = firstError ?? error }
            do { try coordination.close() } catch { firstError = firstError ?? error }
            if let firstError { throw firstError }
        }
    }

    // MARK: Verify and backup of a live store

    /// `verify()` of a read-only engine: the trees of the newest snapshot, the page accounting
    /// of the page-file state it starts from (its free list included: the writer keeps those
    /// pages for the reader too), and every log segment the reader holds. Never refreshes.
    func verifyReadOnly() -> [String] {
        var problems: [String] = []
        do {
            try read { snapshot in _ = try BTree.checkAllTrees(in: snapshot, file: pager.path) }
        } catch {
            problems.append("trees: \(error)")
        }
        let base = pager.beginReadOfBase()
        let meta = pager.baseMeta
        do {
            let reachable = try BTree.checkAllTrees(in: base, file: pager.path)
            let free = try pager.readBaseFreeList()
            let accounting = PageAccounting(pageCount: meta.pageCount, freePages: free.freePages, freeListPages: free.listPages)
            try accounting.check(reachable: reachable, file: pager.path)
        } catch {
            problems.append("page accounting: \(error)")
        }
        base.rollback()
        do {
            for segment in try log.listSegments() {
                do {
                    try log.forEachTransaction(inSegment: segment.id) { _ in }
                } catch {
                    problems.append("log segment \(segment.id): \(error)")
                }
            }
        } catch {
            problems.append("log: \(error)")
        }
        return problems
    }

    /// `backup(to:)` of a read-only engine: a copy of the newest committed state (after a
    /// refresh) that opens and verifies, made while the writer keeps writing. The page file's
    /// pages of that state are copied (the reader slot keeps the writer off them), with a free
    /// list rebuilt from the trees (the writer may reuse the pages of the one on disk) and
    /// both meta pages rewritten; then every log segment the state needs, the last one cut at
    /// the end of the state's last transaction, and the sorted runs (`copyRuns`). Every file
    /// and the directory are synced.
    func backupReadOnly(to destination: String) throws {
        try refresh()
        try coordination.readOnly!.state.withLock { state in
            try fileSystem.createDirectory(destination)
            let base = pager.beginReadOfBase()
            defer { base.rollback() }
            let meta = pager.baseMeta
            let reachable = try BTree.checkAllTrees(in: base, file: pager.path)
            try copyPageFile(meta: meta, reachable: reachable, into: Path.join(destination, PageFileLayout.fileName))
            try log.copyReadOnlyView(through: state.replayedThrough, into: destination)
            try copyRuns(base: base, into: destination)
            try fileSystem.syncDirectory(destination)
        }
    }

    /// Copies the run files a restore of the backup reads: those the base state's run table
    /// names, those the newest state's names, and any other run committed before the newest
    /// state (below its run counter) whose file is present — a run the replayed log attaches
    /// and merges away (recovery of the copy reads an attached run). The reader slot keeps the
    /// writer from removing any run a state from the base on names; a run no such state names
    /// that goes meanwhile is skipped (the copy's open would remove it anyway).
    private func copyRuns(base: PageTransaction, into destination: String) throws {
        let newest = try read { snapshot in
            (Set(try Self.runTable(of: snapshot, schema: schema).map(\.id)), snapshot.state.counters[schema.liveness.nextRunCounter])
        }
        let named = newest.0.union(try Self.runTable(of: base, schema: schema).map(\.id))
        try runs.adoptFilesPresent()
        for id in Set(runs.ids().filter { UInt64($0) < newest.1 }).union(named).sorted() {
            do {
                try copyFile(runs.path(of: id), into: destination)
            } catch StorageError.io(_, _, let code) where code == ENOENT && !named.contains(id) {
                continue
            }
        }
    }

    private func copyPageFile(meta: MetaPage, reachable: Set<PageNumber>, into path: String) throws {
        let pageSize = pager.pageSize
        let output = try fileSystem.open(path, mode: .createNew)
        do {
            let total = meta.pageCount * UInt64(pageSize)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var offset: UInt64 = 0
            while offset < total {
                let want = Int(min(UInt64(buffer.count), total - offset))
                let n = try buffer.withUnsafeMutableBytes {
                    try pager.readFileBytes(into: UnsafeMutableRawBufferPointer(rebasing: $0[..<want]), at: offset)
                }
                guard n == want else {
                    throw StorageError.corrupted(file: pager.path, offset: offset + UInt64(n),
                                                 reason: "page file ends before page count \(meta.pageCount)")
                }
                try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[..<n]), at: offset) }
                offset += UInt64(n)
            }
            // The free list: every page the state does not reach, in new pages at the end.
            var free: [PageNumber] = []
            for page in PageNumber(PageFileLayout.metaPageCount)..<meta.pageCount where !reachable.contains(page) {
                free.append(page)
            }
            let ranges = FreeListPage.ranges(ofSorted: free)
            let listCount = FreeListPage.pagesNeeded(rangeCount: ranges.count, pageSize: pageSize)
            let listPages = (0..<listCount).map { meta.pageCount + PageNumber($0) }
            let capacity = FreeListPageLayout.capacity(pageSize: pageSize)
            var page = [UInt8](repeating: 0, count: pageSize)
            for (i, number) in listPages.enumerated() {
                let lower = min(i * capacity, ranges.count), upper = min(lower + capacity, ranges.count)
                let next = i + 1 < listPages.count ? listPages[i + 1] : 0
                try page.withUnsafeMutableBytes { bytes in
                    FreeListPage.encode(into: bytes, pageNumber: number, next: next, ranges: ranges[lower..<upper])
                    Pager.seal(bytes, sequence: meta.checkpointSequence)
                    try output.write(UnsafeRawBufferPointer(bytes), at: number * UInt64(pageSize))
                }
            }
            // Both meta pages: this state, and the same one a sequence earlier in the other slot.
            for sequence in [meta.checkpointSequence, meta.checkpointSequence &- 1] where sequence <= meta.checkpointSequence {
                let copy = MetaPage(
                    pageSize: pageSize, checkpointSequence: sequence, pageCount: meta.pageCount + UInt64(listCount),
                    freeListHead: listPages.first ?? 0, freeListPageCount: UInt64(listCount),
                    freePageCount: UInt64(free.count), state: meta.state)
                try copy.encoded().withUnsafeBytes { try output.write($0, at: copy.slot * UInt64(pageSize)) }
            }
            try output.syncData()
            try output.close()
        } catch {
            try? output.close()
            throw error
        }
    }
}
