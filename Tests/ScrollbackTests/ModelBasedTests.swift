@testable import ScrollbackReferenceModel
import Scrollback
import ScrollbackIO
import Testing
import TestSupport

/// Randomized model-based tests: thousands of random operations per seed (appends with
/// colliding timestamps, duplicate and reused ids, edits, deletes, read markers, batches with
/// one invalid member, checkpoints, syncs, compactions, close/reopen, power losses in every
/// crash mode — also during recovery — and failed syncs) on the real store over the crash
/// simulator, compared after every step with `ReferenceStore` through every query primitive.
/// A failure names the seed and step; `SCROLLBACK_SEED=n` replays one seed and
/// `SCROLLBACK_MODEL_STEPS=n` changes the number of steps.
@Suite struct ModelBasedTests {
    static var steps: Int { getenvString("SCROLLBACK_MODEL_STEPS").flatMap(Int.init) ?? 5000 }

    static func configuration(seed: UInt64, steps: Int = Self.steps) -> ModelHarness.Configuration {
        var configuration = ModelHarness.Configuration(seed: seed, steps: steps)
        configuration.durability = seed % 3 == 0 ? .normal : .full
        configuration.autoCompactGarbageRatio = seed % 2 == 1 ? 0.3 : nil
        configuration.followsChanges = configuration.durability == .full
        // Half of the seeds turn search on at the start, half build it over a third of the run.
        configuration.searchIndexStep = seed % 2 == 0 ? 0 : steps / 3
        return configuration
    }

    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6]))
    func randomOperationsMatchTheReference(seed: UInt64) {
        let configuration = Self.configuration(seed: seed)
        let fs = CrashSimulatingFileSystem(seed: seed)
        let options = ModelHarness.options(configuration)
        let harness = ModelHarness(configuration: configuration, fileSystem: fs) {
            try MessageStore(path: "/db", options: options, fileSystem: fs)
        }
        harness.run()
        print("model test \(configuration): \(harness.counters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        if !harness.failed {
            #expect(harness.counters["acknowledged writes", default: 0] > configuration.steps / 3, "the workload barely wrote")
            #expect(harness.counters["keyset walks", default: 0] > configuration.steps, "the queries barely ran")
            #expect(harness.counters["crashes", default: 0] > 5, "too few crashes")
            #expect(harness.counters["records moved by compact()", default: 0] > 0, "compaction never moved a record")
            // (Odd seeds build the index at a third of the run; now and then it is off a while.)
            #expect(harness.counters["search walks", default: 0] > configuration.steps / 3, "searches barely ran")
            #expect(harness.counters["search index turned off", default: 0] > 0, "the index was never turned off")
            #expect(harness.counters["search pages", default: 0] > configuration.steps, "search walks barely paged")
            if configuration.followsChanges {
                #expect(harness.counters["replica comparisons", default: 0] >= configuration.steps / 250, "the replica was barely compared")
                #expect(harness.counters["changes applied to the replica", default: 0] > configuration.steps / 4, "the replica barely followed")
            }
        }
    }

    /// The harness against an honest copy of the oracle behind the store surface: must pass
    /// (so a failure against the real store is about the store).
    @Test(arguments: [11, 12] as [UInt64])
    func harnessAgreesWithAnHonestReference(seed: UInt64) {
        var configuration = Self.configuration(seed: seed, steps: 1500)
        configuration.crashes = false
        let disk = ReferenceDisk(maxBodyBytes: configuration.maxBodyBytes, bug: nil)
        let harness = ModelHarness(configuration: configuration, fileSystem: nil) { try disk.open() }
        harness.run()
        #expect(!harness.failed)
        #expect(harness.counters["acknowledged writes", default: 0] > 300)
        #expect(harness.counters["rejected writes", default: 0] > 20)
        #expect(harness.counters["saved cursor checks", default: 0] > 100)
    }

    /// The crash, recovery and failed-sync paths of the harness against the reference store
    /// on the crash simulator (its writes do I/O there, so power losses stop them).
    @Test(arguments: [13, 14] as [UInt64])
    func harnessCrashPathsAgreeWithAnHonestReference(seed: UInt64) {
        let configuration = Self.configuration(seed: seed, steps: 1500)
        let fs = CrashSimulatingFileSystem(seed: seed)
        let disk = ReferenceDisk(maxBodyBytes: configuration.maxBodyBytes, bug: nil, fileSystem: fs)
        let harness = ModelHarness(configuration: configuration, fileSystem: fs) { try disk.open() }
        harness.run()
        #expect(!harness.failed)
        #expect(harness.counters["crashes", default: 0] > 5)
        #expect(harness.counters["writes in flight at a crash", default: 0] > 2)
        #expect(harness.counters["failed syncs", default: 0] > 2)
        print("reference crash paths \(configuration): \(harness.counters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    }

    /// The harness must catch each deliberate bug (the test can fail).
    @Test(arguments: InjectedBug.allCases)
    func harnessCatchesAnInjectedBug(bug: InjectedBug) {
        var configuration = Self.configuration(seed: 21, steps: 1500)
        configuration.crashes = false
        let disk = ReferenceDisk(maxBodyBytes: configuration.maxBodyBytes, bug: bug)
        let harness = ModelHarness(configuration: configuration, fileSystem: nil) { try disk.open() }
        withKnownIssue("injected bug \(bug)") {
            harness.run()
        }
        #expect(harness.failed, "the model test did not notice \(bug)")
    }
}
