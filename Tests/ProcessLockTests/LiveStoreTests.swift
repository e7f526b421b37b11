import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One writer, many readers, any process — with real processes on real files: the built
/// `scrollback` tool and `LockProbe writer` (a `MessageStore` writer with small segments and
/// checkpoint thresholds, so checkpoints, sealing and compaction happen all the time). Every
/// wait is bounded; failures print the pids and the acknowledged count.
@Suite(.serialized) struct LiveStoreTests {
    /// A second writer process — exec, import, checkpoint, compact, generate — is refused with
    /// one line naming the holder, exit 1, and writes nothing; the first loses nothing.
    @Test func aSecondWriterProcessIsRefusedAndNothingIsLost() throws {
        let dir = try TemporaryStore()
        let first = try ToolSession(["exec", dir.store])
        defer { first.kill() }
        for i in 1...200 { #expect(try first.send(append("a\(i)", in: "c", at: Int64(i))) == "{\"ok\":true,\"duplicate\":false}") }
        let filesBefore = try dir.snapshotFiles()

        let jsonl = dir.path + "/in.jsonl"
        try (1...10).map { "{\"id\":\"b\($0)\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":\(1000 + $0),\"kind\":\"text\",\"body\":\"b\"}" }
            .joined(separator: "\n").write(toFile: jsonl, atomically: true, encoding: .utf8)
        for args in [["exec", dir.store], ["import", dir.store, jsonl], ["checkpoint", dir.store], ["compact", dir.store],
                     ["generate", "--messages", "10", "--out", dir.store]] {
            let result = try Tool.run(args, stdin: append("b1", in: "c", at: 5000))
            #expect(result.status == 1, "\(args): \(result)")
            #expect(result.stdout.isEmpty, "\(args): \(result)")
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("scrollback: error: store \(dir.store) is in use by another writer (pid \(first.pid), scrollback exec, since "),
                    "\(args): \(result)")
        }
        // Two more read-only opens meanwhile, and the refused opens wrote nothing.
        #expect(try Tool.run(["query", dir.store, "count", "c", "--after", "0"]).stdout == "200\n")
        #expect(try dir.snapshotFiles() == filesBefore, "a refused open changed the store")

        for i in 201...400 { #expect(try first.send(append("a\(i)", in: "c", at: Int64(i))) == "{\"ok\":true,\"duplicate\":false}") }
        #expect(try first.finish() == 0)
        #expect(try Tool.run(["query", dir.store, "count", "c", "--after", "0"]).stdout == "400\n")
        #expect(try Tool.run(["verify", dir.store]).stdout == "ok\n")
        // The lock went with the first writer: a new one may open it.
        #expect(try Tool.run(["exec", dir.store], stdin: append("a401", in: "c", at: 401)).status == 0)
    }

    /// A writer appends, checkpoints, seals and compacts while readers in other processes
    /// loop over queries, `stats`, `verify`, `export` and `backup`: every answer is a committed
    /// state that includes every write acknowledged before the read began; no reader ever
    /// sees damage; the live backup verifies and opens. Then the writer is SIGKILLed in the
    /// middle of the reads: every acknowledged write survives.
    @Test func readersSeeCommittedStatesWhileTheWriterWorksAndAfterItIsKilled() throws {
        let dir = try TemporaryStore()
        let writer = try Probe(["writer", dir.store, "--count", "100000", "--compact-every", "150"], timeout: 300)
        defer { writer.kill() }
        let acks = AckTracker(writer)
        _ = try acks.waitFor(50)
        let session = try ToolSession(["exec", "--read-only", dir.store])
        defer { session.kill() }
        var rounds = 0
        var backups = 0
        var sawRuns = false
        let started = Date()
        while acks.acked < 1200 && Date().timeIntervalSince(started) < 90 {
            rounds += 1
            // Queries in a long-lived read-only session (it refreshes before each request).
            var floor = acks.refresh()
            for k in 0..<5 {
                let answer = try session.send("{\"op\":\"page\",\"conversation\":\"c\(k)\",\"limit\":10000,\"order\":\"oldestFirst\"}")
                try expectPrefix(ids(inMessagesOf: answer), conversation: k, atLeast: floor, context: "exec --read-only round \(rounds), writer \(writer.pid)")
            }
            // One-shot read-only commands.
            floor = acks.refresh()
            let latest = try Tool.run(["query", dir.store, "latest", "c1", "--limit", "1", "--json"])
            #expect(latest.status == 0, "\(latest)")
            let newest = ids(inMessagesOf: latest.stdout.trimmingCharacters(in: .newlines)).first.flatMap { Int($0.dropFirst()) } ?? 0
            #expect(newest >= Self.largest(below: floor, in: 1), "latest of c1 is m\(newest), acknowledged through m\(floor)")
            floor = acks.refresh()
            let export = try Tool.run(["export", dir.store])
            #expect(export.status == 0, "\(export)")
            try expectExport(export.stdout, atLeast: floor, context: "export round \(rounds)")
            let stats = try Tool.run(["stats", dir.store, "--json"])
            #expect(stats.status == 0 && !stats.stdout.contains("corrupted"), "\(stats)")
            // Format 2: the history the writer sealed is in sorted runs, which the reader reads.
            let runBytes = Self.sortedRunBytes(inStats: stats.stdout)
            #expect(runBytes != nil, "stats has no space usage: \(stats.stdout)")
            if (runBytes ?? 0) > 0 { sawRuns = true }
            let verify = try Tool.run(["verify", dir.store])
            #expect(verify.stdout == "ok\n", "verify round \(rounds), writer \(writer.pid), acked \(acks.acked): \(verify)")
            if rounds % 3 == 1 {
                floor = acks.refresh()
                let copy = dir.path + "/backup-\(rounds)"
                let backup = try Tool.run(["backup", copy, dir.store])
                #expect(backup.status == 0, "\(backup)")
                #expect(try Tool.run(["verify", copy]).stdout == "ok\n", "backup round \(rounds)")
                if sawRuns {
                    let copied = try FileManager.default.contentsOfDirectory(atPath: copy).filter { $0.hasSuffix(".run") }
                    #expect(!copied.isEmpty, "the live backup holds no sorted run (round \(rounds))")
                }
                try expectExport(try Tool.run(["export", copy]).stdout, atLeast: floor, context: "export of backup \(rounds)")
                backups += 1
            }
        }
        #expect(acks.acked >= 300, "the writer barely wrote (pid \(writer.pid))")
        #expect(sawRuns, "the readers never met a sorted run: format 2 was not exercised")

        // SIGKILL the writer while an export reads.
        let floor = acks.refresh()
        let reading = try Tool.start(["export", dir.store])
        usleep(2000)
        writer.kill()
        #expect(writer.waitForExit() == .killed(SIGKILL))
        let acknowledged = acks.refresh()
        let export = reading.finish()
        #expect(export.status == 0, "\(export)")
        try expectExport(export.stdout, atLeast: floor, context: "export during the kill")
        // The session still reads, and reads everything acknowledged.
        for k in 0..<5 {
            let answer = try session.send("{\"op\":\"page\",\"conversation\":\"c\(k)\",\"limit\":10000,\"order\":\"oldestFirst\"}")
            try expectPrefix(ids(inMessagesOf: answer), conversation: k, atLeast: acknowledged, context: "after the kill")
        }
        #expect(try session.finish() == 0)
        // Every acknowledged write survives the writer's death and the next writer's recovery.
        try expectExport(try Tool.run(["export", dir.store]).stdout, atLeast: acknowledged, context: "read-only after the kill")
        #expect(try Tool.run(["checkpoint", dir.store]).status == 0)
        try expectExport(try Tool.run(["export", dir.store]).stdout, atLeast: acknowledged, context: "after recovery")
        #expect(try Tool.run(["verify", dir.store]).stdout == "ok\n")
        print("live store: \(rounds) reader rounds, \(backups) live backups, \(acknowledged) acknowledged appends (writer pid \(writer.pid))")
    }

    /// A reader process killed while it holds an old snapshot: the writer keeps the pages
    /// that snapshot reads (the page file grows) while it lives; once it is killed its slot no
    /// longer counts and reuse resumes.
    @Test func aKilledReaderProcessStopsHoldingBackReuse() throws {
        let dir = try TemporaryStore()
        let writer = try Probe(["writer", dir.store, "--count", "100000", "--edits", "4", "--compact-every", "0", "--normal", "1"], timeout: 300)
        defer { writer.kill() }
        let acks = AckTracker(writer)
        _ = try acks.waitFor(100)
        let reader = try ToolSession(["exec", "--read-only", dir.store])
        defer { reader.kill() }
        #expect(try reader.send("{\"op\":\"count\",\"conversation\":\"c1\",\"after\":0}").hasPrefix("{\"ok\":true"))
        // The reader now holds its snapshot (it refreshes only when asked).
        let held = try acks.waitForStats(after: acks.acked + 300) { $0.liveReaders == 1 && $0.pagesAwaitingReaders > 0 }
        #expect(held.oldestPid == Int(reader.pid), "oldest reader \(held.oldestPid), reader \(reader.pid)")
        let grown = try acks.waitForStats(after: acks.acked + 300) { $0.pageFileBytes > held.pageFileBytes }
        reader.kill()
        #expect(reader.waitForExit() == .killed(SIGKILL))
        let released = try acks.waitForStats(after: acks.acked + 100) { $0.liveReaders == 0 && $0.pagesAwaitingReaders == 0 }
        var peak = released.pageFileBytes
        let end = acks.acked + 600
        while acks.acked < end {
            if let s = try acks.nextStats() { peak = max(peak, s.pageFileBytes) }
        }
        #expect(peak <= released.pageFileBytes + (256 << 10), "the page file kept growing after the reader died: \(released.pageFileBytes) -> \(peak)")
        print("stale reader: pages awaiting it \(held.pagesAwaitingReaders) -> \(grown.pagesAwaitingReaders), page file \(held.pageFileBytes) -> \(grown.pageFileBytes) bytes while it lived; after SIGKILL \(released.pageFileBytes) -> \(peak) over 600 appends")
    }

    // MARK: Checks

    /// The bytes of sorted runs in `stats --json` output ("space": {"sorted runs": N}), nil
    /// when absent.
    static func sortedRunBytes(inStats json: String) -> Int? {
        guard let range = json.range(of: "\"sorted runs\":") else { return nil }
        return Int(json[range.upperBound...].prefix { $0.isNumber })
    }

    static func largest(below floor: Int, in conversation: Int) -> Int {
        var i = floor
        while i > 0 && i % 5 != conversation { i -= 1 }
        return i
    }

    /// The ids of conversation c`k` must be exactly m`k`, m`k+5`, … up to some m`J` (a committed
    /// prefix), with `J` at least the newest acknowledged of that conversation.
    func expectPrefix(_ ids: [String], conversation k: Int, atLeast floor: Int, context: String) throws {
        let numbers = ids.map { Int($0.dropFirst()) ?? -1 }
        let first = k == 0 ? 5 : k
        let expected = Array(stride(from: first, through: max(numbers.last ?? 0, first - 1), by: 5))
        #expect(numbers == expected, "\(context): c\(k) holds \(numbers.prefix(5))…\(numbers.suffix(5)), not a prefix of the appends")
        #expect((numbers.last ?? 0) >= Self.largest(below: floor, in: k),
                "\(context): c\(k) ends at m\(numbers.last ?? 0), acknowledged through m\(floor)")
    }

