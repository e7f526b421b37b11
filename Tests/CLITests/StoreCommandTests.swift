import CSQLite
import Foundation
import Testing

/// Every store command once, end to end, against the built executable.
@Suite struct StoreCommandTests {
    /// A store with a few conversations, an edit, a delete and a reply.
    static func smallStore(_ dir: TemporaryDirectory) throws -> String {
        let store = dir.file("store")
        let lines = [
            ExecContractTests.append("a1", "general", at: 1_714_555_800_000, sender: "ann", body: "morning"),
            ExecContractTests.append("a2", "general", at: 1_714_555_860_000, sender: "bo", body: "hi ann", replyTo: "a1"),
            ExecContractTests.append("a3", "general", at: 1_714_555_920_000, sender: "ann", kind: "image", body: "cat.png"),
            ExecContractTests.append("b1", "random", at: 1_714_555_830_000, sender: "cy", body: "first"),
            ExecContractTests.append("b2", "random", at: 1_714_555_890_000, sender: "ann", body: "typo"),
            "{\"op\":\"edit\",\"id\":\"b2\",\"body\":\"fixed\"}",
            ExecContractTests.append("b3", "random", at: 1_714_555_895_000, sender: "cy", body: "oops"),
            "{\"op\":\"delete\",\"id\":\"b3\"}",
            "{\"op\":\"markRead\",\"user\":\"bo\",\"conversation\":\"general\",\"through\":\"a1\"}",
        ]
        let result = try CLI.run(["exec", store], stdin: lines.joined(separator: "\n") + "\n")
        #expect(result.status == 0, "\(result)")
        #expect(result.stdoutLines.allSatisfy { $0.hasPrefix("{\"ok\":true") }, "\(result)")
        return store
    }

