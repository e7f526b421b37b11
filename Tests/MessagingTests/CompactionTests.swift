@testable import Scrollback
@testable import ScrollbackMessaging
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
        // Every live message is in one run now (a conversation's history is one stretch of it),
        // which holds nothing else.
        let engine = store.database.engine
        let runs = try engine.runAccounts()
        #expect(runs.count == 1 && runs.first?.records == UInt64(model.messages.count))
        #expect(runs.first?.isHighlyCompressed == true)
        #expect(try engine.segmentAccounts().allSatisfy { $0.run == runs.first?.id || $0.liveRecords == 0 })
        #expect(try store.statistics.garbageRatio == 0)
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
        func files() throws -> Set<String> { Set(try fs.listDirectory("/db").filter { $0.hasPrefix("log-") || $0.hasPrefix("run-") }) }
        let filesBefore = try files()
        _ = try store.compact()
        // The old snapshot can still read every record it points at: nothing it needs is gone.
        var reader = store.database.engine.recordReader(for: snapshot)
        let messages = try ScrollbackBTree.BTree(snapshot, slot: 0)
        var cursor = messages.cursor()
        var valid = try cursor.seekFirst()
        var read = 0
        while valid {
            var position: UInt64 = 0
            var key = ScrollbackBTree.BTreeKey.min
            try cursor.withCurrent { k, v in
                key = k
                position = v.loadLE(UInt64.self, at: 0)
            }
            _ = try store.database.withMessage(at: position, key: MessageKey(key), &reader) { body, _ in body.kind }
            read += 1
            valid = try cursor.next()
        }
        #expect(read == model.messages.count)
        #expect(try files().isSuperset(of: filesBefore.filter { $0.hasPrefix("run-") }), "runs the snapshot reads stay")
        snapshot.rollback()
        _ = try store.compact()   // removes what was deferred
        let filesAfter = try files()
        #expect(filesAfter.intersection(filesBefore).isEmpty, "\(filesAfter) still holds files of before")
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

    /// An explicit compaction gives the page file's free space back: churn over a bulk-loaded
    /// store (appends into dense leaves, read markers, checkpoints far apart) leaves the file
    /// at the high-water mark of copy-on-write; compaction moves the pages above the live
    /// size down and cuts the file. The contents are unchanged, `verify` is clean, and a
    /// reopen reads the same; a second compaction finds nothing to return.
    /// Checkpoints far apart, so copy-on-write leaves many free pages behind.
    static var sparseCheckpoints: StoreOptions {
        var options = Fixture.options()
        options.checkpointDirtyBytes = 16 << 20
        options.checkpointLogBytes = 64 << 20
        return options
    }

    /// A bulk load of `messages` over `conversations` (c0…), then `appends` appends at random
    /// times (they split the load's full leaves) with a read marker of one of `users` (u0…)
    /// every third, then a checkpoint.
    static func churn(_ store: MessageStore, messages: Int, conversations: Int, appends: Int, users: Int, seed: UInt64) throws {
        try store.load((0..<messages).map { Fixture.message("m\($0)", in: "c\($0 % conversations)", at: Int64($0), body: "b\($0)") })
        try store.checkpoint()
        var rng = SeededRandom(seed: seed)
        for i in 0..<appends {
            let conversation = "c\(Int.random(in: 0..<conversations, using: &rng))"
            try store.append(Fixture.message("n\(i)", in: conversation, at: Int64.random(in: 0..<Int64(messages), using: &rng)))
            if i % 3 == 0 { try store.markRead(user: "u\(i % users)", conversation: conversation, through: "n\(i)") }
        }
        try store.checkpoint()
    }

    /// Every message of c0…c(conversations-1) and the unread counts of u0…u(users-1) there.
    static func snapshot(_ store: MessageStore, conversations: Int, users: Int) throws -> ([[Message]], [Int]) {
        let names = (0..<conversations).map { "c\($0)" }
        return (try names.map { try store.page(in: $0, offset: 0, limit: MessageStore.maxLimit, order: .oldestFirst) },
                try (0..<users).flatMap { try store.unreadCounts(user: "u\($0)", conversations: names) })
    }

    static func freeBytes(_ store: MessageStore) throws -> UInt64 {
        try store.spaceUsage().first { $0.structure == "free pages" }!.bytes
    }

    @Test func compactionReturnsThePageFilesFreeSpace() throws {
        let fs = MemoryFileSystem()
        let options = Self.sparseCheckpoints
        var store = try Fixture.open(fs, options: options)
        try Self.churn(store, messages: 20_000, conversations: 40, appends: 2_000, users: 7, seed: 11)
        let expected = try Self.snapshot(store, conversations: 40, users: 7)
        let pageFile = try store.statistics.pageFileBytes
        let free = try Self.freeBytes(store)
        #expect(free * 10 > pageFile, "the churn must leave more than a tenth free: \(free) of \(pageFile)")

        let report = try store.compact()
        #expect(report.pageFileBytesBefore == pageFile)
        let live = pageFile - free
        #expect(report.pageFileBytesAfter < pageFile)
        #expect(report.pageFileBytesAfter <= live + live / 10 + 80 * 4096,
                "page file \(pageFile) -> \(report.pageFileBytesAfter) bytes, \(live) live")
        print("page-file compaction: \(pageFile) bytes (\(free) free) -> \(report.pageFileBytesAfter)")
        #expect(try store.statistics.pageFileBytes == report.pageFileBytesAfter)
        #expect(try Self.snapshot(store, conversations: 40, users: 7) == expected)
        #expect(try store.verify() == [])
        // Nothing left to return: the second compaction keeps the size.
        let again = try store.compact()
        #expect(again.pageFileBytesAfter == again.pageFileBytesBefore)
        try store.close()
        #expect(fs.contents(of: "/db/pages").map { UInt64($0.count) } == report.pageFileBytesAfter)
        store = try Fixture.open(fs, options: options)
        #expect(try Self.snapshot(store, conversations: 40, users: 7) == expected)
        #expect(try store.verify() == [])
        try store.close()
    }

    /// A crash at every step of an explicit compaction that moves page-file pages (the
    /// unlogged relocation commit, the two checkpoints that write the copies and the free
    /// lists, the tail cut) — and of the rest of compaction — under every crash mode in turn:
    /// the store reopens with the same contents and read markers and verifies.
    @Test func pageFileCompactionSurvivesACrashAtEveryStep() throws {
        // The store, built once: a bulk load, churn with checkpoints far apart, a clean close.
        let options = Self.sparseCheckpoints
        let source = CrashSimulatingFileSystem(seed: 5)
        do {
            let store = try Fixture.open(source, options: options)
            try Self.churn(store, messages: 6_000, conversations: 12, appends: 1_500, users: 4, seed: 5)
            try store.close()
        }
        let files = source.allFilePaths().compactMap { path in source.contents(of: path).map { (path, $0) } }
        func fresh(seed: UInt64) -> CrashSimulatingFileSystem {
            let fs = CrashSimulatingFileSystem(seed: seed)
            for (path, bytes) in files { fs.setContents(of: path, to: bytes) }
            return fs
        }
        // A crash-free run: what compaction does, and how many steps it takes.
        let dry = fresh(seed: 1)
        let reference = try Fixture.open(dry, options: options)
        let expected = try Self.snapshot(reference, conversations: 12, users: 4)
        let free = try Self.freeBytes(reference)
        let pageFile = try reference.statistics.pageFileBytes
        #expect(free * 10 > pageFile, "more than a tenth must be free for the pages to move: \(free) of \(pageFile)")
        let stepsBefore = dry.stepCount
        let report = try reference.compact()
        let steps = dry.stepCount - stepsBefore
        #expect(report.pageFileBytesAfter < report.pageFileBytesBefore, "the store must have free space to return: \(report)")
        try reference.close()
        var cases = 0
        for k in 0..<steps {
            let mode = CrashMode.allCases[k % CrashMode.allCases.count]
            let context = "crash after step \(k) of \(steps) of compact(), mode \(mode)"
            let fs = fresh(seed: UInt64(100 + k))
            let store = try Fixture.open(fs, options: options)
            fs.scheduleCrash(afterSteps: k)
            do {
                _ = try store.compact()   // may finish: a failed file removal is retried later
            } catch {
                #expect(fs.isPoweredOff, "compact() failed without a crash: \(error) — \(context)")
            }
            fs.crash(mode: mode)
            let reopened = try Fixture.open(fs, options: options)
            let got = try Self.snapshot(reopened, conversations: 12, users: 4)
            #expect(got.0 == expected.0, "messages differ — \(context)")
            #expect(got.1 == expected.1, "unread counts differ — \(context)")
            #expect(try reopened.verify() == [], "\(context)")
            try reopened.close()
            cases += 1
        }
        print("page-file compaction crash sweep: \(steps) steps, \(cases) crash cases, page file \(report.pageFileBytesBefore) (\(free) free) -> \(report.pageFileBytesAfter)")
    }
}
