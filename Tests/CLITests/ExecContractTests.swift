import Foundation
import Testing

/// The exec JSONL contract, line by line, against the built executable and a real store.
@Suite struct ExecContractTests {
    static func append(_ id: String, _ conversation: String, at createdAt: Int64, sender: String = "alice",
                       kind: String = "text", body: String = "hi", replyTo: String? = nil) -> String {
        var line = "{\"op\":\"append\",\"id\":\"\(id)\",\"conversation\":\"\(conversation)\",\"sender\":\"\(sender)\","
            + "\"createdAt\":\(createdAt),\"kind\":\"\(kind)\",\"body\":\"\(body)\""
        if let replyTo { line += ",\"replyTo\":\"\(replyTo)\"" }
        return line + "}"
    }

    static func message(_ id: String, _ conversation: String, at createdAt: Int64, sender: String = "alice",
                        kind: String = "text", body: String = "hi", replyTo: String? = nil, edited: Bool = false) -> String {
        var text = "{\"id\":\"\(id)\",\"conversation\":\"\(conversation)\",\"sender\":\"\(sender)\",\"createdAt\":\(createdAt),"
            + "\"kind\":\"\(kind)\",\"body\":\"\(body)\""
        if let replyTo { text += ",\"replyTo\":\"\(replyTo)\"" }
        return text + ",\"edited\":\(edited)}"
    }

    /// Each request with its exact expected answer (a full line) or an error code.
    enum Expect {
        case line(String)
        /// A line starting with this text (the rest is an opaque cursor).
        case prefix(String)
        case error(String)
    }

