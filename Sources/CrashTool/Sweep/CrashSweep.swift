import Scrollback
import ScrollbackIO

/// What happens at a crash point: a power loss in one crash mode, or an injected I/O fault.
package enum Variant: Sendable, Hashable, CustomStringConvertible {
    case powerLoss(CrashMode)
    case fault(FaultKind)

    package static let all: [Variant] = CrashMode.allCases.map(Variant.powerLoss) + FaultKind.allCases.map(Variant.fault)

    package var description: String {
        switch self {
        case .powerLoss(let mode): mode.rawValue
        case .fault(let kind): kind.rawValue
        }
    }

    package init?(_ text: String) {
        if let mode = CrashMode(rawValue: text) {
            self = .powerLoss(mode)
        } else if let kind = FaultKind(rawValue: text) {
            self = .fault(kind)
        } else {
            return nil
        }
    }
}

/// One case of the sweep: a workload, a variant, and its point — for a power loss the number
/// of I/O steps that complete before the power fails (0 = before the first one); for a fault
/// the ordinal of the sync (fsync-eio) or write (enospc, write-eio) that fails.
package struct CrashCase: Sendable, Hashable, CustomStringConvertible {
    package var seed: UInt64
    package var size: WorkloadSize
    package var variant: Variant
    package var point: Int

    package init(seed: UInt64, size: WorkloadSize, variant: Variant, point: Int) {
        self.seed = seed
        self.size = size
        self.variant = variant
        self.point = point
    }

    package var description: String { "seed \(seed) size \(size.rawValue) variant \(variant) point \(point)" }

    /// The command line that replays exactly this case.
    package var replayCommand: String {
        "scrollback-crash replay --seed \(seed) --size \(size.rawValue) --variant \(variant) --point \(point)"
    }

    /// Seeds every random choice of the case (crash-mode choices, recovery crashes, …).
    var caseSeed: UInt64 {
        let variantIndex = UInt64(Variant.all.firstIndex(of: variant) ?? 99)
        return SweepRandom.mix(seed, size == .small ? 1 : 2, variantIndex, UInt64(point))
    }
}

/// What one case did.
package struct CaseResult: Sendable {
    package var failure: String?
    /// Power losses during recovery that actually hit.
    package var recoveryCrashes = 0
    /// The recovered state was the model after the batch in flight (not only the acknowledged ones).
    package var inFlightSurvived = false
    /// The fault was actually injected (fault variants).
    package var faultFired = false
    /// The post-recovery writes ran.
    package var followedUp = false
}

