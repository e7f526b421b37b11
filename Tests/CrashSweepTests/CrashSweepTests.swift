import Foundation
import Scrollback
import ScrollbackCrashSweep
import ScrollbackIO
import Testing
import TestSupport

/// The bounded crash-point sweep of `make test` (the long one is `make crash`; see README.md).
/// Every failure prints the case and the `scrollback-crash replay …` command that replays it;
/// `SCROLLBACK_SEED=n` runs one workload seed.
@Suite struct CrashSweepTests {
    static let threads = max(1, min(2, ProcessInfo.processInfo.activeProcessorCount))

    static func check(_ report: SweepReport, _ context: String) {
        print("\(context)\n\(report.summary)")
        for failure in report.failures.prefix(5) { Issue.record("\(failure)") }
    }

    /// The default seeds' small workloads include every write path the sweep covers: a bulk
    /// load, a replica's apply with a mark, the log's allocation-ahead step (its background
    /// thread's work, run between commits) and a checkpoint with a commit between its plan and
    /// its I/O (the background checkpoint's interleaving) besides the single writes and batches.
    @Test func smallWorkloadsCoverEveryWritePath() {
        for seed: UInt64 in [1, 2] {
            let operations = Workload(seed: seed, size: .small).operations
            #expect(operations.contains { if case .replicate = $0 { true } else { false } }, "seed \(seed): no replica apply")
            #expect(operations.contains { if case .load = $0 { true } else { false } }, "seed \(seed): no bulk load")
            #expect(operations.contains { if case .allocateAhead = $0 { true } else { false } },
                    "seed \(seed): no step of the log's allocation ahead")
            #expect(operations.contains { if case .checkpointDuring = $0 { true } else { false } },
                    "seed \(seed): no checkpoint with a commit during its I/O")
        }
    }

    /// A small workload (store creation, appends, batches, replica applies with a mark, edits,
    /// deletes, read markers, checkpoints, compaction with sealing, close/reopen): power loss after EVERY I/O step
    /// 0…M in every crash mode, an EIO on every sync, ENOSPC and EIO on every write.
    @Test(arguments: TestSeeds.seeds(default: [1, 2]))
    func everyStepOfASmallWorkload(seed: UInt64) throws {
        let sweep = try CrashSweep(workload: Workload(seed: seed, size: .small))
        let cases = sweep.allCases()
        var report = SweepReport()
        SweepRunner.run(sweep, cases: cases, threads: Self.threads, into: &report)
        #expect(report.cases == cases.count)
        #expect(report.crashPoints.count == sweep.steps + 1)
        #expect(report.faultsInjected >= sweep.syncs + sweep.writes, "every fault must actually fire (seed \(seed))")
        #expect(report.recoveryCrashes > 0)
        Self.check(report, "small workload seed \(seed) (replay: SCROLLBACK_SEED=\(seed)): \(sweep.steps) steps, \(sweep.syncs) syncs, \(sweep.writes) writes")
    }

    /// A larger workload whose log segments fill and seal on their own: a random sample of its
    /// steps, each in a random crash mode, plus a sample of faults.
    @Test(arguments: TestSeeds.seeds(default: [1]))
    func sampledStepsOfALargeWorkload(seed: UInt64) throws {
        let sweep = try CrashSweep(workload: Workload(seed: seed, size: .large))
        var rng = SeededRandom(seed: seed)
        var cases = sweep.allCases(writeStride: 1)
        cases.shuffle(using: &rng)
        cases = Array(cases.prefix(1500))
        var report = SweepReport()
        SweepRunner.run(sweep, cases: cases, threads: Self.threads, into: &report)
        #expect(report.cases == cases.count)
        Self.check(report, "large workload seed \(seed) (replay: SCROLLBACK_SEED=\(seed)): \(sweep.steps) steps, sampled \(cases.count) cases")
    }

    /// The sweep can fail: on a disk whose syncs do nothing, acknowledged writes vanish at a
    /// power loss, and the sweep must say so.
    @Test func detectsALyingDisk() throws {
        let sweep = try CrashSweep(workload: Workload(seed: 1, size: .small), lyingSyncs: true)
        let cases = stride(from: 20, through: sweep.steps, by: 10).map {
            CrashCase(seed: 1, size: .small, variant: .powerLoss(.dropAllUnsynced), point: $0)
        }
        var report = SweepReport()
        SweepRunner.run(sweep, cases: cases, threads: Self.threads, maxFailures: 1000, into: &report)
        #expect(report.failures.count > cases.count / 2, "the sweep did not notice lost acknowledged writes")
        print("lying disk: \(report.failures.count) of \(cases.count) cases failed, as they must")
    }

    /// The case runner on its own: replaying a case gives the same result.
    @Test func replayIsDeterministic() throws {
        let sweep = try CrashSweep(workload: Workload(seed: 7, size: .small))
        for point in [0, 1, 2, 5, sweep.steps / 2, sweep.steps] {
            for variant in Variant.all {
                let crashCase = CrashCase(seed: 7, size: .small, variant: variant, point: point)
                var first: [String] = []
                var second: [String] = []
                let a = sweep.run(crashCase) { first.append($0) }
                _ = sweep.run(crashCase) { second.append($0) }
                #expect(a.failure == nil, "\(a.failure ?? "")")
                #expect(first == second, "\(crashCase) did not replay the same way")
            }
        }
    }

    /// Regression: a crash during store creation that leaves only the temporary page file
    /// (`pages.tmp`, created and named durably but never renamed) must reopen as a new store,
    /// not as `.notAStore`.
    @Test func crashBeforeThePageFileRenameReopens() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        // mkdir; create, write and cut the lock file; create the reader table and write its
        // slots and header; create pages.tmp, write it: power lost before the sync.
        fs.scheduleCrash(afterSteps: 9)
        #expect(throws: (any Error).self) { try MessageStore(path: "/store", options: Workload.options, fileSystem: fs) }
        fs.crash(mode: .keepAll, namespace: .keepAll)
        #expect(fs.allFilePaths() == ["/store/lock", "/store/pages.tmp", "/store/readers"])
        let store = try MessageStore(path: "/store", options: Workload.options, fileSystem: fs)
        try store.append(Message(id: "m1", conversation: "c", sender: "s", createdAt: 1, body: "hi"))
        #expect(try store.verify() == [])
        try store.close()
        let reopened = try MessageStore(path: "/store", options: Workload.options, fileSystem: fs)
        #expect(try reopened.message(id: "m1")?.body == "hi")
        try reopened.close()
    }
}