    @Test func contractLineByLine() throws {
        let dir = try TemporaryDirectory()
        let m1 = Self.message("m1", "c1", at: 1000)
        let m2 = Self.message("m2", "c1", at: 2000, sender: "bob", kind: "image", body: "pic", replyTo: "m1")
        let m3 = Self.message("m3", "c2", at: 1500)
        let m1Edited = Self.message("m1", "c1", at: 1000, body: "hello", edited: true)
        let m5 = Self.message("m5", "c1", at: 2000, body: "same time")
        let script: [(String, Expect)] = [
            (Self.append("m1", "c1", at: 1000), .line("{\"ok\":true,\"duplicate\":false}")),
            (Self.append("m1", "c1", at: 1000), .line("{\"ok\":true,\"duplicate\":true}")),
            (Self.append("m2", "c1", at: 2000, sender: "bob", kind: "image", body: "pic", replyTo: "m1"), .line("{\"ok\":true,\"duplicate\":false}")),
            (Self.append("m3", "c2", at: 1500), .line("{\"ok\":true,\"duplicate\":false}")),
            // An id live in another conversation is a conflict, not a silent duplicate.
            (Self.append("m1", "c2", at: 1000), .error("idConflict")),
            ("{\"op\":\"batch\",\"ops\":[\(Self.append("m9", "c2", at: 9)),\(Self.append("m2", "c2", at: 2000))]}", .error("idConflict")),
            ("{\"op\":\"get\",\"id\":\"m9\"}", .line("{\"ok\":true,\"message\":null}")),
            ("{\"op\":\"get\",\"id\":\"m1\"}", .line("{\"ok\":true,\"message\":\(m1)}")),
            ("{\"op\":\"get\",\"id\":\"m2\"}", .line("{\"ok\":true,\"message\":\(m2)}")),
            ("{\"op\":\"get\",\"id\":\"nope\"}", .line("{\"ok\":true,\"message\":null}")),
            ("{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":10}", .line("{\"ok\":true,\"messages\":[\(m2),\(m1)]}")),
            ("{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":1}", .line("{\"ok\":true,\"messages\":[\(m2)]}")),
            ("{\"op\":\"latest\",\"conversation\":\"unknown\",\"limit\":10}", .line("{\"ok\":true,\"messages\":[]}")),
            ("{\"op\":\"page\",\"conversation\":\"c1\",\"limit\":5,\"order\":\"oldestFirst\",\"cursor\":null}", .line("{\"ok\":true,\"messages\":[\(m1),\(m2)],\"next\":null}")),
            ("{\"op\":\"offset\",\"conversation\":\"c1\",\"offset\":1,\"limit\":5,\"order\":\"newestFirst\"}", .line("{\"ok\":true,\"messages\":[\(m1)]}")),
            ("{\"op\":\"offset\",\"conversation\":\"c1\",\"offset\":0,\"limit\":5,\"order\":\"oldestFirst\"}", .line("{\"ok\":true,\"messages\":[\(m1),\(m2)]}")),
            ("{\"op\":\"offset\",\"conversation\":\"c1\",\"offset\":7,\"limit\":5,\"order\":\"oldestFirst\"}", .line("{\"ok\":true,\"messages\":[]}")),
            ("{\"op\":\"range\",\"conversation\":\"c1\",\"from\":1000,\"through\":1999,\"order\":\"oldestFirst\"}", .line("{\"ok\":true,\"messages\":[\(m1)],\"next\":null}")),
            ("{\"op\":\"range\",\"conversation\":\"c1\",\"from\":0,\"through\":2000,\"order\":\"newestFirst\",\"limit\":2}", .line("{\"ok\":true,\"messages\":[\(m2),\(m1)],\"next\":null}")),
            // A page cut by its limit says so with a cursor.
            ("{\"op\":\"range\",\"conversation\":\"c1\",\"from\":0,\"through\":2000,\"order\":\"newestFirst\",\"limit\":1}", .prefix("{\"ok\":true,\"messages\":[\(m2)],\"next\":\"")),
            ("{\"op\":\"count\",\"conversation\":\"c1\",\"after\":1000}", .line("{\"ok\":true,\"count\":1}")),
            ("{\"op\":\"count\",\"conversation\":\"c1\",\"after\":0}", .line("{\"ok\":true,\"count\":2}")),
            ("{\"op\":\"count\",\"conversation\":\"unknown\",\"after\":0}", .line("{\"ok\":true,\"count\":0}")),
            ("{\"op\":\"unread\",\"user\":\"carol\",\"conversation\":\"c1\"}", .line("{\"ok\":true,\"count\":2}")),
            ("{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c1\",\"through\":\"m1\"}", .line("{\"ok\":true}")),
            ("{\"op\":\"unread\",\"user\":\"carol\",\"conversation\":\"c1\"}", .line("{\"ok\":true,\"count\":1}")),
            ("{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c1\",\"through\":\"m2\"}", .line("{\"ok\":true}")),
            // Forward only: marking an older message changes nothing.
            ("{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c1\",\"through\":\"m1\"}", .line("{\"ok\":true}")),
            ("{\"op\":\"unread\",\"user\":\"carol\",\"conversation\":\"c1\"}", .line("{\"ok\":true,\"count\":0}")),
            ("{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c1\",\"through\":\"m3\"}", .error("invalidArgument")),
            ("{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c1\",\"through\":\"ghost\"}", .error("notFound")),
            ("{\"op\":\"feed\",\"conversations\":[\"c1\",\"c2\",\"unknown\"],\"limit\":10}", .line("{\"ok\":true,\"messages\":[\(m2),\(m3),\(m1)]}")),
            ("{\"op\":\"feed\",\"conversations\":[\"c1\",\"c2\"],\"limit\":2}", .line("{\"ok\":true,\"messages\":[\(m2),\(m3)]}")),
            ("{\"op\":\"heads\",\"conversations\":[\"c2\",\"unknown\",\"c1\"]}", .line("{\"ok\":true,\"messages\":[\(m3),null,\(m2)]}")),
            ("{\"op\":\"conversations\",\"limit\":10}", .line("{\"ok\":true,\"conversations\":[{\"id\":\"c1\",\"lastActivity\":2000,\"messages\":2},{\"id\":\"c2\",\"lastActivity\":1500,\"messages\":1}]}")),
            ("{\"op\":\"conversations\",\"limit\":1}", .line("{\"ok\":true,\"conversations\":[{\"id\":\"c1\",\"lastActivity\":2000,\"messages\":2}]}")),
            ("{\"op\":\"edit\",\"id\":\"m1\",\"body\":\"hello\"}", .line("{\"ok\":true}")),
            ("{\"op\":\"get\",\"id\":\"m1\"}", .line("{\"ok\":true,\"message\":\(m1Edited)}")),
            ("{\"op\":\"edit\",\"id\":\"ghost\",\"body\":\"x\"}", .error("notFound")),
            ("{\"op\":\"delete\",\"id\":\"m3\"}", .line("{\"ok\":true}")),
            ("{\"op\":\"delete\",\"id\":\"m3\"}", .error("notFound")),
            ("{\"op\":\"heads\",\"conversations\":[\"c2\"]}", .line("{\"ok\":true,\"messages\":[null]}")),
            ("{\"op\":\"conversations\",\"limit\":10}", .line("{\"ok\":true,\"conversations\":[{\"id\":\"c1\",\"lastActivity\":2000,\"messages\":2}]}")),
            // A deleted id may be used again.
            (Self.append("m3", "c2", at: 1500), .line("{\"ok\":true,\"duplicate\":false}")),
            // Batches are atomic: the failing edit leaves m4 unwritten.
            ("{\"op\":\"batch\",\"ops\":[\(Self.append("m4", "c1", at: 3000)),{\"op\":\"edit\",\"id\":\"ghost\",\"body\":\"x\"}]}", .error("notFound")),
            ("{\"op\":\"get\",\"id\":\"m4\"}", .line("{\"ok\":true,\"message\":null}")),
            ("{\"op\":\"batch\",\"ops\":[\(Self.append("m4", "c1", at: 3000)),{\"op\":\"markRead\",\"user\":\"carol\",\"conversation\":\"c2\",\"through\":\"m1\"}]}", .error("invalidArgument")),
            ("{\"op\":\"get\",\"id\":\"m4\"}", .line("{\"ok\":true,\"message\":null}")),
            ("{\"op\":\"batch\",\"ops\":[\(Self.append("m5", "c1", at: 2000, body: "same time")),{\"op\":\"markRead\",\"user\":\"dave\",\"conversation\":\"c1\",\"through\":\"m2\"},{\"op\":\"delete\",\"id\":\"m3\"}]}", .line("{\"ok\":true}")),
            ("{\"op\":\"batch\",\"ops\":[]}", .line("{\"ok\":true}")),
            // Equal createdAt: insertion order (m2 before m5); newest first reverses it.
            ("{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":10}", .line("{\"ok\":true,\"messages\":[\(m5),\(m2),\(m1Edited)]}")),
            ("{\"op\":\"unread\",\"user\":\"dave\",\"conversation\":\"c1\"}", .line("{\"ok\":true,\"count\":1}")),
            ("{\"op\":\"feed\",\"conversations\":[\"c1\"],\"limit\":2}", .line("{\"ok\":true,\"messages\":[\(m5),\(m2)]}")),
            // Invalid arguments and cursors.
            ("{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":-1}", .error("invalidArgument")),
            ("{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":10001}", .error("invalidArgument")),
            ("{\"op\":\"latest\",\"conversation\":\"\",\"limit\":1}", .error("invalidArgument")),
            (Self.append("", "c1", at: 1), .error("invalidArgument")),
            (Self.append("neg", "c1", at: -1), .error("invalidArgument")),
            (Self.append("kind", "c1", at: 1, kind: "sticker"), .error("invalidArgument")),
            ("{\"op\":\"page\",\"conversation\":\"c1\",\"limit\":1,\"order\":\"newestFirst\",\"cursor\":\"not-a-cursor\"}", .error("invalidCursor")),
            // Malformed lines: an error each, and processing goes on.
            ("", .error("invalidRequest")),
            ("not json", .error("invalidRequest")),
            ("[1,2,3]", .error("invalidRequest")),
            ("{}", .error("invalidRequest")),
            ("{\"op\":\"fly\"}", .error("invalidRequest")),
            ("{\"op\":\"get\",\"id\":5}", .error("invalidRequest")),
            ("{\"op\":\"latest\",\"conversation\":\"c1\"}", .error("invalidRequest")),
            ("{\"op\":\"append\",\"id\":\"x\",\"conversation\":\"c1\",\"sender\":\"s\",\"createdAt\":\"soon\",\"kind\":\"text\",\"body\":\"\"}", .error("invalidRequest")),
            ("{\"op\":\"batch\",\"ops\":[{\"op\":\"get\",\"id\":\"m1\"}]}", .error("invalidRequest")),
            ("{\"op\":\"get\",\"id\":\"m5\"}", .line("{\"ok\":true,\"message\":\(m5)}")),
        ]
        let input = script.map(\.0).joined(separator: "\n") + "\n"
        let result = try CLI.run(["exec", dir.file("store")], stdin: input)
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
        let lines = result.stdoutLines
        #expect(lines.count == script.count, "\(result)")
        for (i, (request, expected)) in script.enumerated() where i < lines.count {
            switch expected {
            case .line(let line):
                #expect(lines[i] == line, "line \(i + 1): \(request)")
            case .prefix(let prefix):
                #expect(lines[i].hasPrefix(prefix) && lines[i].hasSuffix("\"}"), "line \(i + 1): \(request) -> \(lines[i])")
            case .error(let code):
                #expect(errorCode(lines[i]) == code, "line \(i + 1): \(request) -> \(lines[i])")
            }
        }

        // Everything acknowledged is durable: a new process sees it.
        let again = try CLI.run(["exec", dir.file("store")], stdin: "{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":10}")
        #expect(again.stdoutLines == ["{\"ok\":true,\"messages\":[\(m5),\(m2),\(m1Edited)]}"], "\(again)")
    }

    /// Search through the CLI: refused with a hint until `search-index` turns the index on; then
    /// the exec op (scope, paging with `cursor`, `next` null on the last page) and `query
    /// STORE search` agree.
    @Test func searchInteractive() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        let setup = [
            Self.append("m1", "c1", at: 1000, body: "Café au lait"),
            Self.append("m2", "c2", at: 2000, body: "cafeteria 你好"),
            Self.append("m3", "c1", at: 3000, body: "tea"),
        ].joined(separator: "\n") + "\n{\"op\":\"search\",\"query\":\"cafe\",\"limit\":5}\n"
        let before = try CLI.run(["exec", store], stdin: setup)
        #expect(before.stdoutLines.count == 4, "\(before)")
        #expect(before.stdoutLines.last.map(errorCode) == "invalidArgument", "\(before)")
        #expect(before.stdoutLines.last?.contains("search-index") == true, "\(before)")

        let enable = try CLI.run(["search-index", store])
        #expect(enable.status == 0 && enable.stdoutLines == ["search index on (3 messages)"], "\(enable)")

        let m1 = Self.message("m1", "c1", at: 1000, body: "Café au lait")
        let m2 = Self.message("m2", "c2", at: 2000, body: "cafeteria 你好")
        let first = try CLI.run(["exec", store], stdin: "{\"op\":\"search\",\"query\":\"CAFE\",\"limit\":1,\"cursor\":null}\n")
        let line = try #require(first.stdoutLines.first)
        #expect(line.hasPrefix("{\"ok\":true,\"messages\":[\(m2)],\"next\":\""), "\(first)")
        let cursor = String(line.split(separator: "\"").dropLast().last ?? "")
        let script = [
            "{\"op\":\"search\",\"query\":\"cafe\",\"limit\":1,\"cursor\":\"\(cursor)\"}",
            "{\"op\":\"search\",\"query\":\"cafe\",\"conversations\":[\"c1\"],\"limit\":5}",
            "{\"op\":\"search\",\"query\":\"你好\",\"conversations\":[\"c1\"],\"limit\":5}",
            "{\"op\":\"search\",\"query\":\"tea\",\"limit\":1,\"cursor\":\"\(cursor)\"}",
            "{\"op\":\"search\",\"query\":\"...\",\"limit\":5}",
            "{\"op\":\"search\",\"limit\":5}",
        ].joined(separator: "\n") + "\n"
        let result = try CLI.run(["exec", store], stdin: script)
        let lines = result.stdoutLines
        #expect(lines.count == 6, "\(result)")
        guard lines.count == 6 else { return }
        #expect(lines[0] == "{\"ok\":true,\"messages\":[\(m1)],\"next\":null}")
        #expect(lines[1] == "{\"ok\":true,\"messages\":[\(m1)],\"next\":null}")
        #expect(lines[2] == "{\"ok\":true,\"messages\":[],\"next\":null}")
        #expect(errorCode(lines[3]) == "invalidCursor")
        #expect(errorCode(lines[4]) == "invalidArgument")
        #expect(errorCode(lines[5]) == "invalidRequest")

        let table = try CLI.run(["query", store, "search", "caf", "--conversation", "c2", "--conversation", "c1"])
        #expect(table.status == 0, "\(table)")
        #expect(table.stdout.contains("m2") && table.stdout.contains("m1") && table.stdout.contains("next: (none)"), "\(table)")
        let json = try CLI.run(["query", store, "search", "tea", "--json"])
        #expect(json.stdoutLines == ["{\"ok\":true,\"messages\":[\(Self.message("m3", "c1", at: 3000, body: "tea"))],\"next\":null}"],
                "\(json)")
        let misuse = try CLI.run(["query", store, "latest", "c1", "--conversation", "c2"])
        #expect(misuse.status != 0 && misuse.stderr.contains("--conversation"), "\(misuse)")

        // --off: searches refuse again; turned on again, the index is rebuilt.
        let off = try CLI.run(["search-index", store, "--off"])
        #expect(off.status == 0 && off.stdoutLines == ["search index off"], "\(off)")
        let refused = try CLI.run(["query", store, "search", "tea"])
        #expect(refused.status != 0 && refused.stderr.contains("search-index"), "\(refused)")
        let again = try CLI.run(["search-index", store])
        #expect(again.status == 0 && again.stdoutLines == ["search index on (3 messages)"], "\(again)")
        let found = try CLI.run(["query", store, "search", "tea", "--json"])
        #expect(found.stdoutLines == json.stdoutLines, "\(found)")
    }

    /// The conversation list walked page by page with `after`: every conversation once, in
    /// list order (newest activity first, equal times by id), `next` null exactly on the
    /// last page; without `after` the answer has no `next`; a bad cursor is invalidCursor.
    @Test func conversationPagesInteractive() throws {
        let dir = try TemporaryDirectory()
        let session = try ExecSession(store: dir.file("store"))
        // c0…c6; c1, c3 and c5 share their newest time (30), c0 and c4 theirs (10).
        let times: [Int64] = [10, 30, 20, 30, 10, 30, 5]
        for (i, time) in times.enumerated() {
            #expect(try session.send(Self.append("m\(i)", "c\(i)", at: time)) == "{\"ok\":true,\"duplicate\":false}")
        }
        let expected = ["c1", "c3", "c5", "c2", "c0", "c4", "c6"]
        for limit in [1, 2, 3, 7, 8] {
            var ids: [String] = []
            var after = "null"
            var pages = 0
            while pages < 20 {
                let answer = try session.send("{\"op\":\"conversations\",\"limit\":\(limit),\"after\":\(after)}")
                let object = try #require(jsonObject(answer), "\(answer)")
                let list = try #require(object["conversations"] as? [[String: Any]], "\(answer)")
                ids += list.compactMap { $0["id"] as? String }
                pages += 1
                guard let next = object["next"] as? String else {
                    #expect(object["next"] is NSNull, "\(answer)")
                    break
                }
                #expect(answer.hasSuffix("],\"next\":\"\(next)\"}"), "\(answer)")
                after = "\"\(next)\""
            }
            #expect(ids == expected, "limit \(limit)")
            // `next` is null exactly when nothing remains: no empty last page.
            #expect(pages == (expected.count + limit - 1) / limit, "limit \(limit): \(pages) pages")
        }
        let unpaged = try session.send("{\"op\":\"conversations\",\"limit\":1}")
        #expect(unpaged == "{\"ok\":true,\"conversations\":[{\"id\":\"c1\",\"lastActivity\":30,\"messages\":1}]}")
        let forged = try session.send("{\"op\":\"conversations\",\"limit\":1,\"after\":\"AQIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAAAhSBct0F1zb\"}")
        #expect(errorCode(forged) == "invalidCursor", "\(forged)")
        // A message cursor is not a conversation cursor.
        let page = try #require(jsonObject(try session.send("{\"op\":\"page\",\"conversation\":\"c1\",\"limit\":0,\"order\":\"oldestFirst\"}")))
        let messageCursor = try #require(page["next"] as? String)
        let mixed = try session.send("{\"op\":\"conversations\",\"limit\":1,\"after\":\"\(messageCursor)\"}")
        #expect(errorCode(mixed) == "invalidCursor", "\(mixed)")
        #expect(try session.finish() == 0)
    }

    /// Keyset pages walked with the cursors the tool prints, one request at a time (the
    /// answer must arrive before the next request is sent).
    @Test func cursorWalkInteractive() throws {
        let dir = try TemporaryDirectory()
        let session = try ExecSession(store: dir.file("store"))
        for i in 1...7 {
            #expect(try session.send(Self.append("m\(i)", "room", at: Int64(i % 3))) == "{\"ok\":true,\"duplicate\":false}")
        }
        var ids: [String] = []
        var cursor = "null"
        var pages = 0
        while pages < 10 {
            let answer = try session.send("{\"op\":\"page\",\"conversation\":\"room\",\"limit\":3,\"order\":\"newestFirst\",\"cursor\":\(cursor)}")
            let object = try #require(jsonObject(answer), "\(answer)")
            #expect(object["ok"] as? Bool == true, "\(answer)")
            let messages = try #require(object["messages"] as? [[String: Any]])
            ids += messages.compactMap { $0["id"] as? String }
            pages += 1
            guard let next = object["next"] as? String else {
                #expect(object["next"] is NSNull)
                break
            }
            #expect(answer.hasSuffix(",\"next\":\"\(next)\"}"))
            cursor = "\"\(next)\""
        }
        // (createdAt, insertion) descending: createdAt 2: m5, m2; 1: m7, m4, m1; 0: m6, m3.
        #expect(ids == ["m5", "m2", "m7", "m4", "m1", "m6", "m3"])
        #expect(pages == 3)
        // A cursor of one conversation is rejected in another.
        #expect(try session.send(Self.append("x1", "other", at: 1)) == "{\"ok\":true,\"duplicate\":false}")
        let first = try #require(jsonObject(try session.send("{\"op\":\"page\",\"conversation\":\"room\",\"limit\":1,\"order\":\"oldestFirst\"}")))
        let token = try #require(first["next"] as? String)
        let foreign = try session.send("{\"op\":\"page\",\"conversation\":\"other\",\"limit\":1,\"order\":\"oldestFirst\",\"cursor\":\"\(token)\"}")
        #expect(errorCode(foreign) == "invalidCursor", "\(foreign)")
        // A cursor is bound to the order that issued it.
        let reversed = try session.send("{\"op\":\"page\",\"conversation\":\"room\",\"limit\":1,\"order\":\"newestFirst\",\"cursor\":\"\(token)\"}")
        #expect(errorCode(reversed) == "invalidCursor", "\(reversed)")
        #expect(reversed.contains("issued for oldestFirst order"), "\(reversed)")
        // A range answered in pages: every message of createdAt 1...2 once, oldest first.
        var rangeIDs: [String] = []
        var rangeCursor = "null"
        for _ in 0..<10 {
            let answer = try session.send("{\"op\":\"range\",\"conversation\":\"room\",\"from\":1,\"through\":2,\"order\":\"oldestFirst\",\"limit\":2,\"cursor\":\(rangeCursor)}")
            let object = try #require(jsonObject(answer), "\(answer)")
            rangeIDs += try #require(object["messages"] as? [[String: Any]], "\(answer)").compactMap { $0["id"] as? String }
            guard let next = object["next"] as? String else { break }
            rangeCursor = "\"\(next)\""
        }
        #expect(rangeIDs == ["m1", "m4", "m7", "m2", "m5"])
        #expect(try session.finish() == 0)
    }

    /// Membership, the inbox walked with its cursors, unread counts of many conversations, read
    /// markers read back and message metadata, one request at a time.
    @Test func inboxMarkersAndMetadataInteractive() throws {
        let dir = try TemporaryDirectory()
        let session = try ExecSession(store: dir.file("store"))
        let ok = "{\"ok\":true}"
        // c0…c4 with newest times 10, 30, 20, 30, 10; q has no message.
        for (i, time) in [10, 30, 20, 30, 10].enumerated() {
            #expect(try session.send(Self.append("m\(i)", "c\(i)", at: Int64(time))) == "{\"ok\":true,\"duplicate\":false}")
        }
        #expect(try session.send(Self.append("m5", "c1", at: 5)) == "{\"ok\":true,\"duplicate\":false}")
        for c in ["c0", "c1", "c3", "c4", "q"] {
            #expect(try session.send("{\"op\":\"join\",\"user\":\"ana\",\"conversation\":\"\(c)\"}") == ok)
        }
        // Idempotent, and allowed in a batch (with c2 joined and q left again there).
        #expect(try session.send("{\"op\":\"join\",\"user\":\"ana\",\"conversation\":\"c0\"}") == ok)
        #expect(try session.send("{\"op\":\"leave\",\"user\":\"ana\",\"conversation\":\"never\"}") == ok)
        #expect(try session.send("{\"op\":\"batch\",\"ops\":[{\"op\":\"join\",\"user\":\"ana\",\"conversation\":\"c2\"},"
                                 + "{\"op\":\"leave\",\"user\":\"ana\",\"conversation\":\"c4\"},"
                                 + "{\"op\":\"markRead\",\"user\":\"ana\",\"conversation\":\"c1\",\"through\":\"m5\"}]}") == ok)
        // A failing batch joins nothing.
        let failing = try session.send("{\"op\":\"batch\",\"ops\":[{\"op\":\"join\",\"user\":\"ana\",\"conversation\":\"c4\"},"
                                       + "{\"op\":\"delete\",\"id\":\"ghost\"}]}")
        #expect(errorCode(failing) == "notFound", "\(failing)")

        let expected = [
            "{\"id\":\"c1\",\"lastActivity\":30,\"messages\":2,\"unread\":1}",
            "{\"id\":\"c3\",\"lastActivity\":30,\"messages\":1,\"unread\":1}",
            "{\"id\":\"c2\",\"lastActivity\":20,\"messages\":1,\"unread\":1}",
            "{\"id\":\"c0\",\"lastActivity\":10,\"messages\":1,\"unread\":1}",
            "{\"id\":\"q\",\"lastActivity\":null,\"messages\":0,\"unread\":0}",
        ]
        #expect(try session.send("{\"op\":\"inbox\",\"user\":\"ana\",\"limit\":10,\"after\":null}")
                == "{\"ok\":true,\"conversations\":[\(expected.joined(separator: ","))],\"next\":null}")
        for limit in [1, 2, 4, 5] {
            var entries: [String] = []
            var after = "null"
            var pages = 0
            var lastToken: String?
            while pages < 10 {
                let answer = try session.send("{\"op\":\"inbox\",\"user\":\"ana\",\"limit\":\(limit),\"after\":\(after)}")
                let object = try #require(jsonObject(answer), "\(answer)")
                let list = try #require(object["conversations"] as? [[String: Any]], "\(answer)")
                #expect(list.count == min(limit, expected.count - entries.count), "\(answer)")
                entries += list.map { entry in expected.first { $0.contains("\"id\":\"\(entry["id"] as? String ?? "")\"") } ?? "?" }
                pages += 1
                guard let next = object["next"] as? String else {
                    #expect(object["next"] is NSNull, "\(answer)")
                    break
                }
                lastToken = next
                after = "\"\(next)\""
            }
            #expect(entries == expected, "limit \(limit)")
            #expect(pages == (expected.count + limit - 1) / limit, "limit \(limit): \(pages) pages")
            // A cursor of ana's inbox is refused for bo's.
            if let lastToken {
                let foreign = try session.send("{\"op\":\"inbox\",\"user\":\"bo\",\"limit\":1,\"after\":\"\(lastToken)\"}")
                #expect(errorCode(foreign) == "invalidCursor", "\(foreign)")
            }
        }
        let forged = try session.send("{\"op\":\"inbox\",\"user\":\"ana\",\"limit\":1,\"after\":\"AQIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAAAhSBct0F1zb\"}")
        #expect(errorCode(forged) == "invalidCursor", "\(forged)")
        #expect(try session.send("{\"op\":\"inbox\",\"user\":\"nobody\",\"limit\":3}") == "{\"ok\":true,\"conversations\":[],\"next\":null}")
        #expect(errorCode(try session.send("{\"op\":\"inbox\",\"user\":\"\",\"limit\":3}")) == "invalidArgument")
        #expect(errorCode(try session.send("{\"op\":\"inbox\",\"user\":\"ana\"}")) == "invalidRequest")
        #expect(errorCode(try session.send("{\"op\":\"join\",\"user\":\"ana\"}")) == "invalidRequest")
        #expect(errorCode(try session.send("{\"op\":\"join\",\"user\":\"ana\",\"conversation\":\"\(String(repeating: "x", count: 256))\"}"))
                == "invalidArgument")

        // Unread counts from one snapshot, one per conversation named; read markers read back.
        #expect(try session.send("{\"op\":\"unreadCounts\",\"user\":\"ana\",\"conversations\":[\"c1\",\"c2\",\"unknown\",\"c1\"]}")
                == "{\"ok\":true,\"counts\":[1,1,0,1]}")
        #expect(try session.send("{\"op\":\"unreadCounts\",\"user\":\"ana\",\"conversations\":[]}") == "{\"ok\":true,\"counts\":[]}")
        #expect(errorCode(try session.send("{\"op\":\"unreadCounts\",\"user\":\"ana\",\"conversations\":\"c1\"}")) == "invalidRequest")
        #expect(try session.send("{\"op\":\"marker\",\"user\":\"ana\",\"conversation\":\"c1\"}") == "{\"ok\":true,\"through\":\"m5\"}")
        #expect(try session.send("{\"op\":\"marker\",\"user\":\"ana\",\"conversation\":\"c2\"}") == "{\"ok\":true,\"through\":null}")
        #expect(try session.send("{\"op\":\"delete\",\"id\":\"m5\"}") == ok)
        #expect(try session.send("{\"op\":\"marker\",\"user\":\"ana\",\"conversation\":\"c1\"}") == "{\"ok\":true,\"through\":null}")

        // Metadata: base64 in and out, absent when none, kept by an edit, limited.
        let withMetadata = "{\"op\":\"append\",\"id\":\"md\",\"conversation\":\"c9\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"text\",\"body\":\"b\",\"metadata\":\"AAH/eD0x\"}"
        #expect(try session.send(withMetadata) == "{\"ok\":true,\"duplicate\":false}")
        #expect(try session.send("{\"op\":\"edit\",\"id\":\"md\",\"body\":\"c\"}") == ok)
        #expect(try session.send("{\"op\":\"get\",\"id\":\"md\"}")
                == "{\"ok\":true,\"message\":{\"id\":\"md\",\"conversation\":\"c9\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"text\",\"body\":\"c\",\"metadata\":\"AAH/eD0x\",\"edited\":true}}")
        let badBase64 = withMetadata.replacingOccurrences(of: "\"md\"", with: "\"md2\"").replacingOccurrences(of: "AAH/eD0x", with: "AAH/eD0")
        #expect(errorCode(try session.send(badBase64)) == "invalidArgument")
        let wrongType = withMetadata.replacingOccurrences(of: "\"md\"", with: "\"md3\"").replacingOccurrences(of: "\"AAH/eD0x\"", with: "[1,2]")
        #expect(errorCode(try session.send(wrongType)) == "invalidRequest")
        let big = String(repeating: "AAAA", count: 16_384 / 3 + 1)  // 16,386 bytes
        let tooLarge = withMetadata.replacingOccurrences(of: "\"md\"", with: "\"md4\"").replacingOccurrences(of: "AAH/eD0x", with: big)
        let refused = try session.send(tooLarge)
        #expect(errorCode(refused) == "invalidArgument" && refused.contains("metadata"), "\(refused)")
        #expect(try session.send("{\"op\":\"get\",\"id\":\"md4\"}") == "{\"ok\":true,\"message\":null}")
        #expect(try session.finish() == 0)

        // The query command answers the same lines.
        let query = try CLI.run(["query", dir.file("store"), "inbox", "ana", "--limit", "10", "--json"])
        #expect(query.stdoutLines == ["{\"ok\":true,\"conversations\":[\(expected.joined(separator: ",").replacingOccurrences(of: "\"messages\":2,\"unread\":1", with: "\"messages\":1,\"unread\":1"))],\"next\":null}"],
                "\(query)")
        let table = try CLI.run(["query", dir.file("store"), "inbox", "ana", "--limit", "2"])
        #expect(table.status == 0 && table.stdoutLines.first?.hasPrefix("CONVERSATION") == true, "\(table)")
        #expect(table.stdoutLines.last?.hasPrefix("next: ") == true && table.stdoutLines.last != "next: (none)", "\(table)")
        let marker = try CLI.run(["query", dir.file("store"), "marker", "ana", "c1"])
        #expect(marker.stdoutLines == ["(none)"], "\(marker)")
        let counts = try CLI.run(["query", dir.file("store"), "unread-counts", "ana", "c2", "c0", "--json"])
        #expect(counts.stdoutLines == ["{\"ok\":true,\"counts\":[1,1]}"], "\(counts)")
        let usage = try CLI.run(["query", dir.file("store"), "unread-counts", "ana"])
        #expect(usage.status == 2, "\(usage)")
    }

    /// corrupted: damaged message pages are reported per request and processing continues.
    @Test func corruptedCode() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        let lines = (1...300).map { Self.append("m\($0)", "c\($0 % 3)", at: Int64($0), body: String(repeating: "x", count: 200)) }
        let load = try CLI.run(["exec", store], stdin: lines.joined(separator: "\n"))
        #expect(load.status == 0, "\(load)")
        #expect(try CLI.run(["checkpoint", store]).status == 0)
        // Damage every leaf page of the messages tree (tree 0), found with dump.
        let pages = try CLI.run(["dump", store, "pages"])
        #expect(pages.status == 0, "\(pages)")
        let leaves = pages.stdoutLines.compactMap { line -> UInt64? in
            let cells = line.split(separator: " ", omittingEmptySubsequences: true)
            guard cells.count >= 8, cells[1] == "leaf", line.contains("(messages)") else { return nil }
            return UInt64(cells[0])
        }
        #expect(!leaves.isEmpty, "\(pages)")
        try Damage.flipBytes(in: store + "/pages", pages: leaves, pageSize: try Damage.pageSize(store: store))
        let result = try CLI.run(["exec", store], stdin: "{\"op\":\"latest\",\"conversation\":\"c1\",\"limit\":5}\n{\"op\":\"fly\"}\n")
        let answers = result.stdoutLines
        if result.status == 0 {
            #expect(answers.count == 2, "\(result)")
            #expect(answers.first.flatMap(errorCode) == "corrupted", "\(result)")
            #expect(answers.last.flatMap(errorCode) == "invalidRequest", "\(result)")
        } else {
            // The store noticed at open: a runtime error, one line on stderr.
            #expect(result.status == 1)
            #expect(result.stderr.contains("corrupted"), "\(result)")
        }
    }

    /// io: the file-size limit makes the log's writes fail (EFBIG); the failed append and
    /// every later write answer "io", reads still answer, and every line gets its answer.
    @Test func ioCode() throws {
        let dir = try TemporaryDirectory()
        let store = dir.file("store")
        let big = String(repeating: "b", count: 60_000)
        var lines = (1...12).map { Self.append("m\($0)", "c", at: Int64($0), body: big) }
        lines.append("{\"op\":\"count\",\"conversation\":\"c\",\"after\":0}")
        let result = try CLI.shell("ulimit -f 256; trap '' XFSZ; exec \"$SCROLLBACK\" exec '\(store)'", stdin: lines.joined(separator: "\n") + "\n")
        let answers = result.stdoutLines
        #expect(answers.count == lines.count, "\(result)")
        let codes = answers.prefix(12).map { errorCode($0) }
        #expect(codes.contains("io"), "\(result)")
        if let firstFailure = codes.firstIndex(where: { $0 != nil }) {
            #expect(codes[firstFailure...].allSatisfy { $0 == "io" }, "\(codes)")
            #expect(answers.prefix(firstFailure).allSatisfy { $0 == "{\"ok\":true,\"duplicate\":false}" })
        }
    }
}

enum Damage {
    /// The page size recorded in the meta page (little-endian u32 at 0x0C).
    static func pageSize(store: String) throws -> Int {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: store + "/pages"))
        defer { try? handle.close() }
        let header = try handle.read(upToCount: 16) ?? Data()
        guard header.count == 16 else { return 8192 }
        return Int(header[12]) | Int(header[13]) << 8 | Int(header[14]) << 16 | Int(header[15]) << 24
    }

    /// Flips bytes in the middle of each page (inside the entries, not the header).
    static func flipBytes(in path: String, pages: [UInt64], pageSize: Int) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        for page in pages {
            let offset = page * UInt64(pageSize) + UInt64(pageSize / 2)
            try handle.seek(toOffset: offset)
            let original = try handle.read(upToCount: 8) ?? Data()
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: Data(original.map { ~$0 }))
        }
        try handle.synchronize()
    }
}
