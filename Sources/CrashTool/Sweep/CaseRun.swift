import Scrollback
import ScrollbackIO

/// One case of a `CrashSweep`, step by step. Every random choice comes from the case's seed,
/// in a fixed order, so a case replays exactly.
struct CaseRun {
    /// Why the case failed (every step throws only this).
    struct Failure: Error {
        var problem: String
        init(_ problem: String) { self.problem = problem }
    }

    let sweep: CrashSweep
    let crashCase: CrashCase
    let log: ((String) -> Void)?
    private(set) var result = CaseResult()
    private var rng: SweepRandom
    private let fs: CrashSimulatingFileSystem
    private var namespaceMode = NamespaceCrashMode.revertUnsynced
    private let universe: Universe
    private var trail: [String] = []
    /// Writes acknowledged before the crash, and those attempted (the one in flight included).
    private var acknowledged = 0
    private var attempted = 0
    /// Whether an operation that turns the search index off (and on again) had started.
    private var searchRebuildStarted = false
    /// The store the workload ran on, until the crash.
    private var store: MessageStore?

    init(sweep: CrashSweep, crashCase: CrashCase, log: ((String) -> Void)?) {
        self.sweep = sweep
        self.crashCase = crashCase
        self.log = log
        rng = SweepRandom(seed: crashCase.caseSeed)
        fs = CrashSimulatingFileSystem(seed: crashCase.caseSeed)
        universe = CrashSweep.universe(sweep.workload)
    }

    private mutating func note(_ text: String) {
        trail.append(text)
        log?(text)
    }

    /// The result with the failure report: where the case crashed, the problem, the trail of
    /// what happened, and the command that replays it.
    func failed(_ problem: String) -> CaseResult {
        var r = result
        let position: String
        switch crashCase.variant {
        case .powerLoss:
            position = "power lost after step \(crashCase.point) of \(sweep.steps) \(sweep.operation(atStep: crashCase.point + 1))"
        case .fault(.syncEIO): position = "sync #\(crashCase.point) of \(sweep.syncs) fails"
        case .fault: position = "write #\(crashCase.point) of \(sweep.writes) fails"
        }
        r.failure = """
            CRASH SWEEP FAILURE: \(crashCase) — \(position)
              problem: \(problem)
              trail: \(trail.joined(separator: "; "))
              replay: \(crashCase.replayCommand)
            """
        return r
    }

    private mutating func randomMode() -> CrashMode { CrashMode.allCases[rng.below(CrashMode.allCases.count)] }

    private func open(_ fileSystem: any FileSystem) throws -> MessageStore {
        try MessageStore(path: CrashSweep.path, options: Workload.options, fileSystem: fileSystem)
    }

    /// 1. The workload until the power fails or the fault surfaces.
    mutating func runWorkload() throws(Failure) {
        let faulting: FaultingFileSystem
        switch crashCase.variant {
        case .powerLoss:
            faulting = FaultingFileSystem(fs, lyingSyncs: sweep.lyingSyncs)
            fs.scheduleCrash(afterSteps: crashCase.point)
            let roll = rng.below(10)
            namespaceMode = roll < 7 ? .revertUnsynced : roll < 9 ? .keepPrefix : .keepAll
        case .fault(let kind):
            faulting = FaultingFileSystem(fs, fault: (kind, crashCase.point), lyingSyncs: sweep.lyingSyncs)
        }
        let stoppedBy = runOperations(on: faulting)
        result.faultFired = faulting.faultFired
        if let stoppedBy {
            note(stoppedBy)
            switch crashCase.variant {
            case .powerLoss:
                if !fs.isPoweredOff { throw Failure("an operation failed with the power on: \(stoppedBy)") }
            case .fault:
                if !faulting.faultFired { throw Failure("an operation failed before the fault was injected: \(stoppedBy)") }
            }
        }
        note("acknowledged \(acknowledged), attempted \(attempted)")
    }

    /// Runs the operations until one throws; returns what stopped them (nil: all ran).
    private mutating func runOperations(on faulting: FaultingFileSystem) -> String? {
        do {
            store = try open(faulting)
            try store!.enableSearchIndex()   // every write of the workload maintains the index
            for (index, op) in sweep.workload.operations.enumerated() {
                let writes = op.writes != nil
                if case .rebuildSearchIndex = op { searchRebuildStarted = true }
                do {
                    try op.run(on: &store!) { try MessageStore(path: CrashSweep.path, options: Workload.options, fileSystem: faulting) }
                    if writes { acknowledged += 1 }
                    attempted = acknowledged
                } catch {
                    if writes, case ScrollbackError.refusesWrites = error {} else if writes { attempted = acknowledged + 1 }
                    return "operation \(index) (\(op)) threw \(error)"
                }
            }
        } catch {
            return "creating the store threw \(error)"
        }
        return nil
    }