    /// An export's messages of c0…c4, each checked as a prefix.
    func expectExport(_ text: String, atLeast floor: Int, context: String) throws {
        var byConversation: [Int: [String]] = [:]
        for line in text.split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let conversation = object["conversation"] as? String, let id = object["id"] as? String else {
                Issue.record("\(context): bad export line \(line)")
                continue
            }
            if conversation.count == 2, conversation.hasPrefix("c"), let k = Int(conversation.dropFirst()) {
                byConversation[k, default: []].append(id)
            }
        }
        for k in 0..<5 { try expectPrefix(byConversation[k] ?? [], conversation: k, atLeast: floor, context: context) }
    }

    func ids(inMessagesOf line: String) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              object["ok"] as? Bool == true, let messages = object["messages"] as? [[String: Any]] else {
            Issue.record("not a messages answer: \(line.prefix(300))")
            return []
        }
        return messages.compactMap { $0["id"] as? String }
    }

    func append(_ id: String, in conversation: String, at time: Int64) -> String {
        "{\"op\":\"append\",\"id\":\"\(id)\",\"conversation\":\"\(conversation)\",\"sender\":\"s\",\"createdAt\":\(time),\"kind\":\"text\",\"body\":\"hello \(id)\"}"
    }
}

/// Follows a `LockProbe writer`'s output: the last acknowledged append and its stats lines.
final class AckTracker {
    struct Stats {
        var pagesAwaitingReaders: Int
        var pageFileBytes: Int
        var liveReaders: Int
        var oldestPid: Int
    }

