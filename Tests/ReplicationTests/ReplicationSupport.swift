import Foundation
import Scrollback
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Finds an executable on PATH (nil when missing).
func executableOnPath(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/usr/sbin").split(separator: ":") {
        let path = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

/// The built `scrollback` executable, next to the test binary (SCROLLBACK_CLI overrides).
let scrollbackExecutable: String = {
    if let path = ProcessInfo.processInfo.environment["SCROLLBACK_CLI"] { return path }
    let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    var directory = me.deletingLastPathComponent()
    var candidates: [String] = []
    for _ in 0..<4 {
        candidates.append(directory.appendingPathComponent("scrollback").path)
        directory = directory.deletingLastPathComponent()
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
}()

struct ReplicationTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory removed at deinit.
final class Scratch {
    let path: String
    init(_ prefix: String) throws {
        var template = Array("/tmp/scrollback-\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ReplicationTestFailure("mkdtemp failed")
        }
        path = String(cString: made)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A child process with a stdin pipe and stdout/stderr read line by line (stderr also kept).
final class Child {
    let name: String
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private var lines = PipeLines()
    private let errorLog = ErrorLog()

    init(_ name: String, _ executable: String, _ arguments: [String]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let handle = errors.fileHandleForReading
        let log = errorLog
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                log.append(data)
            }
        }
    }

    var stderrText: String { errorLog.text }
    var pid: Int32 { process.processIdentifier }

    func send(_ lines: [String]) throws {
        let text = lines.map { $0 + "\n" }.joined()
        try input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    }

    func closeInput() throws { try input.fileHandleForWriting.close() }

    /// The next stdout line, or nil when the process closed its output or `seconds` passed.
    func nextLine(within seconds: Double) -> String? {
        guard case .line(let line) = lines.next(from: output.fileHandleForReading.fileDescriptor,
                                                until: Date().addingTimeInterval(seconds)) else { return nil }
        return line
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits until stderr contains `text` (true), the process exits or `seconds` pass (false).
    func waitForStderr(containing text: String, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stderrText.contains(text) { return true }
            if !process.isRunning { return stderrText.contains(text) }
            usleep(50_000)
        }
        return false
    }

    /// Waits for the exit (SIGKILL after `seconds`); the exit status.
    @discardableResult
    func wait(within seconds: Double) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// What a child wrote on stderr (appended by a reading thread).
final class ErrorLog: @unchecked Sendable {
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    func append(_ data: Data) { lock.withLock { bytes.append(contentsOf: data) } }
    var text: String { lock.withLock { String(decoding: bytes, as: UTF8.self) } }
}

/// `count` distinct TCP ports the kernel reports free on loopback (bound together, then released).
func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { for fd in sockets { close(fd) } }
    var ports: [Int] = []
    for _ in 0..<count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ReplicationTestFailure("socket failed") }
        sockets.append(fd)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw ReplicationTestFailure("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(fd, $0, &length) } }
        ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
}

/// NATS servers with JetStream on loopback ports, clustered when more than one.
final class NATSCluster {
    let scratch: Scratch
    var servers: [Child?]
    let clientPorts: [Int]
    var urls: String { clientPorts.map { "nats://127.0.0.1:\($0)" }.joined(separator: ",") }

    /// `configuration`: text of a server configuration file every node also reads.
    init(nodes: Int, executable: String, configuration: String? = nil) throws {
        scratch = try Scratch("nats")
        let ports = try freePorts(2 * nodes)
        clientPorts = Array(ports[..<nodes])
        let routePorts = Array(ports[nodes...])
        servers = []
        for node in 0..<nodes {
            var arguments = ["-a", "127.0.0.1", "-p", "\(clientPorts[node])", "-js", "-sd", "\(scratch.path)/n\(node)",
                             "-n", "n\(node)"]
            if let configuration {
                let file = "\(scratch.path)/n\(node).conf"
                try configuration.write(toFile: file, atomically: true, encoding: .utf8)
                arguments += ["-c", file]
            }
            if nodes > 1 {
                let routes = routePorts.enumerated().filter { $0.offset != node }.map { "nats://127.0.0.1:\($0.element)" }
                arguments += ["--cluster_name", "sb", "--cluster", "nats://127.0.0.1:\(routePorts[node])",
                              "--routes", routes.joined(separator: ",")]
            }
            servers.append(try Child("nats-\(node)", executable, arguments))
        }
    }

    func kill(node: Int) {
        servers[node]?.signal(SIGKILL)
        servers[node]?.wait(within: 5)
        servers[node] = nil
    }

    deinit {
        for server in servers { server?.signal(SIGKILL) }
    }
}

/// Runs `scrollback args…` to its end; (status, stdout, stderr).
func runTool(_ arguments: [String], stdin: String = "", within seconds: Double = 60) throws -> (Int32, String, String) {
    let child = try Child("scrollback", scrollbackExecutable, arguments)
    if !stdin.isEmpty { try child.send([stdin]) }
    try child.closeInput()
    var lines: [String] = []
    let deadline = Date().addingTimeInterval(seconds)
    while let line = child.nextLine(within: max(0.1, deadline.timeIntervalSinceNow)) { lines.append(line) }
    let status = child.wait(within: max(1, deadline.timeIntervalSinceNow))
    return (status, lines.joined(separator: "\n"), child.stderrText)
}

/// Compares every primitive of two stores over the conversations and users a workload used.
func expectEqualStores(_ a: MessageStore, _ b: MessageStore, conversations: [String], users: [String], ids: [String],
                       _ what: String) throws {
    for conversation in conversations {
        let left = try a.page(in: conversation, offset: 0, limit: 10_000, order: .oldestFirst)
        let right = try b.page(in: conversation, offset: 0, limit: 10_000, order: .oldestFirst)
        #expect(left.map(\.id) == right.map(\.id), "\(what): conversation \(conversation) (\(left.count) vs \(right.count) messages)")
        if left.map(\.id) == right.map(\.id) {
            for (l, r) in zip(left, right) where l != r { Issue.record("\(what): message \(l.id): \(l) vs \(r)") }
        }
        #expect(try a.count(in: conversation, after: -1) == b.count(in: conversation, after: -1), "\(what): count \(conversation)")
        for user in users {
            #expect(try a.unreadCount(user: user, in: conversation) == b.unreadCount(user: user, in: conversation),
                    "\(what): unread \(user) \(conversation)")
            #expect(try a.readMarker(user: user, conversation: conversation) == b.readMarker(user: user, conversation: conversation),
                    "\(what): marker \(user) \(conversation)")
        }
    }
    #expect(try a.conversations(limit: 1000) == b.conversations(limit: 1000), "\(what): conversation list")
    #expect(try a.feed(conversations, limit: 1000) == b.feed(conversations, limit: 1000), "\(what): feed")
    for user in users {
        #expect(try a.inbox(user: user, limit: 1000) == b.inbox(user: user, limit: 1000), "\(what): inbox of \(user)")
    }
    for id in ids { #expect(try a.message(id: id) == b.message(id: id), "\(what): message \(id)") }
    #expect(try a.statistics.messages == b.statistics.messages, "\(what): message count")
}
