@testable import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing

/// Crashes at every I/O step of a checkpoint: the file reopens to the old or the new state,
/// complete, with every page readable and no page leaked.
@Suite struct CheckpointCrashTests {
    /// The state of one committed version: live page → stamp.
    typealias Model = [PageNumber: UInt64]

    /// Builds version 1 (checkpointed) and version 2 (committed, not checkpointed) on `fs`.
    func prepare(_ fs: FaultyFileSystem, pageSize: Int) throws -> (Pager, v1: Model, v2: Model) {
        let pager = try Pager.create(fileSystem: fs, path: pagesPath, pageSize: pageSize, cacheBytes: 16 * pageSize)
        let first = try pager.beginWrite()
        var v1: Model = [:]
        for page in try allocateFilled(first, count: 40, stampBase: 1000) { v1[page] = 0 }
        for page in v1.keys { v1[page] = try stamp(first, page) }
        setState(first, root: v1.keys.min(), version: 1)
        try first.commit()
        try pager.checkpoint()

        let second = try pager.beginWrite()
        var v2 = v1
        let sorted = v1.keys.sorted()
        for page in sorted where page % 4 == 0 {  // free some
            try second.freePage(page)
            v2[page] = nil
        }
        for page in sorted where page % 4 == 1 {  // copy on write
            let fresh = try second.allocatePage()
            try fill(second, fresh, stamp: 5000 + page)
            try second.freePage(page)
            v2[page] = nil
            v2[fresh] = 5000 + page
        }
        for page in try allocateFilled(second, count: 30, stampBase: 9000) { v2[page] = try stamp(second, page) }
        setState(second, root: v2.keys.min(), version: 2)
        try second.commit()
        return (pager, v1, v2)
    }

    func verify(_ bytes: [UInt8], expect versions: Set<UInt64>, models: [UInt64: Model], _ label: String) throws {
        let fs = try fileSystem(withPageFile: bytes)
        let pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        let version = pager.committedState.counters[0]
        #expect(versions.contains(version), "\(label): reopened to version \(version)")
        guard let model = models[version] else { return }
        let reader = pager.beginRead()
        for (page, expected) in model { #expect(try stamp(reader, page) == expected, "\(label): page \(page)") }
        reader.rollback()
        try pager.pageAccounting().check(reachable: model.keys)
        // The reopened file works: another checkpoint, another reopen, same state.
        let txn = try pager.beginWrite()
        txn.state.counters[1] = 77
        try txn.commit()
        try pager.checkpoint()
        let again = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: 1 << 20)
        #expect(again.committedState.counters[0] == version)
        try again.pageAccounting().check(reachable: model.keys)
    }

    @Test(arguments: [4096, 8192])
    func crashAtEveryStepOfACheckpoint(pageSize: Int) throws {
        var budget = 0
        var completed = false
        while !completed {
            let base = try makeFileSystem()
            let fs = FaultyFileSystem(base: base)
            let (pager, v1, v2) = try prepare(fs, pageSize: pageSize)
            let stepsBefore = fs.steps
            fs.failAfter(steps: budget)
            do {
                try pager.checkpoint()
                completed = true
            } catch {
                #expect(fs.failed, "budget \(budget): checkpoint failed without an injected fault: \(error)")
                // A failed checkpoint poisons the pager.
                #expect(throws: StorageError.self) { try pager.beginWrite() }
                do {
                    try pager.checkpoint()
                    Issue.record("checkpoint after a failure did not throw")
                } catch let error as StorageError {
                    if case .poisoned = error {} else { Issue.record("expected .poisoned, got \(error)") }
                }
                // Readers keep working.
                let reader = pager.beginRead()
                #expect(reader.state.counters[0] == 2)
            }
            let models: [UInt64: Model] = [1: v1, 2: v2]
            let label = "page size \(pageSize), crash after \(budget) of the checkpoint's steps"
            try verify(fs.image(of: pagesPath, .everythingWritten), expect: completed ? [2] : [1, 2], models: models, label + " (all written)")
            try verify(fs.image(of: pagesPath, .syncedOnly), expect: completed ? [2] : [1], models: models, label + " (synced only)")
            try verify(fs.image(of: pagesPath, .lastWriteTorn), expect: completed ? [2] : [1, 2], models: models, label + " (torn)")
            if !completed { #expect(fs.steps - stepsBefore == budget) }
            budget += 1
            #expect(budget < 200)
            if budget >= 200 { break }
        }
        #expect(budget > 4)
    }

    @Test func crashDuringSecondCheckpointKeepsFirst() throws {
        // The previous checkpoint's free-list pages and pages must survive a crashed
        // checkpoint that reuses free space: run several checkpoints, crash in the last.
        for budget in 0..<12 {
            let base = try makeFileSystem()
            let fs = FaultyFileSystem(base: base)
            let (pager, _, v2) = try prepare(fs, pageSize: 4096)
            try pager.checkpoint()
            // Version 3: rewrite everything, so the checkpoint reuses the freed space.
            let txn = try pager.beginWrite()
            var v3: Model = [:]
            for (page, _) in v2 {
                let fresh = try txn.allocatePage()
                try fill(txn, fresh, stamp: 20_000 + page)
                try txn.freePage(page)
                v3[fresh] = 20_000 + page
            }
            setState(txn, root: v3.keys.min(), version: 3)
            try txn.commit()
            fs.failAfter(steps: budget)
            let completed = (try? pager.checkpoint()) != nil
            let models: [UInt64: Model] = [2: v2, 3: v3]
            for kind in [FaultyFileSystem.CrashImage.everythingWritten, .syncedOnly, .lastWriteTorn] {
                let expected: Set<UInt64> = completed ? [3] : (kind == .syncedOnly ? [2] : [2, 3])
                try verify(fs.image(of: pagesPath, kind), expect: expected, models: models, "budget \(budget) \(kind)")
            }
        }
    }
}