    let probe: Probe
    private(set) var acked = 0
    private var stats: [Stats] = []

    init(_ probe: Probe) { self.probe = probe }

    /// Reads what the writer printed so far (no waiting); the last acknowledged append.
    @discardableResult
    func refresh() -> Int {
        while let line = probe.readAvailableLine() { take(line) }
        return acked
    }

    private func take(_ line: String) {
        if line.hasPrefix("acked "), let n = Int(line.dropFirst(6)) {
            acked = n
        } else if line.hasPrefix("stats ") {
            let fields = line.split(separator: " ").dropFirst().compactMap { Int($0) }
            if fields.count == 4 { stats.append(Stats(pagesAwaitingReaders: fields[0], pageFileBytes: fields[1], liveReaders: fields[2], oldestPid: fields[3])) }
        } else if line.hasPrefix("writer ") || line.hasPrefix("compacted ") || line == "done" {
        } else {
            Issue.record("writer \(probe.pid) said: \(line)")
        }
    }

    /// Waits (bounded) until `count` appends are acknowledged.
    func waitFor(_ count: Int, seconds: Double = 60) throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while acked < count {
            guard Date() < deadline, let line = try probe.readLine(seconds: max(0.1, deadline.timeIntervalSinceNow)) else {
                throw ProbeTimeout(what: "\(count) acknowledged appends from writer \(probe.pid) (got \(acked))")
            }
            take(line)
        }
        return acked
    }

    /// The next stats line (waits up to 30 s); nil if the writer ended.
    func nextStats() throws -> Stats? {
        let seen = stats.count
        while stats.count == seen {
            guard let line = try probe.readLine(seconds: 30) else { return nil }
            take(line)
        }
        return stats.last
    }

    /// Waits until a stats line printed after `ack` appends satisfies `condition`.
    func waitForStats(after ack: Int, seconds: Double = 120, _ condition: (Stats) -> Bool) throws -> Stats {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            guard let s = try nextStats() else { break }
            if acked >= ack && condition(s) { return s }
        }
        throw ProbeTimeout(what: "stats of writer \(probe.pid) after \(ack) appends meeting the condition (last: \(stats.last.map { "\($0)" } ?? "none"), acked \(acked))")
    }
}