    @Test func exportWritesOldestFirstPerConversation() throws {
        let dir = try TemporaryDirectory()
        let store = try Self.smallStore(dir)
        let all = try CLI.run(["export", store])
        #expect(all.status == 0, "\(all)")
        #expect(all.stdoutLines == [
            ExecContractTests.message("a1", "general", at: 1_714_555_800_000, sender: "ann", body: "morning"),
            ExecContractTests.message("a2", "general", at: 1_714_555_860_000, sender: "bo", body: "hi ann", replyTo: "a1"),
            ExecContractTests.message("a3", "general", at: 1_714_555_920_000, sender: "ann", kind: "image", body: "cat.png"),
            ExecContractTests.message("b1", "random", at: 1_714_555_830_000, sender: "cy", body: "first"),
            ExecContractTests.message("b2", "random", at: 1_714_555_890_000, sender: "ann", body: "fixed", edited: true),
        ], "\(all)")
        let one = try CLI.run(["export", store, "--conversation", "random"])
        #expect(one.stdoutLines.count == 2)
        #expect(one.stdoutLines.allSatisfy { $0.contains("\"conversation\":\"random\"") })
        let none = try CLI.run(["export", store, "--conversation", "nobody"])
        #expect(none.status == 0 && none.stdout.isEmpty)
    }

    /// More conversations than one `conversations(limit:)` call returns: export still
    /// covers every one of them.
    @Test func exportCoversMoreConversationsThanOneListing() throws {
        let dir = try TemporaryDirectory()
        let count = 10_050
        var text = ""
        for i in 0..<count {
            text += "{\"id\":\"m\(i)\",\"conversation\":\"conv\(i)\",\"sender\":\"u\",\"createdAt\":\(i),\"kind\":\"text\",\"body\":\"b\"}\n"
        }
        let file = dir.file("many.jsonl")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let store = dir.file("store")
        let imported = try CLI.run(["import", store, file, "--batch-size", "5000"])
        #expect(imported.status == 0, "\(imported)")
        let exported = try CLI.run(["export", store])
        #expect(exported.status == 0)
        let lines = exported.stdoutLines
        #expect(lines.count == count)
        #expect(Set(lines).count == count)
    }

    @Test func exportImportRoundTripIsEqual() throws {
        let dir = try TemporaryDirectory()
        let source = dir.file("source")
        let generated = try CLI.run(["generate", "--messages", "3000", "--seed", "11", "--out", source])
        #expect(generated.status == 0, "\(generated)")
        // Edits, deletes and equal timestamps must survive too. Ids and conversations come
        // from the generated data (whatever generator `generate` uses).
        let original = try CLI.run(["export", source]).stdoutLines.compactMap(jsonObject)
        #expect(original.count == 3000)
        let ids = original.compactMap { $0["id"] as? String }
        var conversations: [String] = []
        for object in original {
            if let c = object["conversation"] as? String, !conversations.contains(c) { conversations.append(c) }
        }
        let edited = ids[10], deleted = ids[11], room = conversations[0]
        let changes = [
            "{\"op\":\"edit\",\"id\":\"\(edited)\",\"body\":\"edited body\"}",
            "{\"op\":\"delete\",\"id\":\"\(deleted)\"}",
            ExecContractTests.append("tie1", room, at: 5, body: "first at 5"),
            ExecContractTests.append("tie2", room, at: 5, body: "second at 5"),
            ExecContractTests.append("tie0", room, at: 5, body: "third at 5", replyTo: "tie1"),
        ]
        let applied = try CLI.run(["exec", source], stdin: changes.joined(separator: "\n"))
        #expect(applied.stdoutLines.allSatisfy { $0.hasPrefix("{\"ok\":true") }, "\(applied)")
        let first = try CLI.run(["export", source])
        #expect(first.status == 0)
        #expect(first.stdoutLines.count == 3000 - 1 + 3)
        let file = dir.file("export.jsonl")
        try first.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        let copy = dir.file("copy")
        let imported = try CLI.run(["import", copy, file])
        #expect(imported.status == 0, "\(imported)")
        #expect(imported.stdout.hasPrefix("3002 messages imported in "), "\(imported)")
        let second = try CLI.run(["export", copy])
        #expect(second.stdout == first.stdout)
        let editedLine = first.stdoutLines.first { $0.hasPrefix("{\"id\":\"\(edited)\",") }
        #expect(editedLine.map { $0.contains("\"body\":\"edited body\"") && $0.hasSuffix(",\"edited\":true}") } == true)
        #expect(!first.stdout.contains("{\"id\":\"\(deleted)\","))
        let ties = second.stdoutLines.filter { $0.contains("\"createdAt\":5,") }.compactMap { jsonObject($0)?["id"] as? String }
        #expect(ties == ["tie1", "tie2", "tie0"])
        // The stores answer alike.
        let feed = Array(conversations.prefix(5))
        for query in [["conversations", "--limit", "50"], ["feed"] + feed + ["--limit", "30"], ["heads"] + feed] {
            let a = try CLI.run(["query", source] + query + ["--json"])
            let b = try CLI.run(["query", copy] + query + ["--json"])
            #expect(a.status == 0 && a.stdout == b.stdout, "\(a)\n\(b)")
        }
        // Importing again changes nothing.
        let again = try CLI.run(["import", copy, file])
        #expect(again.stdout.hasPrefix("0 messages imported, 3002 already present"), "\(again)")
    }

    @Test func importJSONLReportsBadLinesWithTheirNumbers() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("in.jsonl")
        let lines = [
            "{\"id\":\"j1\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1000,\"kind\":\"text\",\"body\":\"one\"}",
            "{\"id\":\"j2\",\"conversation\":\"c\",",
            "{\"id\":\"j3\",\"conversationId\":\"c\",\"senderId\":\"s\",\"createdAt\":\"1970-01-01T00:00:02Z\",\"type\":\"IMAGE\",\"content\":\"three\"}",
            "",
            "{\"id\":\"j5\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":5000,\"kind\":\"sticker\",\"body\":\"five\"}",
            "{\"id\":\"\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":6000,\"body\":\"empty id\"}",
            "{\"id\":\"j7\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":7000,\"body\":\"seven\"}",
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let store = dir.file("store")
        let result = try CLI.run(["import", store, file])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("3 messages imported, 3 bad records skipped in "), "\(result)")
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors.count == 3, "\(result)")
        #expect(errors.count == 3 && errors[0].hasPrefix("line 2: ") && errors[1].hasPrefix("line 5: ") && errors[2].hasPrefix("line 6: "), "\(errors)")
        let exported = try CLI.run(["export", store])
        #expect(exported.stdoutLines == [
            ExecContractTests.message("j1", "c", at: 1000, sender: "s", body: "one"),
            ExecContractTests.message("j3", "c", at: 2000, sender: "s", kind: "image", body: "three"),
            ExecContractTests.message("j7", "c", at: 7000, sender: "s", body: "seven"),
        ], "\(exported)")

        // --strict stops at line 2 after importing line 1.
        let strictStore = dir.file("strict")
        let strict = try CLI.run(["import", strictStore, file, "--strict"])
        #expect(strict.status == 1, "\(strict)")
        #expect(strict.stderr.hasPrefix("line 2: "), "\(strict)")
        #expect(strict.stderr.split(separator: "\n").count == 1)
        #expect(try CLI.run(["export", strictStore]).stdoutLines.count == 1)

        // stdin works too.
        let piped = try CLI.run(["import", dir.file("piped"), "-"], stdin: lines[0] + "\n" + lines[6])
        #expect(piped.status == 0 && piped.stdout.hasPrefix("2 messages imported"), "\(piped)")
    }

    /// Records only the store rejects (an empty id, a body over the limit) are found inside
    /// their batch and reported with their line numbers; the rest of the batch is written.
    @Test func importFindsStoreRejectedRecordsInsideBatches() throws {
        let dir = try TemporaryDirectory()
        let bad: Set<Int> = [3, 1500, 1501, 2499]
        var text = ""
        for line in 1...2500 {
            let id = bad.contains(line) ? "" : "m\(line)"
            let body = line == 1501 ? String(repeating: "x", count: 70_000) : "b"
            text += "{\"id\":\"\(id)\",\"conversation\":\"c\(line % 7)\",\"sender\":\"u\",\"createdAt\":\(line),\"body\":\"\(body)\"}\n"
        }
        let file = dir.file("in.jsonl")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let store = dir.file("store")
        let result = try CLI.run(["import", store, file])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("2496 messages imported, 4 bad records skipped"), "\(result)")
        let reported = result.stderr.split(separator: "\n").map { $0.split(separator: ":").first.map(String.init) ?? "" }
        #expect(reported == ["line 3", "line 1500", "line 1501", "line 2499"], "\(result)")
        let exported = try CLI.run(["export", store])
        #expect(exported.stdoutLines.count == 2496)
    }

    static func makeSQLite(_ path: String, _ sql: String) throws {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { throw CocoaError(.fileWriteUnknown) }
        defer { sqlite3_close(db) }
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "?"
            sqlite3_free(message)
            Issue.record("sqlite: \(text)")
        }
    }

    @Test func importSQLiteWithTheReferenceSchema() throws {
        let dir = try TemporaryDirectory()
        let db = dir.file("chat.db")
        try Self.makeSQLite(db, """
            CREATE TABLE messages (id TEXT PRIMARY KEY, conversationId TEXT NOT NULL, senderId TEXT NOT NULL,
                                   createdAt, type TEXT, content TEXT);
            INSERT INTO messages VALUES ('s1', 'room', 'synuser1', 1714555800000, 'TEXT', 'hello');
            INSERT INTO messages VALUES ('s2', 'room', 'synuser2', '2024-05-01T09:31:00Z', 'IMAGE', 'pic');
            INSERT INTO messages VALUES ('s3', 'dm', 'synuser1', '2024-05-01 09:32:00.500', 'text', 'x');
            INSERT INTO messages VALUES ('s4', 'room', 'synuser3', 'garbage', 'TEXT', 'bad time');
            INSERT INTO messages VALUES ('s5', 'dm', 'synuser2', 1714555900000, 'sticker', 'bad kind');
            INSERT INTO messages VALUES (6, 'dm', 'synuser9', 1714555950000.0, 'VIDEO', NULL);
            """)
        let store = dir.file("store")
        let result = try CLI.run(["import", store, db])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("4 messages imported, 2 bad records skipped"), "\(result)")
        let errors = result.stderr.split(separator: "\n")
        #expect(errors.count == 2 && errors[0].hasPrefix("row 4: ") && errors[1].hasPrefix("row 5: "), "\(result)")
        let exported = try CLI.run(["export", store])
        #expect(exported.stdoutLines == [
            ExecContractTests.message("s3", "dm", at: 1_714_555_920_500, sender: "synuser1", body: "x"),
            ExecContractTests.message("6", "dm", at: 1_714_555_950_000, sender: "synuser9", kind: "video", body: ""),
            ExecContractTests.message("s1", "room", at: 1_714_555_800_000, sender: "synuser1", body: "hello"),
            ExecContractTests.message("s2", "room", at: 1_714_555_860_000, sender: "synuser2", kind: "image", body: "pic"),
        ], "\(exported)")

        let strict = try CLI.run(["import", dir.file("strict"), db, "--strict"])
        #expect(strict.status == 1 && strict.stderr.hasPrefix("row 4: "), "\(strict)")
        #expect(try CLI.run(["export", dir.file("strict")]).stdoutLines.count == 3)
    }

    @Test func importSQLiteWithNamedColumns() throws {
        let dir = try TemporaryDirectory()
        let db = dir.file("other.sqlite")
        try Self.makeSQLite(db, """
            CREATE TABLE "chat log" (mid INTEGER PRIMARY KEY, room TEXT, author TEXT, ts INTEGER, kind INTEGER, txt TEXT, parent TEXT);
            INSERT INTO "chat log" VALUES (1, 'r', 'u1', 10, 1, 'a', NULL);
            INSERT INTO "chat log" VALUES (2, 'r', 'u2', 20, 3, 'b', '1');
            """)
        let store = dir.file("store")
        let args = ["import", store, db, "--format", "sqlite", "--table", "chat log", "--id-column", "mid",
                    "--conversation-column", "room", "--sender-column", "author", "--created-at-column", "ts",
                    "--type-column", "kind", "--content-column", "txt", "--reply-to-column", "parent"]
        let result = try CLI.run(args)
        #expect(result.status == 0, "\(result)")
        #expect(try CLI.run(["export", store]).stdoutLines == [
            ExecContractTests.message("1", "r", at: 10, sender: "u1", body: "a"),
            ExecContractTests.message("2", "r", at: 20, sender: "u2", kind: "file", body: "b", replyTo: "1"),
        ])
        // Wrong table name: a runtime error naming the table.
        let wrong = try CLI.run(["import", store, db])
        #expect(wrong.status == 1, "\(wrong)")
        #expect(wrong.stderr.contains("messages") && wrong.stderr.split(separator: "\n").count == 1, "\(wrong)")
    }

    @Test func queryPrintsTablesAndTheExecLineWithJSON() throws {
        let dir = try TemporaryDirectory()
        let store = try Self.smallStore(dir)
        let latest = try CLI.run(["query", store, "latest", "general", "--limit", "2"])
        #expect(latest.status == 0, "\(latest)")
        let rows = latest.stdoutLines
        #expect(rows.count == 4, "\(latest)")
        #expect(rows.first?.hasPrefix("CREATED AT") == true)
        #expect(rows.count == 4 && rows[1].hasPrefix("2024-05-01T09:32:00.000Z  general") && rows[1].hasSuffix("cat.png"), "\(latest)")
        #expect(rows.count == 4 && rows[2].hasSuffix("hi ann (reply to a1)"), "\(latest)")
        #expect(rows.last == "(2 messages)")

        // --json is exactly what exec answers.
        let pairs: [([String], String)] = [
            (["latest", "general", "--limit", "2"], "{\"op\":\"latest\",\"conversation\":\"general\",\"limit\":2}"),
            (["page", "general", "--limit", "2", "--order", "oldestFirst"], "{\"op\":\"page\",\"conversation\":\"general\",\"limit\":2,\"order\":\"oldestFirst\"}"),
            (["offset", "general", "--offset", "1", "--limit", "5"], "{\"op\":\"offset\",\"conversation\":\"general\",\"offset\":1,\"limit\":5,\"order\":\"newestFirst\"}"),
            (["range", "general", "--from", "2024-05-01T09:30:00Z", "--through", "1714555860000"], "{\"op\":\"range\",\"conversation\":\"general\",\"from\":1714555800000,\"through\":1714555860000,\"order\":\"oldestFirst\"}"),
            (["count", "general", "--after", "2024-05-01T09:30:30Z"], "{\"op\":\"count\",\"conversation\":\"general\",\"after\":1714555830000}"),
            (["unread", "bo", "general"], "{\"op\":\"unread\",\"user\":\"bo\",\"conversation\":\"general\"}"),
            (["feed", "general", "random", "--limit", "3"], "{\"op\":\"feed\",\"conversations\":[\"general\",\"random\"],\"limit\":3}"),
            (["heads", "random", "nobody", "general"], "{\"op\":\"heads\",\"conversations\":[\"random\",\"nobody\",\"general\"]}"),
            (["conversations"], "{\"op\":\"conversations\",\"limit\":20}"),
            (["get", "b2"], "{\"op\":\"get\",\"id\":\"b2\"}"),
            (["get", "b3"], "{\"op\":\"get\",\"id\":\"b3\"}"),
        ]
        let execAnswers = try CLI.run(["exec", store], stdin: pairs.map(\.1).joined(separator: "\n")).stdoutLines
        #expect(execAnswers.count == pairs.count)
        for (i, (args, _)) in pairs.enumerated() where i < execAnswers.count {
            let json = try CLI.run(["query", store] + args + ["--json"])
            #expect(json.status == 0, "\(args): \(json)")
            #expect(json.stdoutLines == [execAnswers[i]], "\(args)")
            #expect(execAnswers[i].hasPrefix("{\"ok\":true"), "\(args): \(execAnswers[i])")
            let table = try CLI.run(["query", store] + args)
            #expect(table.status == 0 && !table.stdout.isEmpty, "\(args): \(table)")
        }
        #expect(try CLI.run(["query", store, "count", "general", "--after", "0"]).stdout == "3\n")
        #expect(try CLI.run(["query", store, "unread", "bo", "general"]).stdout == "2\n")
        let conversations = try CLI.run(["query", store, "conversations"])
        #expect(conversations.stdoutLines.first?.hasPrefix("CONVERSATION") == true)
        #expect(conversations.stdoutLines.count == 3)
        let page = try CLI.run(["query", store, "page", "general", "--limit", "1"])
        #expect(page.stdoutLines.last?.hasPrefix("next: ") == true && page.stdoutLines.last != "next: (none)", "\(page)")
        let cursor = String(page.stdoutLines.last?.dropFirst("next: ".count) ?? "")
        let rest = try CLI.run(["query", store, "page", "general", "--limit", "5", "--cursor", cursor])
        #expect(rest.stdoutLines.count == 5 && rest.stdoutLines.last == "next: (none)", "\(rest)")
        // Store errors are runtime errors: one line, exit 1.
        let bad = try CLI.run(["query", store, "page", "general", "--cursor", "forged"])
        #expect(bad.status == 1 && bad.stderr.hasPrefix("scrollback: error: invalid cursor") && bad.stderr.split(separator: "\n").count == 1, "\(bad)")
    }

    @Test func statsCheckpointCompactBackup() throws {
        let dir = try TemporaryDirectory()
        let store = try Self.smallStore(dir)
        let stats = try CLI.run(["stats", store])
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.stdoutLines.first?.hasPrefix("messages") == true && stats.stdout.contains("garbage ratio"), "\(stats)")
        let json = try CLI.run(["stats", store, "--json"])
        let object = try #require(jsonObject(json.stdout.trimmingCharacters(in: .newlines)), "\(json)")
        #expect(object["messages"] as? Int == 5)
        #expect(object["conversations"] as? Int == 2)

        let checkpoint = try CLI.run(["checkpoint", store])
        #expect(checkpoint.status == 0 && checkpoint.stdout == "checkpoint done\n", "\(checkpoint)")
        let compact = try CLI.run(["compact", store])
        #expect(compact.status == 0 && compact.stdout.hasPrefix("compacted "), "\(compact)")
        let compactJSON = try CLI.run(["compact", store, "--json"])
        #expect(jsonObject(compactJSON.stdout.trimmingCharacters(in: .newlines))?["segmentsRewritten"] is Int, "\(compactJSON)")

        let dest = dir.file("backup")
        let backup = try CLI.run(["backup", dest, store])
        #expect(backup.status == 0, "\(backup)")
        #expect(backup.stdout == "backup of \(store) written to \(dest)\n")
        #expect(try CLI.run(["verify", dest]).stdout == "ok\n")
        #expect(try CLI.run(["export", dest]).stdout == (try CLI.run(["export", store]).stdout))
        // The destination must be new or empty.
        let again = try CLI.run(["backup", dest, store])
        #expect(again.status == 1 && again.stderr.split(separator: "\n").count == 1, "\(again)")
    }

    @Test func verifyCatchesADamagedPageFile() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        #expect(try CLI.run(["generate", "--messages", "2000", "--seed", "5", "--out", store]).status == 0)
        let healthy = try CLI.run(["verify", store])
        #expect(healthy.status == 0 && healthy.stdout == "ok\n", "\(healthy)")
        let pageSize = try Damage.pageSize(store: store)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: store + "/pages")[.size] as? UInt64)
        let pages = size / UInt64(pageSize)
        #expect(pages > 2)
        try Damage.flipBytes(in: store + "/pages", pages: Array(2..<pages), pageSize: pageSize)
        let damaged = try CLI.run(["verify", store])
        #expect(damaged.status == 1, "\(damaged)")
        #expect(!damaged.stdout.isEmpty, "\(damaged)")
        #expect(damaged.stderr.hasPrefix("scrollback: verify found "), "\(damaged)")
        #expect(damaged.stderr.split(separator: "\n").count == 1)
    }

    @Test func dumpShowsMetaPagesAndLog() throws {
        let dir = try TemporaryDirectory()
        let store = try Self.smallStore(dir)
        #expect(try CLI.run(["checkpoint", store]).status == 0)
        let meta = try CLI.run(["dump", store, "meta"])
        #expect(meta.status == 0, "\(meta)")
        #expect(meta.stdout.contains("meta page 0 at offset 0: valid"), "\(meta)")
        #expect(meta.stdout.contains("meta page 1 at offset "), "\(meta)")
        #expect(meta.stdout.contains("valid, current"))
        #expect(meta.stdout.contains("magic") && meta.stdout.contains("SCRBPAGE"))
        #expect(meta.stdout.contains("tree 0 messages"))

        let pages = try CLI.run(["dump", store, "pages"])
        #expect(pages.status == 0, "\(pages)")
        #expect(pages.stdout.contains("current meta"))
        #expect(pages.stdout.contains("leaf"))
        #expect(!pages.stdout.contains("UNREACHABLE"), "\(pages)")
        #expect(!pages.stdout.contains("BAD"), "\(pages)")
        let leaf = pages.stdoutLines.compactMap { line -> String? in
            let cells = line.split(separator: " ")
            return cells.count > 2 && cells[1] == "leaf" ? String(cells[0]) : nil
        }.first
        let number = try #require(leaf, "\(pages)")
        let page = try CLI.run(["dump", store, "page", number])
        #expect(page.status == 0, "\(page)")
        #expect(page.stdout.hasPrefix("page \(number) at offset "), "\(page)")
        #expect(page.stdout.contains("(ok)") && page.stdout.contains("[0] key ("), "\(page)")
        let metaPage = try CLI.run(["dump", store, "page", "1"])
        #expect(metaPage.stdout.hasPrefix("meta page 1"), "\(metaPage)")
        let beyond = try CLI.run(["dump", store, "page", "999999"])
        #expect(beyond.status == 1 && beyond.stderr.split(separator: "\n").count == 1, "\(beyond)")

        let log = try CLI.run(["dump", store, "log"])
        #expect(log.status == 0, "\(log)")
        #expect(log.stdout.contains("log segments in"), "\(log)")
        #expect(log.stdout.contains("header checksum ok"), "\(log)")
        #expect(log.stdout.contains("type 16"), "\(log)")
        #expect(log.stdout.contains("transaction at segment 1"), "\(log)")
        let limited = try CLI.run(["dump", store, "log", "--max-records", "1"])
        #expect(limited.stdout.contains("more records not shown"), "\(limited)")
        // dump never changes the files.
        #expect(try CLI.run(["verify", store]).status == 0)
    }

    /// `dump runs`: every run file of a generated (bulk-loaded) store, its block index and a
    /// check of every block; then `stats` says where the bytes are.
    @Test func dumpShowsSortedRunsAndStatsShowsWhereTheBytesAre() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        #expect(try CLI.run(["generate", "--messages", "3000", "--out", store]).status == 0)
        let runs = try CLI.run(["dump", store, "runs", "--max-records", "2"])
        #expect(runs.status == 0, "\(runs)")
        #expect(runs.stdout.contains("sorted runs in"), "\(runs)")
        #expect(runs.stdout.contains("run-00000001.run: run 1 (format 2),"), "\(runs)")
        #expect(runs.stdout.contains("3000 records"), "\(runs)")
        #expect(runs.stdout.contains("block 0: at 32,"), "\(runs)")
        #expect(runs.stdout.contains("every block checks"), "\(runs)")
        #expect(runs.stdout.contains("more records not shown"), "\(runs)")
        // A flipped byte in a block is reported, not trapped on.
        let file = store + "/run-00000001.run"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: file))
        try handle.seek(toOffset: 40)
        let byte = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: 40)
        try handle.write(contentsOf: Data([byte ^ 0x10]))
        try handle.close()
        let damaged = try CLI.run(["dump", store, "runs"])
        #expect(damaged.status == 0, "\(damaged)")
        #expect(damaged.stdout.contains("verify:") && damaged.stdout.contains("run-00000001.run"), "\(damaged)")

        let fresh = dir.file("fresh")
        #expect(try CLI.run(["generate", "--messages", "3000", "--out", fresh]).status == 0)
        let stats = try CLI.run(["stats", fresh])
        #expect(stats.status == 0, "\(stats)")
        #expect(stats.stdout.contains("where the bytes are") && stats.stdout.contains("tree messages")
                && stats.stdout.contains("sorted runs"), "\(stats)")
        let json = try CLI.run(["stats", fresh, "--json"])
        #expect(json.stdout.contains("\"space\":{\"tree messages\":"), "\(json)")
    }

    /// dump reads damaged files instead of refusing them.
    @Test func dumpShowsDamage() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        #expect(try CLI.run(["generate", "--messages", "3000", "--out", store]).status == 0)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: store + "/pages"))
        try handle.seek(toOffset: 0x20)
        try handle.write(contentsOf: Data([0xEE]))
        let pageSize = UInt64(try Damage.pageSize(store: store))
        try handle.close()
        let meta = try CLI.run(["dump", store, "meta"])
        #expect(meta.status == 0, "\(meta)")
        #expect(meta.stdout.contains("meta page 0 at offset 0: DAMAGED (checksum mismatch)"), "\(meta)")
        #expect(meta.stdout.contains("(MISMATCH)"), "\(meta)")
        #expect(meta.stdout.contains("meta page 1 at offset \(pageSize): valid, current"), "\(meta)")
        #expect(try CLI.run(["dump", store, "pages"]).status == 0)
        // A page file cut after the meta pages: the missing pages are listed as such.
        let cut = try FileHandle(forUpdating: URL(fileURLWithPath: store + "/pages"))
        try cut.truncate(atOffset: 2 * pageSize)
        try cut.close()
        let pages = try CLI.run(["dump", store, "pages"])
        #expect(pages.status == 0, "\(pages)")
        #expect(pages.stdout.contains("beyond"), "\(pages)")
        let page = try CLI.run(["dump", store, "page", "2"])
        #expect(page.status == 1 && page.stderr.contains("beyond"), "\(page)")
    }

    @Test func generateIntoAStore() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        let result = try CLI.run(["generate", "--messages", "1500", "--seed", "2", "--out", store, "--batch-size", "200"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("generated 1500 messages into \(store)"))
        let stats = jsonObject(try CLI.run(["stats", store, "--json"]).stdout.trimmingCharacters(in: .newlines))
        #expect(stats?["messages"] as? Int == 1500)
        // Same seed as JSONL, then import: same export.
        let file = dir.file("same.jsonl")
        #expect(try CLI.run(["generate", "--messages", "1500", "--seed", "2", "--out", file]).status == 0)
        let copy = dir.file("copy")
        #expect(try CLI.run(["import", copy, file]).status == 0)
        #expect(try CLI.run(["export", copy]).stdout == (try CLI.run(["export", store]).stdout))
    }
}
