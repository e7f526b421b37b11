import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `scrollback watch` (the change stream from another process, spec/change-stream.md) with
/// real processes on real files: the writer is `scrollback exec` or `LockProbe writer` (small
/// segments: rolls, sealing, checkpoints and compaction all the time), the follower the built
/// `scrollback watch`. Every wait is bounded; failures print the lines seen.
@Suite(.serialized) struct WatchTests {
    /// Every kind of change a writer process commits reaches a watch process, in order, as
    /// the contract's lines; `--from` continues exactly after a line, `--conversation`
    /// filters; SIGTERM ends it with status 0; a bad position is one error line, status 1.
    @Test func watchPrintsEveryChangeOfAnotherProcess() throws {
        let dir = try TemporaryStore()
        let writer = try ToolSession(["exec", dir.store])
        defer { writer.kill() }
        #expect(try writer.send(append("a0", in: "c1", at: 1)) == "{\"ok\":true,\"duplicate\":false}")
        let watch = try LineProcess(Tool.executable, ["watch", dir.store, "--poll-ms", "2"])
        defer { watch.kill() }
        let start = try #require(try watch.readLine())
        let startPosition = try #require(Self.object(start)["position"] as? String)
        #expect(start == "{\"position\":\"\(startPosition)\",\"op\":\"start\"}")

        var requests: [String] = []
        for i in 1...30 { requests.append(append("a\(i)", in: i % 3 == 0 ? "c2" : "c1", at: Int64(10 + i))) }
        requests += [
            "{\"op\":\"edit\",\"id\":\"a3\",\"body\":\"edited \\\"3\\\"\"}",
            "{\"op\":\"markRead\",\"user\":\"bob\",\"conversation\":\"c2\",\"through\":\"a6\"}",
            "{\"op\":\"markRead\",\"user\":\"bob\",\"conversation\":\"c2\",\"through\":\"a3\"}",  // backwards: no change
            append("a1", in: "c1", at: 11),  // duplicate: no change
            "{\"op\":\"delete\",\"id\":\"a4\"}",
            "{\"op\":\"batch\",\"ops\":[\(append("b1", in: "c2", at: 100)),{\"op\":\"delete\",\"id\":\"b1\"}]}",
            "{\"op\":\"join\",\"user\":\"bob\",\"conversation\":\"c1\"}",
            "{\"op\":\"join\",\"user\":\"bob\",\"conversation\":\"c1\"}",  // a member already: no change
            "{\"op\":\"leave\",\"user\":\"bob\",\"conversation\":\"c1\"}",
            "{\"op\":\"leave\",\"user\":\"ann\",\"conversation\":\"c1\"}",  // not a member: no change
        ]
        for request in requests {
            let answer = try writer.send(request)
            #expect(answer.hasPrefix("{\"ok\":true"), "\(request): \(answer)")
        }
        var expected: [String] = (1...30).map { "append a\($0) c\($0 % 3 == 0 ? 2 : 1)" }
        expected += ["edit a3 c2 edited \"3\"", "markRead bob c2 a6", "delete a4 c1", "append b1 c2", "delete b1 c2",
                     "join bob c1", "leave bob c1"]
        let lines = try (0..<expected.count).map { _ in try #require(try watch.readLine(), "watch ended early") }
        #expect(lines.map(Self.summary) == expected, "\(lines)")
        let positions = lines.compactMap { Self.object($0)["position"] as? String }
        #expect(Set(positions).count == lines.count)
        // The append line carries the message object of the contract.
        #expect(lines[0].contains("\"op\":\"append\",\"message\":{\"id\":\"a1\",\"conversation\":\"c1\",\"sender\":\"s\",\"createdAt\":11,\"kind\":\"text\",\"body\":\"hello a1\",\"edited\":false}"),
                "\(lines[0])")
        // Nothing else arrives (the no-ops are no change).
        #expect(try watch.readLine(seconds: 0.3) == nil)

        // --from the 10th line, only c2: exactly the later c2 lines.
        let resumed = try LineProcess(Tool.executable, ["watch", dir.store, "--from", positions[9], "--conversation", "c2"])
        defer { resumed.kill() }
        #expect(try resumed.readLine() == "{\"position\":\"\(positions[9])\",\"op\":\"start\"}")
        let later = lines[10...].filter { Self.summary($0).contains(" c2") }
        for line in later { #expect(try resumed.readLine() == line) }
        // --from the start line: every line again.
        let again = try LineProcess(Tool.executable, ["watch", dir.store, "--from", startPosition])
        defer { again.kill() }
        _ = try again.readLine()
        for line in lines { #expect(try again.readLine() == line) }

        for process in [watch, resumed, again] { #expect(process.terminate() == 0) }
        #expect(try writer.finish() == 0)

        let bad = try Tool.run(["watch", dir.store, "--from", "not-a-position"])
        #expect(bad.status == 1 && bad.stdout.isEmpty && bad.stderr.contains("is not a change position"), "\(bad)")
    }

    /// A watch follows a writer process whose log rolls, seals into runs, checkpoints and
    /// compacts all the time: it sees every append acknowledged after it started exactly once,
    /// in order, with no gap.
    @Test func watchFollowsAcrossSealingAndCompaction() throws {
        let dir = try TemporaryStore()
        let writer = try Probe(["writer", dir.store, "--count", "1500", "--compact-every", "150"], timeout: 300)
        defer { writer.kill() }
        let acks = AckTracker(writer)
        _ = try acks.waitFor(20)
        let watch = try LineProcess(Tool.executable, ["watch", dir.store, "--poll-ms", "5", "--conversation", "c0",
                                                      "--conversation", "c1", "--conversation", "c2", "--conversation", "c3",
                                                      "--conversation", "c4"])
        defer { watch.kill() }
        _ = try #require(try watch.readLine())
        var appended: [Int] = []
        while appended.last != 1500 {
            guard let line = try watch.readLine(seconds: 60) else { break }
            let summary = Self.summary(line)
            #expect(summary.hasPrefix("append m"), "\(line)")
            if let n = Int(summary.dropFirst("append m".count).prefix { $0.isNumber }) { appended.append(n) }
        }
        let first = try #require(appended.first)
        #expect(appended == Array(first...1500), "watch saw \(appended.count) appends from m\(first)")
        #expect(watch.terminate() == 0)
    }

    func append(_ id: String, in conversation: String, at time: Int64) -> String {
        "{\"op\":\"append\",\"id\":\"\(id)\",\"conversation\":\"\(conversation)\",\"sender\":\"s\",\"createdAt\":\(time),\"kind\":\"text\",\"body\":\"hello \(id)\"}"
    }

    static func object(_ line: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
    }

    /// "op id conversation [body]" of a change line (the fields a test compares).
    static func summary(_ line: String) -> String {
        let o = object(line)
        let op = o["op"] as? String ?? "?"
        switch op {
        case "append":
            let m = o["message"] as? [String: Any] ?? [:]
            return "append \(m["id"] as? String ?? "?") \(m["conversation"] as? String ?? "?")"
        case "edit": return "edit \(o["id"] as? String ?? "?") \(o["conversation"] as? String ?? "?") \(o["body"] as? String ?? "?")"
        case "delete": return "delete \(o["id"] as? String ?? "?") \(o["conversation"] as? String ?? "?")"
        case "markRead": return "markRead \(o["user"] as? String ?? "?") \(o["conversation"] as? String ?? "?") \(o["through"] as? String ?? "null")"
        case "join", "leave": return "\(op) \(o["user"] as? String ?? "?") \(o["conversation"] as? String ?? "?")"
        default: return line
        }
    }
}

/// A started process whose stdout is read line by line with a timeout.
final class LineProcess {
    let process = Process()
    private let output = Pipe()
    private var lines = PipeLines()
    var pid: Int32 { process.processIdentifier }

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit { kill() }

    /// The next line; nil at the end of output or after `seconds` without one.
    func readLine(seconds: Double = 30) throws -> String? {
        if case .line(let line) = lines.next(from: output.fileHandleForReading.fileDescriptor, until: Date().addingTimeInterval(seconds)) {
            return line
        }
        return nil
    }

    /// SIGTERM, then waits (up to 20 s); the exit status (-1 if it had to be killed).
    func terminate() -> Int32 {
        if process.isRunning { Glibc.kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(2000) }
        if process.isRunning {
            kill()
            process.waitUntilExit()
            return -1
        }
        return process.terminationReason == .exit ? process.terminationStatus : -1
    }

    func kill() {
        if process.isRunning { Glibc.kill(pid, SIGKILL) }
    }
}
