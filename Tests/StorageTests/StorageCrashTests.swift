import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing
import TestSupport

/// Commits interleaved with simulated power losses at random I/O steps, in every crash mode,
/// sometimes during recovery itself. After each reopen the trees must equal the model after
/// the last acknowledged batch or after the one batch that was in flight (never anything
/// else), and every invariant must hold (`verify()`: tree order and counts, no leaked page,
/// every log record intact).
@Suite struct StorageCrashTests {
    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6, 7, 8]))
    func crashesAtRandomStepsLoseNoAcknowledgedBatch(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let fs = CrashSimulatingFileSystem(seed: seed)
        let options = StorageEngineTests.smallOptions()
        var acknowledged: [UInt64: UInt64] = [:]
        var inFlight: [KeyValueSchema.Operation]?
        var crashes = 0
        var recoveryCrashes = 0
        var committed = 0

        for round in 0..<40 {
            let context = "seed \(seed) round \(round) (replay: SCROLLBACK_SEED=\(seed))"
            // Reopen, sometimes losing power again during recovery.
            var engine: StorageEngine?
            var attempts = 0
            while engine == nil {
                attempts += 1
                if attempts < 3 && Int.random(in: 0..<4, using: &rng) == 0 {
                    fs.scheduleCrash(afterSteps: Int.random(in: 0..<12, using: &rng))
                }
                do {
                    let opened = try StorageEngine.open(fileSystem: fs, directory: "/db", options: options, schema: KeyValueSchema.schema)
                    if fs.isPoweredOff {
                        // The power failed right after open's last I/O step: crash there.
                        fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
                        recoveryCrashes += 1
                        continue
                    }
                    fs.scheduleCrash(afterSteps: Int.max)
                    engine = opened
                } catch {
                    #expect(fs.isPoweredOff, "open failed without a crash: \(error) — \(context)")
                    if !fs.isPoweredOff { return }
                    fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
                    recoveryCrashes += 1
                }
            }
            guard let engine else { return }

            let observed = try KeyValueSchema.contents(of: engine)
            var withInFlight = acknowledged
            if let inFlight { KeyValueSchema.apply(inFlight, to: &withInFlight) }
            if observed == withInFlight {
                acknowledged = withInFlight
            } else if observed != acknowledged {
                Issue.record("state after recovery matches neither the acknowledged model nor the in-flight batch — \(context)")
                return
            }
            inFlight = nil
            let problems = engine.verify()
            #expect(problems == [], "\(context)")
            if !problems.isEmpty { return }

            // Work until the power fails.
            fs.scheduleCrash(afterSteps: Int.random(in: 1..<300, using: &rng))
            while true {
                let operations = randomBatch(&rng)
                do {
                    if Int.random(in: 0..<25, using: &rng) == 0 {
                        try engine.checkpoint()
                        continue
                    }
                    try KeyValueSchema.commit(operations, to: engine)
                    KeyValueSchema.apply(operations, to: &acknowledged)
                    committed += 1
                } catch {
                    if !fs.isPoweredOff {
                        Issue.record("commit failed without a crash: \(error) — \(context)")
                        return
                    }
                    // A failed checkpoint leaves nothing in flight; a failed commit may or may
                    // not have reached the disk.
                    if case StorageError.poisoned = error {} else { inFlight = operations }
                    break
                }
            }
            fs.crash(mode: CrashMode.allCases.randomElement(using: &rng)!)
            crashes += 1
        }
        #expect(committed > 100, "the workload barely ran (seed \(seed))")
        #expect(crashes == 40)
        print("storage crash test seed \(seed): \(committed) acknowledged batches, \(crashes) crashes, \(recoveryCrashes) during recovery")
    }

    private func randomBatch(_ rng: inout SeededRandom) -> [KeyValueSchema.Operation] {
        (0..<Int.random(in: 1...6, using: &rng)).map { _ in
            let key = UInt64.random(in: 0..<400, using: &rng)
            if Int.random(in: 0..<4, using: &rng) == 0 { return .delete(key) }
            return .put(key, UInt64.random(in: 0..<1_000_000, using: &rng))
        }
    }
}
