import Foundation
import Testing

/// Runs the built `scrollback` executable. It is looked up next to the test bundle (the
/// build products directory), never on PATH; SCROLLBACK_CLI overrides the location.
enum CLI {
    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stdout.hasSuffix("\n") ? 1 : 0).map(String.init) }
        var description: String { "status \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
    }

    static let executable: String = {
        if let path = ProcessInfo.processInfo.environment["SCROLLBACK_CLI"] { return path }
        var candidates: [String] = []
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        var directory = me.deletingLastPathComponent()
        // The test binary may sit inside a bundle directory (macOS: X.xctest/Contents/MacOS).
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("scrollback").path)
            directory = directory.deletingLastPathComponent()
        }
        for bundle in Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("scrollback").path)
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }()

    /// Runs `scrollback args…` with `stdin` as its standard input; output goes through files
    /// (no pipe can fill up and block).
    static func run(_ args: [String], stdin: String = "", environment: [String: String]? = nil) throws -> Result {
        try run(executable: executable, args, stdin: Data(stdin.utf8), environment: environment)
    }

    static func run(executable: String, _ args: [String], stdin: Data, environment: [String: String]? = nil) throws -> Result {
        let dir = try TemporaryDirectory(prefix: "run")
        let inPath = dir.path + "/stdin", outPath = dir.path + "/stdout", errPath = dir.path + "/stderr"
        try stdin.write(to: URL(fileURLWithPath: inPath))
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        if let environment { process.environment = environment }
        let input = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let error = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        process.waitUntilExit()
        try input.close()
        try output.close()
        try error.close()
        let out = try String(contentsOfFile: outPath, encoding: .utf8)
        let err = try String(contentsOfFile: errPath, encoding: .utf8)
        return Result(status: process.terminationStatus, stdout: out, stderr: err)
    }

    /// Runs a shell command line (for ulimit); `$SCROLLBACK` names the executable.
    static func shell(_ script: String, stdin: String = "") throws -> Result {
        var environment = ProcessInfo.processInfo.environment
        environment["SCROLLBACK"] = executable
        return try run(executable: "/bin/sh", ["-c", script], stdin: Data(stdin.utf8), environment: environment)
    }
}

/// An `exec` process driven line by line: each request is sent only after the previous
/// answer arrived (so the tool must flush each answer while waiting for input).
final class ExecSession {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()
    let errorPath: String
    private let directory: TemporaryDirectory

    init(store: String) throws {
        directory = try TemporaryDirectory(prefix: "session")
        errorPath = directory.path + "/stderr"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: CLI.executable)
        process.arguments = ["exec", store]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        try process.run()
    }

    /// Sends one line and returns the one answer line.
    func send(_ line: String) throws -> String {
        try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let answer = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending = Data(pending[(newline + 1)...])
                return answer
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw CocoaError(.fileReadUnknown) }
            pending.append(chunk)
        }
    }

    /// Closes stdin and waits; returns the exit status.
    func finish() throws -> Int32 {
        try input.fileHandleForWriting.close()
        _ = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A directory under the system temporary directory, removed on deinit.
final class TemporaryDirectory {
    let path: String

    init(prefix: String = "scrollback-cli") throws {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(cString: created)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Parses one JSON line with Foundation (an independent check of the tool's own encoder).
func jsonObject(_ line: String) -> [String: Any]? {
    guard let data = line.data(using: .utf8) else { return nil }
    return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
}

/// The error code of an error line, or nil if the line is not the contract's error shape.
func errorCode(_ line: String) -> String? {
    guard line.hasPrefix("{\"ok\":false,\"error\":{\"code\":\""), line.hasSuffix("\"}}"), !line.contains("\n"),
          let object = jsonObject(line), object["ok"] as? Bool == false, object.count == 2,
          let error = object["error"] as? [String: Any], error.count == 2,
          let code = error["code"] as? String, error["message"] is String else { return nil }
    return code
}
