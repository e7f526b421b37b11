import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Real processes on real files: `LockProbe` (Tests/LockProbe) holds the store lock or a
/// reader slot; the test kills it with SIGKILL or tells it to let go. Every wait is bounded.
@Suite(.serialized) struct MultiProcessLockTests {
    @Test func aSecondWriterProcessIsRefusedUntilTheFirstIsKilled() throws {
        let store = try StoreDirectory(.posix)
        let first = try Probe(["lock", store.path, "--label", "first probe"])
        defer { first.kill() }
        let locked = try first.expectLine(prefix: "locked ")
        #expect(locked == "locked \(first.pid)")

        // Another process is refused, and the error names the holder.
        let second = try Probe(["lock", store.path])
        defer { second.kill() }
        let refused = try second.expectLine(prefix: "refused ")
        #expect(refused.contains("store \(store.path) is in use by another writer (pid \(first.pid), first probe, since "),
                "\(refused)")
        #expect(second.waitForExit() == .exited(3))
        // So is this process, and it sees a live writer.
        let error = storageError { _ = try StoreLock.acquire(fileSystem: store.fs, directory: store.path) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("(pid \(first.pid), first probe, since "))
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path))
        #expect(try Probe.run(["alive", store.path]) == "alive")

        // SIGKILL: the kernel releases the lock; no cleanup needed.
        first.kill()
        #expect(first.waitForExit() == .killed(SIGKILL))
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path) == false)
        let lock = try StoreLock.acquire(fileSystem: store.fs, directory: store.path, label: "test process")
        let third = try Probe(["lock", store.path])
        defer { third.kill() }
        #expect(try third.expectLine(prefix: "refused ").contains("(pid \(getpid()), test process, since "))
        try lock.release()
        #expect(try Probe.run(["alive", store.path]) == "none")
    }

    @Test func aReleasedLockIsFreeForTheNextProcess() throws {
        let store = try StoreDirectory(.posix)
        let first = try Probe(["lock", store.path])
        defer { first.kill() }
        _ = try first.expectLine(prefix: "locked ")
        first.send("release")
        #expect(try first.expectLine(prefix: "released") == "released")
        #expect(first.waitForExit() == .exited(0))
        let second = try Probe(["lock", store.path])
        defer { second.kill() }
        #expect(try second.expectLine(prefix: "locked ") == "locked \(second.pid)")
    }

    /// A reader process killed while holding a snapshot: its slot stops counting at once and
    /// is reclaimed, so the writer's reuse resumes.
    @Test func aKilledReaderProcessStopsHoldingBackTheWriter() throws {
        let store = try StoreDirectory(.posix)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? writer.close() }
        let reader = try Probe(["read", store.path, "--transaction", "40", "--position", "\(0x1_0000_0018)"])
        defer { reader.kill() }
        #expect(try reader.expectLine(prefix: "reading ") == "reading 0 \(reader.pid)")
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 40, logPosition: 0x1_0000_0018, liveReaders: 1, pid: UInt64(reader.pid), unreadableSlots: 0))

        reader.kill()
        #expect(reader.waitForExit() == .killed(SIGKILL))
        #expect(try writer.oldestReader() == nil)
        guard case .stale(let slot) = try writer.inspectSlots()[0] else {
            Issue.record("slot 0 is not stale")
            return
        }
        #expect(slot?.process.pid == UInt64(reader.pid))
        #expect(slot?.process.isRunning == false)
        #expect(try writer.clearStaleSlots() == 1)
        #expect(try writer.inspectSlots().allSatisfy { $0 == .free })
    }

    @Test func readersInTwoProcessesAreBothCounted() throws {
        let store = try StoreDirectory(.posix)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? writer.close() }
        let older = try Probe(["read", store.path, "--transaction", "10", "--position", "\(0x2_0000_0018)"])
        defer { older.kill() }
        _ = try older.expectLine(prefix: "reading ")
        let newer = try Probe(["read", store.path, "--transaction", "20", "--position", "\(0x1_0000_0018)"])
        defer { newer.kill() }
        _ = try newer.expectLine(prefix: "reading ")
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 10, logPosition: 0x1_0000_0018, liveReaders: 2, pid: UInt64(older.pid), unreadableSlots: 0))

        older.send("release")
        #expect(try older.expectLine(prefix: "released") == "released")
        #expect(older.waitForExit() == .exited(0))
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 20, logPosition: 0x1_0000_0018, liveReaders: 1, pid: UInt64(newer.pid), unreadableSlots: 0))
        #expect(try writer.clearStaleSlots() == 0, "a released slot is zeroed by its reader")

        newer.kill()
        _ = newer.waitForExit()
        #expect(try writer.oldestReader() == nil)
    }

    /// With no writer running, a reader process builds the table itself (a read-only open of a
    /// store whose writer is down must work), and a writer then joins it without rebuilding.
    @Test func aReaderProcessBuildsAMissingTable() throws {
        let store = try StoreDirectory(.posix)
        let reader = try Probe(["read", store.path, "--transaction", "5", "--position", "24"])
        defer { reader.kill() }
        _ = try reader.expectLine(prefix: "reading ")
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? writer.close() }
        #expect(writer.slotCount == ReaderTableLayout.defaultSlotCount)
        #expect(try writer.oldestReader()?.pid == UInt64(reader.pid))
    }
}