    /// 2. The crash (or, after a fault, sometimes a plain process restart).
    mutating func crash() {
        switch crashCase.variant {
        case .powerLoss(let mode):
            fs.crash(mode: mode, namespace: namespaceMode)
            note("crash \(mode)/\(namespaceMode)")
        case .fault:
            if rng.chance(50) {
                try? store?.close()
                fs.clearFaults()
                note("fault, then restart without power loss")
            } else {
                let mode = randomMode()
                fs.crash(mode: mode)
                note("fault, then crash \(mode)")
            }
        }
        store = nil
    }

    /// 3. Recovery, sometimes losing power again during it.
    mutating func recover() throws(Failure) -> MessageStore {
        for attempt in 0..<4 {
            let crashAgain = attempt < 2 && rng.chance(attempt == 0 ? 30 : 15)
            if crashAgain { fs.scheduleCrash(afterSteps: rng.below(rng.chance(50) ? 10 : 60)) }
            do {
                let opened = try open(fs)
                if fs.isPoweredOff {
                    let mode = randomMode()
                    fs.crash(mode: mode)
                    result.recoveryCrashes += 1
                    note("power lost at the end of recovery, crash \(mode)")
                    continue
                }
                fs.scheduleCrash(afterSteps: Int.max)
                return opened
            } catch {
                if !fs.isPoweredOff { throw Failure("reopen failed: \(error)") }
                let mode = randomMode()
                fs.crash(mode: mode)
                result.recoveryCrashes += 1
                note("power lost during recovery, crash \(mode)")
            }
        }
        throw Failure("no recovery attempt completed")
    }

    /// 4. The state is the model after some batch k, acknowledged ≤ k ≤ attempted. Returns k.
    mutating func checkRecoveredState(_ recovered: MessageStore) throws(Failure) -> Int {
        var differences: [String] = []
        do {
            // The index was turned on before the first operation: a store that kept any of
            // them has it (StoreComparison then compares searches), unless an operation that
            // turns it off and on again had started (then it may be off, or partly built).
            if acknowledged > 0, !searchRebuildStarted, try !recovered.isSearchIndexEnabled {
                throw Failure("the search index is off after recovery, but \(acknowledged) operations were acknowledged")
            }
            for candidate in stride(from: attempted, through: acknowledged, by: -1) {
                guard let d = try StoreComparison.difference(recovered, sweep.workload.states[candidate], universe) else {
                    result.inFlightSurvived = candidate > acknowledged
                    note("recovered to batch \(candidate)")
                    return candidate
                }
                differences.append("vs the model after batch \(candidate): \(d)")
            }
        } catch {
            throw Failure("a read after recovery threw \(error)")
        }
        throw Failure("the recovered state is no allowed state — " + differences.joined(separator: "; "))
    }

    /// 5. `verify()`, then a second open (cold caches, a second recovery) reads the same;
    /// 6. sometimes new writes on the recovered store survive another crash.
    mutating func checkAfterRecovery(_ first: MessageStore, _ k: Int) throws(Failure) {
        do {
            let problems = try first.verify()
            if !problems.isEmpty { throw Failure("verify() after recovery: \(problems)") }
            try first.close()
            let second = try open(fs)
            if let d = try StoreComparison.difference(second, sweep.workload.states[k], universe, pageSize: 2) {
                throw Failure("after a second open: \(d)")
            }
            let again = try second.verify()
            if !again.isEmpty { throw Failure("verify() after a second open: \(again)") }
            if rng.chance(50) {
                try followUp(on: second, k)
            } else {
                try second.close()
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("after recovery: \(error)")
        }
    }

    /// 6. Writes after recovery, a crash, and every one of them is there.
    private mutating func followUp(on store: MessageStore, _ k: Int) throws {
        var model = sweep.workload.states[k]
        for batch in Workload.followUp(after: model, seed: crashCase.caseSeed) {
            try store.write(batch)
            model.apply(batch)
        }
        let mode = randomMode()
        fs.crash(mode: mode)
        note("follow-up writes, crash \(mode)")
        let third = try open(fs)
        if let d = try StoreComparison.difference(third, model, universe) {
            throw Failure("acknowledged writes after recovery lost: \(d)")
        }
        let last = try third.verify()
        if !last.isEmpty { throw Failure("verify() after the follow-up crash: \(last)") }
        try third.close()
        result.followedUp = true
    }
}
