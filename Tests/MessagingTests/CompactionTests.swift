@testable import Scrollback
import ScrollbackFormat
import ScrollbackBTree
import ScrollbackIO
import Testing
import TestSupport

@Suite struct CompactionTests {
    /// Builds a store with several sealed segments full of garbage (edits and deletes).
    static func build(_ fs: any FileSystem, seed: UInt64) throws -> (MessageStore, CrashModel) {
        let store = try Fixture.open(fs)
        var model = CrashModel()
        var rng = SeededRandom(seed: seed)
        var batch = WriteBatch()
        for i in 0..<1500 {
            let m = Message(id: "m\(i)", conversation: "c\(i % 4)", sender: "s", createdAt: Int64.random(in: 0..<1000, using: &rng),
                            body: String(repeating: "x", count: 150))
            batch.append(m)
            if batch.operations.count == 50 {
                try store.write(batch)
                model.apply(batch)
                batch = WriteBatch()
            }
        }
        let ids = model.messages.keys.sorted()
        for (n, id) in ids.enumerated() where n % 3 != 0 {
            var b = WriteBatch()
            if n % 3 == 1 { b.delete(id: id) } else { b.edit(id: id, body: "e\(n)") }
            try store.write(b)
            model.apply(b)
        }
        return (store, model)
    }

    @Test func compactionReclaimsSpaceAndKeepsEverything() throws {
        let fs = MemoryFileSystem()
        let (store, model) = try Self.build(fs, seed: 1)
        let before = try store.statistics
        #expect(before.garbageRatio > 0.4)
        let filesBefore = try fs.listDirectory("/db").filter { $0.hasPrefix("log-") }.count
        let report = try store.compact()
        let after = try store.statistics
        #expect(report.recordsMoved > 0)
        #expect(report.segmentsRewritten > 0)
        #expect(report.logBytesAfter < report.logBytesBefore)
        #expect(after.lastCompactionBytesBefore == report.logBytesBefore)
        #expect(after.lastCompactionBytesAfter == report.logBytesAfter)
        #expect(after.compactions == before.compactions + 1)
        #expect(after.garbageRatio < before.garbageRatio)
        #expect(try fs.listDirectory("/db").filter { $0.hasPrefix("log-") }.count < filesBefore)
        #expect(try CrashWorkload.matches(store, model))
        #expect(try store.verify() == [])
        // The rewritten records are in key order: one conversation's history is contiguous.
        let positions = try store.database.engine.read { snapshot in
            let tree = try ScrollbackBTree.BTree(snapshot, slot: 0)
            var cursor = tree.cursor()
            var valid = try cursor.seekFirst()
            var result: [UInt64] = []
            while valid {
                try cursor.withCurrent { _, v in result.append(v.loadLE(UInt64.self, at: 0)) }
                valid = try cursor.next()
            }
            return result
        }
        #expect(positions == positions.sorted())
        // A second compaction right away finds (almost) nothing to do and changes nothing.
        try store.compact()
        #expect(try CrashWorkload.matches(store, model))
        try store.close()
        let reopened = try Fixture.open(fs)
        #expect(try CrashWorkload.matches(reopened, model))
        #expect(try reopened.verify() == [])
    }

    @Test func removalWaitsForOldSnapshots() throws {
        let fs = MemoryFileSystem()
        let (store, model) = try Self.build(fs, seed: 2)
        let snapshot = try store.database.engine.snapshot()   // an old reader
        let filesBefore = try fs.listDirectory("/db").filter { $0.hasPrefix("log-") }
        _ = try store.compact()
        // The old snapshot can still read every record it points at.
        let messages = try ScrollbackBTree.BTree(snapshot, slot: 0)
        var cursor = messages.cursor()
        var valid = try cursor.seekFirst()
        var read = 0
        while valid {
            var position: UInt64 = 0
            try cursor.withCurrent { _, v in position = v.loadLE(UInt64.self, at: 0) }
            _ = try store.database.engine.withRecord(at: position) { type, _ in type }
            read += 1
            valid = try cursor.next()
        }
        #expect(read == model.messages.count)
        #expect(try fs.listDirectory("/db").filter { $0.hasPrefix("log-") }.count >= filesBefore.count - 1)
        snapshot.rollback()
        _ = try store.compact()   // removes what was deferred
        #expect(try fs.listDirectory("/db").filter { $0.hasPrefix("log-") }.count < filesBefore.count)
        #expect(try CrashWorkload.matches(store, model))
        #expect(try store.verify() == [])
    }

    /// Power loss at a random I/O step of a compaction, in every crash mode: nothing is lost,
    /// and the reopened store verifies.
    @Test(arguments: TestSeeds.seeds(default: [21, 22, 23]))
    func crashDuringCompactionLosesNothing(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        // Measure how many I/O steps a compaction of this store takes.
        let probe = CrashSimulatingFileSystem(seed: seed)
        let (probeStore, _) = try Self.build(probe, seed: seed)
        let start = probe.stepCount
        try probeStore.compact()
        let steps = probe.stepCount - start
        #expect(steps > 10)
        for iteration in 0..<12 {
            let fs = CrashSimulatingFileSystem(seed: seed &+ UInt64(iteration))
            let (store, model) = try Self.build(fs, seed: seed)
            let crashAt = iteration == 0 ? steps - 1 : Int.random(in: 0..<steps, using: &rng)
            let mode = CrashMode.allCases.randomElement(using: &rng)!
            let context = "seed \(seed) iteration \(iteration) step \(crashAt)/\(steps) mode \(mode)"
            fs.scheduleCrash(afterSteps: crashAt)
            do {
                try store.compact()
            } catch {
                #expect(fs.isPoweredOff, "\(context): \(error)")
            }
            fs.crash(mode: mode)
            let reopened = try Fixture.open(fs)
            #expect(try CrashWorkload.matches(reopened, model), "\(context)")
            #expect(try reopened.verify() == [], "\(context)")
            // And it can compact again to the end.
            try reopened.compact()
            #expect(try CrashWorkload.matches(reopened, model), "\(context)")
            #expect(try reopened.verify() == [], "\(context)")
        }
    }

    @Test func automaticPolicyCompactsAboveTheRatio() throws {
        var options = Fixture.options()
        options.autoCompactGarbageRatio = 0.3
        let fs = MemoryFileSystem()
        let store = try Fixture.open(fs, options: options)
        var model = CrashModel()
        for round in 0..<6 {
            for i in 0..<400 {
                var b = WriteBatch()
                b.append(Message(id: "r\(round)-\(i)", conversation: "c\(i % 3)", sender: "s", createdAt: Int64(i), body: String(repeating: "y", count: 120)))
                try store.write(b)
                model.apply(b)
            }
            for i in 0..<400 where i % 4 != 0 {
                var b = WriteBatch()
                b.delete(id: "r\(round)-\(i)")
                try store.write(b)
                model.apply(b)
            }
        }
        #expect(try store.statistics.compactions > 0)
        #expect(try CrashWorkload.matches(store, model))
        #expect(try store.verify() == [])
    }
}
