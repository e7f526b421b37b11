// scrollback-crash: the long crash-point sweep of `make crash`, the replay of one case, and
// the real-process kill test (parent and child). See Tests/CrashSweepTests/README.md.
import Foundation
import ScrollbackCrashSweep
import ScrollbackIO

let usage = """
    usage:
      scrollback-crash sweep [--seconds S] [--seed X] [--threads T] [--modes-per-point K]
          crash-point sweep: workloads seed X, X+1, … (small and large alternating), every
          I/O step in every crash mode plus fsync EIO / ENOSPC / write EIO faults, until S
          seconds (default 600) have passed; prints the totals and every failure. With K < 6
          (default 6) each step gets K of the six crash modes, rotating.
      scrollback-crash replay --seed X --size small|large --variant V --point N
          replays one case with its trail (V: \(Variant.all.map(\.description).joined(separator: ", "))).
      scrollback-crash kill [--kills K] [--seed X] [--dir D]
          real-process kill test: K SIGKILLs of `scrollback-crash child` (default 100).
      scrollback-crash child STORE [--seed X] [--run R] [--calls N]
          the kill test's child: writes to STORE until killed, reporting each call on stdout.
    """

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail(usage) }
let (positional, flags) = parse(Array(arguments.dropFirst()))

func parse(_ arguments: [String]) -> ([String], [String: String]) {
    var positional: [String] = []
    var flags: [String: String] = [:]
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument.hasPrefix("--") {
            guard index + 1 < arguments.count else { fail("missing value for \(argument)\n\(usage)") }
            flags[String(argument.dropFirst(2))] = arguments[index + 1]
            index += 2
        } else {
            positional.append(argument)
            index += 1
        }
    }
    return (positional, flags)
}
func number<T: FixedWidthInteger>(_ name: String, _ fallback: T) -> T {
    guard let text = flags[name] else { return fallback }
    guard let value = T(text) else { fail("--\(name) needs a number, got \(text)") }
    return value
}
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

switch command {
case "sweep":
    let seconds: Int = number("seconds", 600)
    let firstSeed: UInt64 = number("seed", 1)
    let threads: Int = number("threads", ProcessInfo.processInfo.activeProcessorCount)
    let modesPerPoint: Int = number("modes-per-point", 6)
    let deadline = ContinuousClock.now + .seconds(seconds)
    var report = SweepReport()
    var seed = firstSeed
    say("crash sweep: \(seconds) s from seed \(firstSeed) on \(threads) threads, \(modesPerPoint) crash modes per step")
    while ContinuousClock.now < deadline && report.failures.isEmpty {
        for size in WorkloadSize.allCases where ContinuousClock.now < deadline {
            let sweep: CrashSweep
            do { sweep = try CrashSweep(workload: Workload(seed: seed, size: size)) } catch {
                report.failures.append("workload seed \(seed) size \(size.rawValue): \(error)")
                break
            }
            let cases = sweep.allCases(writeStride: size == .small ? 1 : 4, modesPerPoint: modesPerPoint)
            let before = report.cases
            SweepRunner.run(sweep, cases: cases, threads: threads, deadline: deadline, into: &report)
            say("  workload seed \(seed) \(size.rawValue): \(sweep.workload.operations.count) operations, \(sweep.steps) steps, \(sweep.syncs) syncs, \(sweep.writes) writes; \(report.cases - before) of \(cases.count) cases run; total \(report.crashPoints.count) crash points, \(report.failures.count) failures")
        }
        seed += 1
    }
    say(report.summary)
    for failure in report.failures { say(failure) }
    exit(report.failures.isEmpty ? 0 : 1)

case "replay":
    guard let sizeText = flags["size"], let size = WorkloadSize(rawValue: sizeText),
        let variantText = flags["variant"], let variant = Variant(variantText), flags["point"] != nil
    else { fail(usage) }
    let crashCase = CrashCase(seed: number("seed", 1), size: size, variant: variant, point: number("point", 0))
    do {
        let sweep = try CrashSweep(workload: Workload(seed: crashCase.seed, size: size))
        say("workload: \(sweep.workload.operations.count) operations, \(sweep.steps) steps, \(sweep.syncs) syncs, \(sweep.writes) writes")
        for (i, op) in sweep.workload.operations.enumerated() { say("  op \(i): \(op) (steps through \(sweep.stepsAfter[i + 1]))") }
        let result = sweep.run(crashCase) { say("  " + $0) }
        if let failure = result.failure {
            say(failure)
            exit(1)
        }
        say("ok: \(crashCase)")
    } catch {
        fail("\(error)")
    }

case "kill":
    let kills: Int = number("kills", 100)
    let seed: UInt64 = number("seed", 1)
    let directory = flags["dir"] ?? NSTemporaryDirectory() + "scrollback-kill-\(getpid())"
    try? FileManager.default.removeItem(atPath: directory)
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    say("kill test: \(kills) kills, seed \(seed), store \(directory)")
    let report = KillTest.run(executable: me, path: directory, kills: kills, seed: seed) { line in
        if flags["verbose"] != nil { say(line) }
    }
    say(report.summary)
    for failure in report.failures { say(failure) }
    if report.failures.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    exit(report.failures.isEmpty ? 0 : 1)

case "child":
    guard let path = positional.first else { fail(usage) }
    do {
        try KillTest.child(path: path, seed: number("seed", 1), run: number("run", 0), maxCalls: number("calls", Int.max))
    } catch {
        fail("child: \(error)")
    }

default:
    fail(usage)
}