/// A temporary directory with a store path in it, removed at deinit.
final class TemporaryStore {
    let path: String
    var store: String { path + "/store" }

    init() throws {
        var template = Array("/tmp/scrollback-live-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ProbeTimeout(what: "mkdtemp")
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Every file of the store and its bytes.
    func snapshotFiles() throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: store) {
            result[name] = FileManager.default.contents(atPath: store + "/" + name)
        }
        return result
    }
}

/// The built `scrollback` executable.
enum Tool {
    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "status \(status); stdout: \(stdout.prefix(500)); stderr: \(stderr.prefix(500))" }
    }

    static let executable: String = {
        var directory = URL(fileURLWithPath: Probe.executable).deletingLastPathComponent()
        var candidates: [String] = []
        for _ in 0..<2 {
            candidates.append(directory.appendingPathComponent("scrollback").path)
            directory = directory.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    /// A started process whose output goes to files.
    final class Running {
        let process = Process()
        let directory: String
        init(_ args: [String], stdin: String) throws {
            var template = Array("/tmp/scrollback-run-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw ProbeTimeout(what: "mkdtemp")
            }
            directory = String(cString: made)
            try stdin.write(toFile: directory + "/in", atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: directory + "/out", contents: nil)
            FileManager.default.createFile(atPath: directory + "/err", contents: nil)
            process.executableURL = URL(fileURLWithPath: Tool.executable)
            process.arguments = args
            process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: directory + "/in"))
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/out"))
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/err"))
            try process.run()
        }

        /// Waits (up to 120 s, then SIGKILL) and collects the output.
        func finish() -> Result {
            let deadline = Date().addingTimeInterval(120)
            while process.isRunning && Date() < deadline { usleep(2000) }
            if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            let out = (try? String(contentsOfFile: directory + "/out", encoding: .utf8)) ?? ""
            let err = (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: directory)
            return Result(status: process.terminationStatus, stdout: out, stderr: err)
        }
    }

    static func start(_ args: [String], stdin: String = "") throws -> Running { try Running(args, stdin: stdin) }

    static func run(_ args: [String], stdin: String = "") throws -> Result { try start(args, stdin: stdin).finish() }
}

/// A `scrollback exec` process driven one line at a time.
final class ToolSession {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var lines = PipeLines()
    var pid: Int32 { process.processIdentifier }

    init(_ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: Tool.executable)
        process.arguments = args
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    deinit { kill() }

    /// Sends one request line and returns the answer line (waits up to 60 s).
    func send(_ line: String) throws -> String {
        try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
        switch lines.next(from: output.fileHandleForReading.fileDescriptor, until: Date().addingTimeInterval(60)) {
        case .line(let answer): return answer
        case .ended: throw ProbeTimeout(what: "an answer of scrollback (pid \(pid)): it ended")
        case .timedOut: throw ProbeTimeout(what: "an answer of scrollback \(process.arguments ?? []) (pid \(pid))")
        }
    }

    /// Closes stdin and waits (up to 60 s); the exit status.
    func finish() throws -> Int32 {
        try input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(2000) }
        if process.isRunning { kill() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func kill() {
        if process.isRunning { Glibc.kill(pid, SIGKILL) }
    }

    func waitForExit() -> Probe.Exit {
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning {
            if Date() > deadline { return .stillRunning }
            usleep(2000)
        }
        return process.terminationReason == .uncaughtSignal ? .killed(process.terminationStatus) : .exited(process.terminationStatus)
    }
}