/// The crash-point sweep of one workload (issue 6): a dry run counts the workload's I/O
/// steps M (and its syncs and writes); `run(_:)` replays the same deterministic workload on a
/// fresh `CrashSimulatingFileSystem`, loses power after `point` steps (or injects a fault at
/// an exact sync or write), reopens (sometimes losing power again during recovery), and
/// checks: open succeeds; the state equals the model after some batch k with
/// acknowledged ≤ k ≤ attempted, on every read primitive; `verify()` is empty; a close and a
/// second open read the same; and (in half the cases) new writes on the recovered store are
/// durable across another crash.
///
/// Thread-safety: immutable after init; `run` may be called from many threads at once.
package final class CrashSweep: Sendable {
    package let workload: Workload
    /// I/O steps of the whole workload (creation through the final close).
    package let steps: Int
    package let syncs: Int
    package let writes: Int
    /// stepsAfter[i] = steps completed when operation i returned (index 0 = store creation).
    package let stepsAfter: [Int]

    /// Self-test only: the workload runs on a disk whose syncs do nothing, so the sweep must fail.
    package let lyingSyncs: Bool

    static let path = "/store"

    package init(workload: Workload, lyingSyncs: Bool = false) throws {
        self.workload = workload
        self.lyingSyncs = lyingSyncs
        var runs: [(Int, Int, Int, [Int])] = []
        for _ in 0..<2 {
            let fs = CrashSimulatingFileSystem(seed: workload.seed)
            let faulting = FaultingFileSystem(fs)
            var store = try MessageStore(path: Self.path, options: Workload.options, fileSystem: faulting)
            try store.enableSearchIndex()   // every write of the workload maintains the index
            var after = [fs.stepCount]
            for (index, op) in workload.operations.enumerated() {
                do {
                    try op.run(on: &store) { try MessageStore(path: Self.path, options: Workload.options, fileSystem: faulting) }
                } catch {
                    throw SweepError("dry run of workload \(workload.seed)/\(workload.size.rawValue): operation \(index) (\(op)) failed: \(error)")
                }
                after.append(fs.stepCount)
            }
            try store.close()   // one writer per store
            let reopened = try MessageStore(path: Self.path, options: Workload.options, fileSystem: fs)
            if let d = try StoreComparison.difference(reopened, workload.states.last!, Self.universe(workload)) {
                throw SweepError("dry run of workload \(workload.seed)/\(workload.size.rawValue) ends in the wrong state: \(d)")
            }
            try reopened.close()
            runs.append((after.last!, faulting.syncCount, faulting.writeCount, after))
        }
        guard runs[0].3 == runs[1].3, runs[0].1 == runs[1].1, runs[0].2 == runs[1].2 else {
            throw SweepError("workload \(workload.seed)/\(workload.size.rawValue) is not deterministic: steps \(runs[0].0) vs \(runs[1].0), syncs \(runs[0].1) vs \(runs[1].1)")
        }
        (steps, syncs, writes, stepsAfter) = runs[0]
    }

    static func universe(_ workload: Workload) -> Universe {
        var universe = workload.universe
        universe.ids += ["after-0", "after-1"]
        return universe
    }

    /// Every case of this workload: each step 0…M in each crash mode, each sync with EIO, and
    /// writes with ENOSPC / EIO (every `writeStride`-th write).
    /// With `modesPerPoint` < 6, each step gets that many modes, rotating so every mode gets
    /// the same share of the steps (the long sweep trades modes per step for more workloads).
    package func allCases(writeStride: Int = 1, modesPerPoint: Int = CrashMode.allCases.count) -> [CrashCase] {
        var cases: [CrashCase] = []
        let modes = CrashMode.allCases
        let perPoint = min(max(1, modesPerPoint), modes.count)
        for point in 0...steps {
            for i in 0..<perPoint {
                let mode = modes[(point * perPoint + i) % modes.count]
                cases.append(CrashCase(seed: workload.seed, size: workload.size, variant: .powerLoss(mode), point: point))
            }
        }
        for ordinal in stride(from: 1, through: syncs, by: 1) {
            cases.append(CrashCase(seed: workload.seed, size: workload.size, variant: .fault(.syncEIO), point: ordinal))
        }
        for ordinal in stride(from: 1, through: writes, by: max(1, writeStride)) {
            cases.append(CrashCase(seed: workload.seed, size: workload.size, variant: .fault(.diskFull), point: ordinal))
            cases.append(CrashCase(seed: workload.seed, size: workload.size, variant: .fault(.writeEIO), point: ordinal + writeStride / 2))
        }
        return cases
    }

    /// Which operation was running when `step` completed (for failure messages).
    func operation(atStep step: Int) -> String {
        guard let index = stepsAfter.firstIndex(where: { $0 >= step }) else { return "after the workload" }
        if index == 0 { return "during store creation" }
        return "during operation \(index - 1) of \(workload.operations.count) (\(workload.operations[index - 1]))"
    }

    /// Runs one case; never throws (every problem is a failure in the result). The steps are
    /// `CaseRun`'s: the workload until the power fails or the fault surfaces, the crash,
    /// recovery (sometimes crashing again), the recovered state against the model, and a
    /// second open and follow-up writes.
    package func run(_ crashCase: CrashCase, log: ((String) -> Void)? = nil) -> CaseResult {
        var run = CaseRun(sweep: self, crashCase: crashCase, log: log)
        do {
            try run.runWorkload()
            run.crash()
            let recovered = try run.recover()
            let k = try run.checkRecoveredState(recovered)
            try run.checkAfterRecovery(recovered, k)
        } catch {
            return run.failed(error.problem)
        }
        return run.result
    }
}

package struct SweepError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
