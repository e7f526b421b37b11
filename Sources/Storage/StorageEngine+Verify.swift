import ScrollbackBTree
import ScrollbackFormat
import ScrollbackLog
import ScrollbackPager

extension StorageEngine {
    /// Walks every structure on a snapshot and returns the problems found (empty when
    /// healthy): each tree's invariants (order, separators, counts, depth, page checksums
    /// on read), page accounting (every page reachable, free or holding the free list,
    /// exactly once), and every log record of every segment (frame and block checksums,
    /// complete transactions). Never throws for damage: damage is what it reports.
    ///
    /// Cost: reads every page and every log segment once. Writers and checkpoints wait while
    /// the trees are walked (the page accounting must describe the same state as the walk);
    /// readers do not.
    /// A read-only engine checks the state it reads (`verifyReadOnly`).
    package func verify() -> [String] {
        if isReadOnly { return verifyReadOnly() }
        var problems: [String] = []
        withWritersAndCheckpointsHeld {
            do {
                try read { snapshot in
                    do {
                        let reachable = try BTree.checkAllTrees(in: snapshot, file: pager.path)
                        do {
                            try pager.pageAccounting().check(reachable: reachable, file: pager.path)
                        } catch {
                            problems.append("page accounting: \(error)")
                        }
                    } catch {
                        problems.append("trees: \(error)")
                    }
                }
            } catch {
                problems.append("snapshot: \(error)")
            }
        }
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

    /// Checks the segment and run tables of `snapshot` against the live records the schema
    /// found in it (`live`): every segment's live record count matches; a segment with live
    /// records has its log file (not sealed) or a run in the run table (sealed or attached);
    /// every segment live records point into has an entry; every run file the run table
    /// names is present and readable. Reports each mismatch.
    package func verifyLiveness(_ live: LiveRecordTally, in snapshot: PageTransaction, report: (String) -> Void) throws {
        var expected = live.records
        let present = Set(try log.listSegments().map(\.id))
        let runAccounts = try Self.runTable(of: snapshot, schema: schema)
        let knownRuns = Set(runAccounts.map(\.id))
        for account in try Self.segmentTable(of: snapshot, schema: schema) {
            let id = account.id
            let records = expected.removeValue(forKey: id) ?? 0
            if account.liveRecords != records {
                report("segment \(id): \(account.liveRecords) live records recorded, messages point at \(records)")
            }
            if account.run != 0 {
                if !knownRuns.contains(account.run) { report("segment \(id) is bound to run \(account.run), which the run table does not list") }
            } else if records > 0 && !present.contains(id) {
                report("segment \(id) holds live messages but its file is missing")
            }
        }
        for (id, records) in expected { report("segment \(id): messages point at \(records) records but it has no accounting entry") }
        for account in runAccounts {
            do {
                let run = try runs.run(account.id)
                if run.recordCount != account.records { report("run \(account.id): \(run.recordCount) records in the file, the table says \(account.records)") }
                try run.verify()
            } catch {
                report("run \(account.id): \(error)")
            }
        }
    }
}

/// The live records per segment, as the schema's trees point at them (for `verifyLiveness`).
package struct LiveRecordTally {
    var records: [UInt32: UInt64] = [:]

    package init() {}

    /// A tree entry points at the record at `position`.
    package mutating func add(recordAt position: LogPosition) {
        records[LogPositions.segment(position), default: 0] += 1
    }
}

/// Where a store's bytes are (`StorageEngine.spaceUsage()`).
package struct SpaceUsage: Sendable, Equatable {
    /// Pages each tree uses, by slot.
    package var treePages: [Int: Int]
    /// Free pages of the page file (reusable, or waiting for a snapshot or a checkpoint).
    package var freePages: Int
    /// Pages of the page file in all (meta pages and the free list's own pages included).
    package var pageCount: Int
    package var pageSize: Int
    /// Bytes of the sorted-run files.
    package var runBytes: UInt64
    /// Bytes of the log segments not sealed into runs (or not removed yet).
    package var logBytes: UInt64
}

extension StorageEngine {
    /// Where the bytes are, on a fresh snapshot. Cost: reads every branch page of every tree.
    /// A read-only engine reports the page-file state its newest snapshot starts from (its
    /// trees, and the free list of that state's meta page) and the run files its run table
    /// names; what it replayed from the log lives in memory and is counted as log bytes.
    package func spaceUsage() throws -> SpaceUsage {
        if isReadOnly { return try spaceUsageReadOnly() }
        let treePages = try read { snapshot in
            var pages: [Int: Int] = [:]
            for tree in schema.allTrees { pages[tree.slot] = try Self.pageCount(of: tree.slot, in: snapshot) }
            return pages
        }
        let accounting = pager.pageAccounting()
        let log = log.statistics
        return SpaceUsage(treePages: treePages, freePages: accounting.freePages.count, pageCount: Int(accounting.pageCount),
                          pageSize: pager.pageSize, runBytes: runs.statistics.bytes,
                          logBytes: log.rawSegmentBytes + log.sealedSegmentBytes)
    }

