@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// I/O errors (issue 6): EIO on writes and reads, ENOSPC, failing fsync of files and of the
/// directory, injected at every step of a workload that covers appends, batches, edits,
/// deletes, read markers, checkpoints, sealing, compaction and backup.
///
/// For every (fault, step) case:
/// - every failure reaches the caller as `ScrollbackError.io` or `.refusesWrites`;
/// - after a failed write or sync the store refuses writes (`.refusesWrites`) until reopened,
///   while reads keep returning exactly the acknowledged data;
/// - after reopening on the same simulated file system (fault cleared; every other case
///   after a simulated power loss, cycling through every `CrashMode`), every acknowledged write
///   is present (the state is the acknowledged one, or that plus the failed batch), `verify()`
///   is empty, and the store accepts writes again.
@Suite(.serialized) struct IOFaultTests {
    static let messageCount = 70
    static let bodyBytes = 1500

    /// Observations of a healthy store after a given list of write steps (the oracle).
    final class Oracle {
        let steps: [FaultFixture.Step]
        let ids: [String]
        var cache: [[Int]: Observation] = [:]
        init(steps: [FaultFixture.Step], ids: [String]) {
            self.steps = steps
            self.ids = ids
        }

        func observation(after writes: [Int]) throws -> Observation {
            if let cached = cache[writes] { return cached }
            let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: MemoryFileSystem())
            for i in writes { try steps[i].run(store) }
            let observation = Observation.observe(store, ids: ids)
            try store.close()
            cache[writes] = observation
            return observation
        }
    }

    static func faults(at point: Int, rng: inout SeededRandom) -> [(Fault, String)] {
        [
            (.writeFails(pathSuffix: ".seg"), "EIO on the next log write"),
            (.writeFails(pathSuffix: "/pages"), "EIO on the next page-file write"),
            (.writeFails(pathSuffix: ".tmp"), "EIO on the next write of a temporary file (seal)"),
            (.writeFails(pathSuffix: ""), "EIO on the next write of any file"),
            (.syncFails(pathSuffix: ".seg"), "fdatasync of the log fails"),
            (.syncFails(pathSuffix: "/pages"), "fdatasync of the page file fails"),
            (.syncFails(pathSuffix: ""), "fdatasync of any file fails"),
            (.syncDirectoryFails(pathSuffix: "/db"), "fsync of the store directory fails"),
            (.diskFull(byteBudget: rng.next() % 20_000), "ENOSPC after a byte budget"),
            (.diskFull(byteBudget: 0), "ENOSPC now"),
        ]
    }

    struct Tally {
        var cases = 0, faultFired = 0, refusedAfterFailure = 0, reopenedAfterCrash = 0, failedBatchSurvived = 0
        var byStep: [String: Int] = [:]
    }

    @Test(arguments: TestSeeds.seeds(default: [0xFA17, 0xFA18]))
    func writeAndSyncFaultsAtEveryStep(seed: UInt64) throws {
        let steps = FaultFixture.workload(seed: seed, messages: Self.messageCount, bodyBytes: Self.bodyBytes, backupPath: "/backup")
        let ids = FaultFixture.allIDs(messages: Self.messageCount)
        let oracle = Oracle(steps: steps, ids: ids)
        var rng = SeededRandom(seed: seed)
        var tally = Tally()
        var failures = 0
        func fail(_ text: String) {
            failures += 1
            if failures <= 25 { Issue.record("\(text) (replay with SCROLLBACK_SEED=\(seed))") }
        }
        // A healthy run first: every step works and the final state matches the oracle.
        do {
            let fs = CrashSimulatingFileSystem(seed: seed)
            let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
            for step in steps { try step.run(store) }
            #expect(fs.allFilePaths().contains { $0.hasSuffix(".run") }, "the workload must seal segments into runs")
            let writes = steps.indices.filter { steps[$0].isWrite }
            #expect(Observation.observe(store, ids: ids) == (try oracle.observation(after: writes)))
            try store.close()
        }
        let stride = max(1, steps.count / scaled(60))
        for point in Swift.stride(from: 0, to: steps.count, by: stride) {
            for (fault, faultName) in Self.faults(at: point, rng: &rng) {
                tally.cases += 1
                let label = "\(faultName) armed before step \(point) (\(steps[point]))"
                let fs = CrashSimulatingFileSystem(seed: seed &+ UInt64(point))
                let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
                var acknowledged: [Int] = []
                var failed: (step: Int, error: ScrollbackError)? = nil
                for (i, step) in steps.enumerated() {
                    if i == point { fs.injectFault(fault) }
                    do {
                        try step.run(store)
                        if step.isWrite { acknowledged.append(i) }
                        if failed != nil, step.isWrite, !steps[failed!.step].description.hasPrefix("backup") {
                            fail("\(label): step \(i) (\(step)) was accepted after \(failed!.error)")
                        }
                    } catch let error as ScrollbackError {
                        switch error {
                        case .io, .refusesWrites: break
                        default: fail("\(label): step \(i) (\(step)) failed with \(error), not .io or .refusesWrites")
                        }
                        if let first = failed {
                            if step.isWrite, !steps[first.step].description.hasPrefix("backup") {
                                guard case .refusesWrites = error else {
                                    fail("\(label): after \(first.error), step \(i) (\(step)) failed with \(error), not .refusesWrites")
                                    continue
                                }
                                tally.refusedAfterFailure += 1
                            }
                        } else {
                            failed = (i, error)
                            tally.faultFired += 1
                            tally.byStep[String(step.description.prefix { $0 != " " }), default: 0] += 1
                            // Reads of committed data keep working, right after the failure.
                            let observation = Observation.observe(store, ids: ids)
                            let expected = try oracle.observation(after: acknowledged)
                            if observation != expected {
                                let index = observation.firstWrongResult(comparedTo: expected) ?? observation.errors.first?.index ?? 0
                                fail("\(label): after the failure at step \(i), \(observation.labels[index]) reads \(observation.results[index].prefix(300))")
                            }
                        }
                    } catch {
                        fail("\(label): step \(i) (\(step)) threw an untyped error \(error)")
                    }
                }
                // Reopen: half the cases after a power loss that drops every unsynced write.
                try? store.close()
                let crashed = point % 2 == 0
                let mode = CrashMode.allCases[(point / 2) % CrashMode.allCases.count]
                if crashed {
                    fs.crash(mode: mode)
                    tally.reopenedAfterCrash += 1
                } else {
                    fs.clearFaults()
                }
                do {
                    let reopened = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
                    let observation = Observation.observe(reopened, ids: ids)
                    var candidates = [try oracle.observation(after: acknowledged)]
                    if let failed, steps[failed.step].isWrite {
                        candidates.append(try oracle.observation(after: acknowledged + [failed.step]))
                    }
                    if observation == candidates[0] {
                    } else if candidates.count > 1 && observation == candidates[1] {
                        tally.failedBatchSurvived += 1
                    } else {
                        let index = observation.firstWrongResult(comparedTo: candidates[0]) ?? observation.errors.first?.index ?? 0
                        fail("\(label), reopened\(crashed ? " after a crash (\(mode))" : ""): \(observation.labels[index]) reads \(observation.results[index].prefix(300)), expected \(candidates[0].results[index].prefix(300))")
                    }
                    let problems = try reopened.verify()
                    if !problems.isEmpty { fail("\(label), reopened: verify() reports \(problems.prefix(3))") }
                    do {
                        try reopened.append(Message(id: "after-reopen", conversation: "general", sender: "ann", createdAt: 1, body: "x"))
                    } catch {
                        fail("\(label), reopened: a write fails: \(error)")
                    }
                    try reopened.close()
                } catch {
                    fail("\(label): reopening fails: \(error)")
                }
            }
        }
        print("I/O faults seed \(seed): \(steps.count) workload steps, \(tally.cases) cases; a fault fired in \(tally.faultFired) "
            + "(by step kind: \(tally.byStep.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), "
            + "\(tally.refusedAfterFailure) later writes refused, \(tally.reopenedAfterCrash) reopened after a crash, "
            + "\(tally.failedBatchSurvived) failed batches found durable after reopening")
        #expect(tally.faultFired > tally.cases / 2, "most faults must fire")
        if failures > 0 { print("I/O faults: \(failures) failures; replay with SCROLLBACK_SEED=\(seed)") }
    }

    /// EIO on the nth read, during open and every query, on a cold store: each result is
    /// exactly right or `.io`; afterwards (fault gone) every query is exactly right again (a
    /// failed read poisons no cache), writes work, and the state survives a reopen.
    static let extra = Message(id: "extra", conversation: "dev", sender: "bob", createdAt: 5, body: "extra")

    @Test(arguments: TestSeeds.seeds(default: [0x0EAD]))
    func readFaultsNeverReturnWrongData(seed: UInt64) throws {
        let steps = FaultFixture.workload(seed: seed, messages: Self.messageCount, bodyBytes: Self.bodyBytes)
        let ids = FaultFixture.allIDs(messages: Self.messageCount)
        let fs = CrashSimulatingFileSystem(seed: seed)
        do {
            let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
            for step in steps { try step.run(store) }
            try store.close()
        }
        let expected = try Oracle(steps: steps, ids: ids).observation(after: steps.indices.filter { steps[$0].isWrite })
        let expectedWithoutExtra = expected
        let expectedWithExtra: Observation
        do {
            let store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: MemoryFileSystem())
            for step in steps where step.isWrite { try step.run(store) }
            try store.append(Self.extra)
            expectedWithExtra = Observation.observe(store, ids: ids)
        }
        var failures = 0, cases = 0, openFailed = 0, queryFailed = 0, writeFailed = 0, retryRefused = 0
        func fail(_ text: String) {
            failures += 1
            if failures <= 25 { Issue.record("\(text) (replay with SCROLLBACK_SEED=\(seed))") }
        }
        for round in 0..<scaled(320) {
            cases += 1
            // Even rounds: the fault hits open or a query. Odd rounds: a write on a cold store.
            let writing = round % 2 == 1
            let nth = writing ? 1 + (round / 2) % 12 : 1 + (round / 2) % 40
            let label = "EIO on read \(nth)\(writing ? " of a write on a cold store" : "")"
            if !writing { fs.injectFault(.readFails(nth: nth)) }
            let store: MessageStore
            do {
                store = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
            } catch ScrollbackError.io {
                openFailed += 1
                fs.clearFaults()
                continue
            } catch {
                fail("\(label): open failed with \(error), not .io")
                fs.clearFaults()
                continue
            }
            let extra = Self.extra
            var wrote = false
            if writing {
                // A read failure while writing: the write fails with .io or succeeds.
                fs.injectFault(.readFails(nth: nth))
                do {
                    try store.append(extra)
                    wrote = true
                } catch ScrollbackError.io {
                    writeFailed += 1
                } catch {
                    fail("\(label): a write under a read fault failed with \(error)")
                }
                fs.clearFaults()
                if !wrote {
                    // A read failure before anything reached the log fails that write only.
                    do { try store.append(extra); wrote = true } catch {
                        if case ScrollbackError.refusesWrites = error { retryRefused += 1 } else { fail("\(label): the retried write failed with \(error)") }
                    }
                }
            }
            let expected = wrote ? expectedWithExtra : expected
            let observation = Observation.observe(store, ids: ids)
            for (index, error) in observation.errors {
                guard case ScrollbackError.io = error else {
                    fail("\(label): \(observation.labels[index]) failed with \(error), not .io")
                    continue
                }
            }
            if !observation.errors.isEmpty { queryFailed += 1 }
            if let wrong = observation.firstWrongResult(comparedTo: expected) {
                fail("\(label): \(observation.labels[wrong]) returned wrong data: \(observation.results[wrong].prefix(300))")
            }
            fs.clearFaults()
            let again = Observation.observe(store, ids: ids)
            if again != expected {
                let index = again.firstWrongResult(comparedTo: expected) ?? again.errors.first?.index ?? 0
                fail("\(label): after the fault, \(again.labels[index]) reads \(again.results[index].prefix(300))")
            }
            let problems = try store.verify()
            if !problems.isEmpty { fail("\(label): verify() after the fault: \(problems.prefix(3))") }
            try? store.close()
            // Reopen, check, and put the store back for the next round.
            let reopened = try MessageStore(path: FaultFixture.directory, options: FaultFixture.options(), fileSystem: fs)
            if try reopened.verify() != [] { fail("\(label): verify() after reopening is not empty") }
            if wrote, try reopened.message(id: extra.id) == nil { fail("\(label): an acknowledged write is lost") }
            if try reopened.message(id: extra.id) != nil { try reopened.delete(id: extra.id) }
            if Observation.observe(reopened, ids: ids) != expectedWithoutExtra { fail("\(label): after reopening the data differs") }
            try reopened.close()
        }
        print("read faults seed \(seed): \(cases) cases; open failed with .io in \(openFailed), queries failed with .io in \(queryFailed), writes failed with .io in \(writeFailed) (the retry was refused in \(retryRefused): the read failed after the record reached the log)")
        if failures > 0 { print("read faults: \(failures) failures; replay with SCROLLBACK_SEED=\(seed)") }
    }
}