/// A running `LockProbe`: its stdout read line by line with a timeout, its stdin a pipe that
/// the probe treats as "hold until this closes".
final class Probe {
    enum Exit: Equatable {
        case exited(Int32)
        case killed(Int32)
        case stillRunning
    }

    static let executable: String = {
        var candidates: [String] = []
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var directory = me.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("LockProbe").path)
            directory = directory.deletingLastPathComponent()
        }
        for bundle in Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("LockProbe").path)
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var lines = PipeLines()
    var pid: Int32 { process.processIdentifier }

    /// Starts `LockProbe arguments…`; it ends itself after `timeout` seconds at the latest.
    init(_ arguments: [String], timeout: Int = 60) throws {
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments + ["--timeout", "\(timeout)"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    deinit { kill() }

    /// Runs a probe to its end and returns its first line.
    static func run(_ arguments: [String]) throws -> String {
        let probe = try Probe(arguments)
        defer { probe.kill() }
        let line = try probe.readLine()
        _ = probe.waitForExit()
        return line ?? ""
    }

    /// The next line of output; nil at end of output; throws after `seconds` without one.
    func readLine(seconds: Double = 20) throws -> String? {
        switch lines.next(from: output.fileHandleForReading.fileDescriptor, until: Date().addingTimeInterval(seconds)) {
        case .line(let line): return line
        case .ended: return lines.rest
        case .timedOut: throw ProbeTimeout(what: "a line from LockProbe \(process.arguments ?? []) (got \(lines.rest?.utf8.count ?? 0) bytes)")
        }
    }

    /// The next complete line if one has arrived, without waiting; nil otherwise.
    func readAvailableLine() -> String? {
        if case .line(let line) = lines.next(from: output.fileHandleForReading.fileDescriptor, until: nil) { return line }
        return nil
    }

    /// Reads lines until one starts with `prefix` (others are reported as issues).
    func expectLine(prefix: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        while let line = try readLine() {
            if line.hasPrefix(prefix) { return line }
            Issue.record("LockProbe said: \(line)", sourceLocation: sourceLocation)
        }
        throw ProbeTimeout(what: "a line starting with \"\(prefix)\" (the probe ended)")
    }

    func send(_ line: String) {
        try? input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
    }

    /// SIGKILL (no-op once it has exited).
    func kill() {
        if process.isRunning { Glibc.kill(pid, SIGKILL) }
    }

    /// Waits up to `seconds` for the probe to end.
    func waitForExit(seconds: Double = 20) -> Exit {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline { return .stillRunning }
            usleep(2000)
        }
        return process.terminationReason == .uncaughtSignal ? .killed(process.terminationStatus) : .exited(process.terminationStatus)
    }
}

struct ProbeTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}