    /// Pages of the tree in `slot`; 0 for a slot the state does not use yet (a tree the schema
    /// added after the store was last opened by a writer, seen through a read-only open).
    static func pageCount(of slot: Int, in transaction: PageTransaction) throws -> Int {
        guard transaction.state.trees[slot].keyWords != 0 else { return 0 }
        return try BTree(transaction, slot: slot).pageCount()
    }

    private func spaceUsageReadOnly() throws -> SpaceUsage {
        let base = pager.beginReadOfBase()
        defer { base.rollback() }
        var treePages: [Int: Int] = [:]
        for tree in schema.allTrees { treePages[tree.slot] = try Self.pageCount(of: tree.slot, in: base) }
        let free = try pager.readBaseFreeList()
        let runBytes = try read { snapshot in try Self.runTable(of: snapshot, schema: schema).reduce(UInt64(0)) { $0 + $1.fileBytes } }
        let log = log.statistics
        return SpaceUsage(treePages: treePages, freePages: free.freePages.count, pageCount: Int(pager.baseMeta.pageCount),
                          pageSize: pager.pageSize, runBytes: runBytes, logBytes: log.rawSegmentBytes + log.sealedSegmentBytes)
    }
}

/// What `StorageEngine.compactPageFile()` did.
package struct PageFileCompaction: Sendable, Equatable {
    /// Page-file bytes before and after.
    package var bytesBefore: UInt64 = 0
    package var bytesAfter: UInt64 = 0
    /// Tree pages copied below the cut.
    package var pagesMoved = 0
}

extension StorageEngine {
    /// Returns the page file's free space to the file system: when more than a tenth of it is
    /// free (copy-on-write leaves the file at the high-water mark of the pages written between
    /// checkpoints), every tree page above the live page count (plus 5% slack) is copied into a
    /// free page below it, in one write transaction without log records (the trees' contents
    /// do not change, so recovery needs nothing: a crash before the next checkpoint keeps the
    /// old layout), then two checkpoints make the originals reusable and cut the free tail
    /// (`Pager.cutFreeTail`). Readers keep reading; a snapshot or a reader in another process
    /// that still sees the old pages keeps the tail until a later checkpoint. Writers wait while
    /// the copies are made (they hold the writer lock, as a commit does).
    ///
    /// Cost: reads every branch page; writes the moved pages once at each checkpoint.
    package func compactPageFile() throws -> PageFileCompaction {
        if isReadOnly { throw StorageError.readOnly(path: directory) }
        var result = PageFileCompaction()
        let pageSize = UInt64(pager.pageSize)
        let before = pager.pageAccounting()
        result.bytesBefore = before.pageCount * pageSize
        let free = UInt64(before.freePages.count)
        guard free * 10 > before.pageCount, free > 64 else {
            result.bytesAfter = result.bytesBefore
            return result
        }
        let live = before.pageCount - free
        let limit = live + max(live / 20, 64)
        try writerLock.withLock { _ in
            if let failure = refusal() { throw failure }
            let transaction = try pager.beginWrite()
            do {
                for tree in schema.allTrees where transaction.state.trees[tree.slot].keyWords != 0 {
                    result.pagesMoved += try BTree(transaction, slot: tree.slot).relocatePages(atOrAbove: limit)
                }
                try transaction.commit()
            } catch {
                if !transaction.isFinished { transaction.rollback() }
                poisonWith(error)
                throw error
            }
        }
        try checkpoint()
        try checkpoint()
        result.bytesAfter = pager.pageCount * pageSize
        return result
    }
}
