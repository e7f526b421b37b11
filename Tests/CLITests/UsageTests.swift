import Foundation
import Scrollback
import Testing

/// Help text, exit codes and one-line errors: none of these need a working store.
@Suite struct UsageTests {
    static let commands = [
        "generate", "import", "export", "query", "exec", "stats", "verify", "checkpoint", "compact", "backup", "upgrade", "dump",
    ]

    @Test func executableIsBuilt() {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.executable), "no scrollback at \(CLI.executable)")
    }

    /// `--version` prints the library's version (`Scrollback.version`), exit 0.
    @Test func versionFlagPrintsTheLibraryVersion() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == Scrollback.version + "\n")
        #expect(result.stderr.isEmpty)
    }

    @Test func rootHelpListsEveryCommand() throws {
        let result = try CLI.run(["--help"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("USAGE: scrollback"))
        for command in Self.commands {
            #expect(result.stdout.contains("  \(command)"), "root help does not list \(command)")
        }
        #expect(result.stdout.contains("Exit status: 0 on success, 1 on a runtime error"))
    }

    @Test(arguments: commands)
    func everyCommandHasHelp(_ command: String) throws {
        let result = try CLI.run([command, "--help"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("OVERVIEW:"), "\(result)")
        #expect(result.stdout.contains("USAGE: scrollback \(command)"), "\(result)")
        #expect(result.stderr.isEmpty)
        let viaHelp = try CLI.run(["help", command])
        #expect(viaHelp.status == 0)
        #expect(viaHelp.stdout.contains("USAGE: scrollback \(command)"))
    }

    /// Bad usage: exit 2, nothing on stdout, exactly one line on stderr.
    @Test(arguments: [
        ["bogus"],
        ["query"],
        ["query", "/nonexistent", "latest"],
        ["query", "/nonexistent", "latest", "a", "b"],
        ["query", "/nonexistent", "sideways", "c"],
        ["query", "/nonexistent", "latest", "c", "--limit", "ten"],
        ["query", "/nonexistent", "range", "c", "--from", "2024-13-40", "--through", "0"],
        ["query", "/nonexistent", "range", "c", "--from", "0"],
        ["query", "/nonexistent", "count", "c"],
        ["query", "/nonexistent", "latest", "c", "--after", "5"],
        ["query", "/nonexistent", "page", "c", "--order", "upward"],
        ["query", "/nonexistent", "unread", "onlyuser"],
        ["query", "/nonexistent", "feed"],
        ["query", "/nonexistent", "conversations", "extra"],
        ["generate", "--out", "/tmp/x.jsonl"],
        ["generate", "--messages", "-5", "--out", "/tmp/x.jsonl"],
        ["generate", "--messages", "5"],
        ["import", "/nonexistent"],
        ["import", "/nonexistent", "f", "--format", "csv"],
        ["import", "/nonexistent", "f", "--batch-size", "0"],
        ["export"],
        ["exec"],
        ["exec", "a", "b"],
        ["stats"],
        ["verify"],
        ["checkpoint"],
        ["compact"],
        ["backup", "only-one"],
        ["dump", "/nonexistent"],
        ["dump", "/nonexistent", "page"],
        ["dump", "/nonexistent", "pages", "3"],
        ["dump", "/nonexistent", "tables"],
        ["dump", "/nonexistent", "meta", "--segment", "1"],
    ])
    func badUsageExitsTwo(_ arguments: [String]) throws {
        let result = try CLI.run(arguments)
        #expect(result.status == 2, "\(arguments): \(result)")
        #expect(result.stdout.isEmpty, "\(arguments): \(result)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(arguments): \(result)")
        #expect(result.stderr.hasPrefix("scrollback: usage error: "), "\(arguments): \(result)")
    }

    /// Runtime errors: exit 1 and one line on stderr. A missing store is never created by the
    /// commands that only read or maintain one.
    @Test(arguments: [
        ["export", "STORE"],
        ["query", "STORE", "latest", "c"],
        ["stats", "STORE"],
        ["verify", "STORE"],
        ["checkpoint", "STORE"],
        ["compact", "STORE"],
        ["backup", "DEST", "STORE"],
        ["dump", "STORE", "meta"],
        ["dump", "STORE", "pages"],
        ["dump", "STORE", "page", "2"],
    ])
    func missingStoreIsARuntimeError(_ template: [String]) throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("missing")
        let arguments = template.map { $0 == "STORE" ? store : $0 == "DEST" ? dir.file("dest") : $0 }
        let result = try CLI.run(arguments)
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr == "scrollback: error: no Scrollback store at \(store)\n", "\(result)")
        #expect(!FileManager.default.fileExists(atPath: store), "\(template[0]) created a store")
        #expect(!FileManager.default.fileExists(atPath: dir.file("dest")))
    }

    @Test func importOfAMissingFileIsARuntimeError() throws {
        let dir = try TemporaryDirectory()
        let result = try CLI.run(["import", dir.file("store"), dir.file("nothing.jsonl")])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("nothing.jsonl"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("store")), "a bad input must not create a store")
        let directory = try CLI.run(["import", dir.file("store"), dir.path])
        #expect(directory.status == 1 && directory.stderr.contains("directory"), "\(directory)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("store")))
    }

    @Test func generateWritesDeterministicJSONL() throws {
        let dir = try TemporaryDirectory()
        let a = dir.file("a.jsonl"), b = dir.file("b.jsonl"), c = dir.file("c.jsonl")
        for (path, seed) in [(a, "7"), (b, "7"), (c, "8")] {
            let result = try CLI.run(["generate", "--messages", "500", "--seed", seed, "--out", path])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.hasPrefix("generated 500 messages into \(path)"))
        }
        let first = try String(contentsOfFile: a, encoding: .utf8)
        #expect(first == (try String(contentsOfFile: b, encoding: .utf8)))
        #expect(first != (try String(contentsOfFile: c, encoding: .utf8)))
        let lines = first.split(separator: "\n")
        #expect(lines.count == 500)
        var conversations: [String: Int] = [:]
        var previous = Int64.min
        for line in lines {
            let object = try #require(jsonObject(String(line)))
            let required: Set<String> = ["id", "conversation", "sender", "createdAt", "kind", "body", "edited"]
            #expect(Set(object.keys) == required || Set(object.keys) == required.union(["replyTo"]), "\(line)")
            let createdAt = try #require(object["createdAt"] as? Int64)
            #expect(createdAt >= previous)
            previous = createdAt
            let body = try #require(object["body"] as? String)
            #expect((20...200).contains(body.count))
            #expect((object["sender"] as? String)?.hasPrefix("synuser") == true)
            conversations[object["conversation"] as? String ?? "", default: 0] += 1
        }
        // Skew: the largest conversation holds far more than an even share.
        let largest = conversations.values.max() ?? 0
        #expect(largest * conversations.count > 2 * lines.count)
    }
}
