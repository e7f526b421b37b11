import Dispatch
import Synchronization

/// Totals of a sweep.
package struct SweepReport: Sendable {
    package var cases = 0
    /// Distinct (workload, step) power-loss points.
    package var crashPoints = Set<String>()
    package var perVariant: [String: Int] = [:]
    /// Fault cases where the fault was actually injected.
    package var faultsInjected = 0
    package var recoveryCrashes = 0
    package var inFlightSurvived = 0
    package var followUps = 0
    package var workloads = 0
    package var steps = 0
    package var failures: [String] = []

    package init() {}

    package mutating func add(_ crashCase: CrashCase, _ result: CaseResult) {
        cases += 1
        perVariant[crashCase.variant.description, default: 0] += 1
        if case .powerLoss = crashCase.variant {
            crashPoints.insert("\(crashCase.seed)/\(crashCase.size.rawValue)/\(crashCase.point)")
        }
        if result.faultFired { faultsInjected += 1 }
        recoveryCrashes += result.recoveryCrashes
        if result.inFlightSurvived { inFlightSurvived += 1 }
        if result.followedUp { followUps += 1 }
        if let failure = result.failure { failures.append(failure) }
    }

    package var summary: String {
        var lines = [
            "crash sweep: \(workloads) workloads (\(steps) I/O steps), \(cases) cases, \(crashPoints.count) distinct crash points, \(failures.count) failures",
        ]
        let modes = Variant.all.map { "\($0)=\(perVariant[$0.description] ?? 0)" }.joined(separator: " ")
        lines.append("  per variant: \(modes)")
        lines.append("  faults injected: \(faultsInjected); crashes during recovery: \(recoveryCrashes); in-flight batch survived: \(inFlightSurvived); post-recovery write checks: \(followUps)")
        return lines.joined(separator: "\n")
    }
}

/// Runs cases on `threads` threads until done or `deadline`; stops early after `maxFailures`.
package enum SweepRunner {
    package static func run(
        _ sweep: CrashSweep, cases: [CrashCase], threads: Int, deadline: ContinuousClock.Instant? = nil,
        maxFailures: Int = 5, into report: inout SweepReport
    ) {
        let next = Atomic<Int>(0)
        let shared = Mutex(SweepReport())
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            while true {
                if let deadline, ContinuousClock.now >= deadline { return }
                if shared.withLock({ $0.failures.count }) >= maxFailures { return }
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < cases.count else { return }
                let result = sweep.run(cases[index])
                shared.withLock { $0.add(cases[index], result) }
            }
        }
        let partial = shared.withLock { $0 }
        report.cases += partial.cases
        report.crashPoints.formUnion(partial.crashPoints)
        for (key, value) in partial.perVariant { report.perVariant[key, default: 0] += value }
        report.faultsInjected += partial.faultsInjected
        report.recoveryCrashes += partial.recoveryCrashes
        report.inFlightSurvived += partial.inFlightSurvived
        report.followUps += partial.followUps
        report.failures += partial.failures
        report.workloads += 1
        report.steps += sweep.steps
    }
}