/// Regressions found by the long sweep.
@Suite struct CrashSweepRegressionTests {
    /// A failed directory sync while creating the store, a restart without power loss, then
    /// acknowledged writes: the log segment's name was never made durable, so a power loss
    /// took the segment and every acknowledged write in it ("log ends at 0:0, before the
    /// replay position"). Open now syncs the store directory.
    @Test func acknowledgedWritesSurviveAFailedDirectorySyncAtCreation() throws {
        let fs = CrashSimulatingFileSystem(seed: 5)
        // Sync #5 of creation is the directory sync after the first log segment is created.
        let faulting = FaultingFileSystem(fs, fault: (.syncEIO, 5))
        do {
            _ = try MessageStore(path: "/store", options: Workload.options, fileSystem: faulting)
            Issue.record("creation should fail")
        } catch {
            #expect("\(error)".contains("fsync(dir) on /store"), "\(error)")
        }
        let store = try MessageStore(path: "/store", options: Workload.options, fileSystem: fs)
        try store.append(Message(id: "m1", conversation: "c", sender: "s", createdAt: 1, body: "acknowledged"))
        fs.crash(mode: .dropAllUnsynced)
        let reopened = try MessageStore(path: "/store", options: Workload.options, fileSystem: fs)
        #expect(try reopened.message(id: "m1")?.body == "acknowledged")
        #expect(try reopened.verify() == [])
        try reopened.close()
    }

    /// The sweep case that found it.
    @Test func sweepCaseSeed3LargeFsyncEIOPoint5() throws {
        let sweep = try CrashSweep(workload: Workload(seed: 3, size: .large))
        let result = sweep.run(CrashCase(seed: 3, size: .large, variant: .fault(.syncEIO), point: 5))
        #expect(result.failure == nil, "\(result.failure ?? "")")
    }
}

/// The real-process kill test: `scrollback-crash child` writes through the real file system
/// with full durability; it is SIGKILLed at random moments 20 times, and after each kill the
/// store must hold every acknowledged write, exactly, and pass `verify()`.
@Suite struct KillTests {
    static let executable: String = {
        if let path = ProcessInfo.processInfo.environment["SCROLLBACK_CRASH"] { return path }
        var candidates: [String] = []
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var directory = me.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("scrollback-crash").path)
            directory = directory.deletingLastPathComponent()
        }
        for bundle in Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("scrollback-crash").path)
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    @Test(arguments: TestSeeds.seeds(default: [1]))
    func sigkillLosesNoAcknowledgedWrite(seed: UInt64) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.executable), "scrollback-crash not found at \(Self.executable)")
        let directory = NSTemporaryDirectory() + "scrollback-kill-test-\(getpid())-\(seed)"
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = KillTest.run(executable: Self.executable, path: directory, kills: 20, seed: seed, maxDelayMicroseconds: 120_000) { _ in }
        print("\(report.summary) (seed \(seed); replay: SCROLLBACK_SEED=\(seed) or scrollback-crash kill --seed \(seed) --kills 20)")
        for failure in report.failures { Issue.record("\(failure)") }
        #expect(report.kills == 20)
        #expect(report.acknowledgedCalls > 20, "the child barely wrote anything")
    }
}
