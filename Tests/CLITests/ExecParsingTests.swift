import Foundation
import Scrollback
@testable import ScrollbackCLI
import ScrollbackJSON
import Testing

/// The exec contract's request parsing and response encoding, without a store.
@Suite struct ExecParsingTests {
    func parse(_ line: String) -> Result<ExecRequest, RequestError> {
        do {
            return .success(try ExecRequest.parse(line: Array(line.utf8)))
        } catch {
            return .failure(error)
        }
    }

    func code(_ line: String) -> RequestError.Code? {
        if case .failure(let error) = parse(line) { return error.code }
        return nil
    }

    @Test(arguments: [
        "",
        "   ",
        "not json",
        "{",
        "{\"op\":\"get\",\"id\":\"a\"} trailing",
        "[1,2]",
        "\"append\"",
        "null",
        "{}",
        "{\"op\":5}",
        "{\"op\":\"nope\"}",
        "{\"op\":\"get\"}",
        "{\"op\":\"get\",\"id\":5}",
        "{\"op\":\"get\",\"id\":null}",
        "{\"op\":\"get\",\"id\":\"a\",\"id\":\"b\"}",
        "{\"op\":\"latest\",\"conversation\":\"c\"}",
        "{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":\"10\"}",
        "{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":1.5}",
        "{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":1e2}",
        "{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":01}",
        "{\"op\":\"page\",\"conversation\":\"c\",\"limit\":5}",
        "{\"op\":\"page\",\"conversation\":\"c\",\"limit\":5,\"order\":\"newestFirst\",\"cursor\":7}",
        "{\"op\":\"range\",\"conversation\":\"c\",\"from\":0,\"order\":\"oldestFirst\"}",
        "{\"op\":\"count\",\"conversation\":\"c\"}",
        "{\"op\":\"unread\",\"user\":\"u\"}",
        "{\"op\":\"feed\",\"conversations\":\"c\",\"limit\":5}",
        "{\"op\":\"feed\",\"conversations\":[\"c\",1],\"limit\":5}",
        "{\"op\":\"heads\"}",
        "{\"op\":\"conversations\"}",
        "{\"op\":\"conversations\",\"limit\":1,\"after\":5}",
        "{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"text\"}",
        "{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":\"1\",\"kind\":\"text\",\"body\":\"\"}",
        "{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"text\",\"body\":\"\",\"replyTo\":3}",
        "{\"op\":\"batch\"}",
        "{\"op\":\"batch\",\"ops\":{}}",
        "{\"op\":\"batch\",\"ops\":[1]}",
        "{\"op\":\"batch\",\"ops\":[{\"op\":\"get\",\"id\":\"a\"}]}",
        "{\"op\":\"batch\",\"ops\":[{\"op\":\"batch\",\"ops\":[]}]}",
        "{\"op\":\"batch\",\"ops\":[{\"op\":\"delete\"}]}",
        "{\"op\":\"edit\",\"id\":\"a\"}",
        "{\"op\":\"markRead\",\"user\":\"u\",\"conversation\":\"c\"}",
        "{\"op\":\"get\",\"id\":\"\\ud800\"}",
        "{\"op\":\"get\",\"id\":\"tab\there\"}",
        "{\"op\":\"get\",\"id\":\"a\\q\"}",
        String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
    ])
    func malformedLinesAreInvalidRequest(_ line: String) {
        #expect(code(line) == .invalidRequest, "\(line): \(parse(line))")
    }

    @Test(arguments: [
        "{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"sticker\",\"body\":\"\"}",
        "{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":99999999999999999999,\"kind\":\"text\",\"body\":\"\"}",
        "{\"op\":\"page\",\"conversation\":\"c\",\"limit\":5,\"order\":\"sideways\"}",
        "{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":-99999999999999999999}",
        "{\"op\":\"batch\",\"ops\":[{\"op\":\"append\",\"id\":\"m\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"TEXT\",\"body\":\"\"}]}",
    ])
    func valuesOutsideTheContractAreInvalidArgument(_ line: String) {
        #expect(code(line) == .invalidArgument, "\(line): \(parse(line))")
    }

    @Test func invalidUTF8IsInvalidRequest() throws {
        var bytes = Array("{\"op\":\"get\",\"id\":\"".utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array("\"}".utf8)
        #expect(throws: RequestError.self) { try ExecRequest.parse(line: bytes) }
        do {
            _ = try ExecRequest.parse(line: bytes)
        } catch {
            #expect(error.code == .invalidRequest)
            #expect(error.message.contains("UTF-8"))
        }
    }

    @Test func wellFormedRequestsParse() throws {
        let m = Message(id: "m1", conversation: "c", sender: "s", createdAt: 5, kind: .image, body: "hé\n\"x\"", replyTo: "m0")
        let cases: [(String, ExecRequest)] = [
            ("{\"op\":\"append\",\"id\":\"m1\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":5,\"kind\":\"image\",\"body\":\"h\\u00e9\\n\\\"x\\\"\",\"replyTo\":\"m0\",\"edited\":true,\"extra\":[1]}",
             .append(m)),
            ("  {\"op\":\"get\",\"id\":\"a\"}\r", .get(id: "a")),
            ("{\"id\":\"a\",\"op\":\"delete\"}", .delete(id: "a")),
            ("{\"op\":\"edit\",\"id\":\"a\",\"body\":\"\"}", .edit(id: "a", body: "")),
            ("{\"op\":\"markRead\",\"user\":\"u\",\"conversation\":\"c\",\"through\":\"m\"}", .markRead(user: "u", conversation: "c", through: "m")),
            ("{\"op\":\"latest\",\"conversation\":\"c\",\"limit\":20}", .latest(conversation: "c", limit: 20)),
            ("{\"op\":\"page\",\"conversation\":\"c\",\"limit\":2,\"order\":\"oldestFirst\",\"cursor\":null}",
             .page(conversation: "c", limit: 2, order: .oldestFirst, cursor: nil)),
            ("{\"op\":\"page\",\"conversation\":\"c\",\"limit\":2,\"order\":\"newestFirst\"}",
             .page(conversation: "c", limit: 2, order: .newestFirst, cursor: nil)),
            ("{\"op\":\"page\",\"conversation\":\"c\",\"limit\":2,\"order\":\"newestFirst\",\"cursor\":\"abc\"}",
             .page(conversation: "c", limit: 2, order: .newestFirst, cursor: Cursor(token: "abc"))),
            ("{\"op\":\"offset\",\"conversation\":\"c\",\"offset\":100,\"limit\":20,\"order\":\"newestFirst\"}",
             .offset(conversation: "c", offset: 100, limit: 20, order: .newestFirst)),
            ("{\"op\":\"range\",\"conversation\":\"c\",\"from\":-5,\"through\":9,\"order\":\"newestFirst\"}",
             .range(conversation: "c", from: -5, through: 9, order: .newestFirst, limit: nil, cursor: nil)),
            ("{\"op\":\"range\",\"conversation\":\"c\",\"from\":1,\"through\":9,\"order\":\"oldestFirst\",\"limit\":3}",
             .range(conversation: "c", from: 1, through: 9, order: .oldestFirst, limit: 3, cursor: nil)),
            ("{\"op\":\"range\",\"conversation\":\"c\",\"from\":1,\"through\":9,\"order\":\"oldestFirst\",\"cursor\":\"abc\"}",
             .range(conversation: "c", from: 1, through: 9, order: .oldestFirst, limit: nil, cursor: Cursor(token: "abc"))),
            ("{\"op\":\"count\",\"conversation\":\"c\",\"after\":0}", .count(conversation: "c", after: 0)),
            ("{\"op\":\"unread\",\"user\":\"u\",\"conversation\":\"c\"}", .unread(user: "u", conversation: "c")),
            ("{\"op\":\"feed\",\"conversations\":[\"a\",\"b\"],\"limit\":50}", .feed(conversations: ["a", "b"], limit: 50)),
            ("{\"op\":\"heads\",\"conversations\":[]}", .heads(conversations: [])),
            ("{\"op\":\"conversations\",\"limit\":0}", .conversations(limit: 0, after: nil, paged: false)),
            ("{\"op\":\"conversations\",\"limit\":2,\"after\":null}", .conversations(limit: 2, after: nil, paged: true)),
            ("{\"op\":\"conversations\",\"limit\":2,\"after\":\"abc\"}",
             .conversations(limit: 2, after: ConversationCursor(token: "abc"), paged: true)),
            ("{\"op\":\"batch\",\"ops\":[]}", .batch([])),
            ("{\"op\":\"batch\",\"ops\":[{\"op\":\"delete\",\"id\":\"x\"},{\"op\":\"markRead\",\"user\":\"u\",\"conversation\":\"c\",\"through\":\"m\"}]}",
             .batch([.delete(id: "x"), .markRead(user: "u", conversation: "c", through: "m")])),
        ]
        for (line, expected) in cases {
            #expect(parse(line) == .success(expected), "\(line)")
        }
    }

    @Test func errorLineHasTheContractShape() {
        let line = RequestError(code: .notFound, message: "no \"x\"\n").jsonLine
        #expect(line == "{\"ok\":false,\"error\":{\"code\":\"notFound\",\"message\":\"no \\\"x\\\"\\n\"}}")
        #expect(errorCode(line) == "notFound")
    }

    @Test func storeErrorsMapOntoContractCodes() {
        let cases: [(ScrollbackError, RequestError.Code)] = [
            (.invalidArgument(argument: "id", reason: "empty"), .invalidArgument),
            (.limitExceeded("batch"), .invalidArgument),
            (.notFound("m"), .notFound),
            (.invalidCursor("forged"), .invalidCursor),
            (.corrupted(file: "pages", offset: 8192, reason: "checksum"), .corrupted),
            (.unsupportedVersion(path: "p", found: 9, supported: 1), .corrupted),
            (.notAStore(path: "p"), .corrupted),
            (.io(path: "p", operation: "write", errno: 5), .io),
            (.refusesWrites(cause: "fsync"), .io),
            (.closed, .io),
        ]
        for (error, code) in cases {
            let mapped = RequestError(mapping: error)
            #expect(mapped.code == code, "\(error)")
            #expect(mapped.message == error.description)
        }
    }

    @Test func messageObjectKeepsContractKeyOrder() {
        var w = JSONWriter()
        w.message(Message(id: "a", conversation: "c", sender: "s", createdAt: -1, kind: .system, body: "\u{1}\t", replyTo: "r", edited: true))
        #expect(w.text == "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":-1,\"kind\":\"system\",\"body\":\"\\u0001\\t\",\"replyTo\":\"r\",\"edited\":true}")
        var v = JSONWriter()
        v.message(Message(id: "a", conversation: "c", sender: "s", createdAt: 0, body: ""))
        #expect(v.text == "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":0,\"kind\":\"text\",\"body\":\"\",\"edited\":false}")
    }

    @Test func writerOutputParsesBack() throws {
        let nasty = "quote\" backslash\\ nl\n cr\r nul\u{0} del\u{7F} emoji😀 ls\u{2028} é"
        var w = JSONWriter()
        w.string(nasty)
        #expect(try JSONParser.parse(w.bytes) == .string(nasty))
        let foundation = try JSONSerialization.jsonObject(with: Data(w.bytes), options: .fragmentsAllowed) as? String
        #expect(foundation == nasty)
    }

    @Test func parserHandlesSurrogatePairsAndNumbers() throws {
        #expect(try JSONParser.parse("\"\\ud83d\\ude00\"") == .string("😀"))
        #expect(try JSONParser.parse(" -0 ") == .number("-0"))
        #expect(try JSONParser.parse("[1.5e-3,true,false,null]") == .array([.number("1.5e-3"), .bool(true), .bool(false), .null]))
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("\"\\udc00\"") }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("1.") }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("tru") }
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse("{\"a\":1,}") }
    }
}

@Suite struct TimestampTests {
    @Test func parsesMillisecondsAndISO8601() {
        let cases: [(String, Int64?)] = [
            ("0", 0),
            ("1700000000000", 1_700_000_000_000),
            ("-5", -5),
            ("1970-01-01", 0),
            ("1970-01-01T00:00:00Z", 0),
            ("2024-05-01T09:30:00Z", 1_714_555_800_000),
            ("2024-05-01T09:30:00.123Z", 1_714_555_800_123),
            ("2024-05-01T09:30:00.1Z", 1_714_555_800_100),
            ("2024-05-01T09:30:00.123456789Z", 1_714_555_800_123),
            ("2024-05-01 09:30:00", 1_714_555_800_000),
            ("2024-05-01t09:30z", 1_714_555_800_000),
            ("2024-05-01T11:30:00+02:00", 1_714_555_800_000),
            ("2024-05-01T04:00:00-0530", 1_714_555_800_000),
            ("2024-05-01T11:30:00+02", 1_714_555_800_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2023-02-29T00:00:00Z", nil),
            ("2024-13-01", nil),
            ("2024-05-01T24:00:00Z", nil),
            ("2024-05-01T09:30:00Q", nil),
            ("2024-05-01T09:30:00.Z", nil),
            ("2024-5-1", nil),
            ("yesterday", nil),
            ("", nil),
        ]
        for (text, expected) in cases {
            #expect(Timestamp.parse(text) == expected, "\(text)")
        }
    }

    @Test func formatsUTCWithMilliseconds() {
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(1_714_555_800_123) == "2024-05-01T09:30:00.123Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
        for ms: Int64 in [0, 1, 86_399_999, 951_782_400_000, 4_102_444_800_000, -62_135_596_800_000] {
            #expect(Timestamp.parseISO8601(Timestamp.format(ms)) == ms)
        }
        _ = Timestamp.format(.max)
        _ = Timestamp.format(.min)
    }
}

@Suite struct ImportDecodingTests {
    func decode(_ line: String) -> Result<ImportRecord, RecordError> {
        do {
            return .success(try RecordDecoding.jsonLine(Array(line.utf8), origin: "line 1"))
        } catch {
            return .failure(error)
        }
    }

    @Test func acceptsTheExportFormatAndTheReferenceNames() throws {
        let exported = try decode("{\"id\":\"m1\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":5,\"kind\":\"audio\",\"body\":\"b\",\"replyTo\":\"m0\",\"edited\":true}").get()
        #expect(exported.message == Message(id: "m1", conversation: "c", sender: "s", createdAt: 5, kind: .audio, body: "b", replyTo: "m0"))
        #expect(exported.edited)
        let reference = try decode("{\"id\":17,\"conversationId\":\"c\",\"senderId\":\"synuser3\",\"createdAt\":\"2024-05-01T09:30:00Z\",\"type\":\"IMAGE\",\"content\":\"x\"}").get()
        #expect(reference.message == Message(id: "17", conversation: "c", sender: "synuser3", createdAt: 1_714_555_800_000, kind: .image, body: "x"))
        #expect(!reference.edited)
        let minimal = try decode("{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"body\":null}").get()
        #expect(minimal.message.kind == .text)
        #expect(minimal.message.body == "")
    }

    @Test(arguments: [
        "",
        "{",
        "[]",
        "{\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"\"}",
        "{\"id\":\"a\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"createdAt\":1,\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"conversationId\":\"d\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1.5,\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":\"soon\",\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"kind\":\"sticker\",\"body\":\"\"}",
        "{\"id\":\"a\",\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"\",\"edited\":\"yes\"}",
        "{\"id\":[1],\"conversation\":\"c\",\"sender\":\"s\",\"createdAt\":1,\"body\":\"\"}",
    ])
    func rejectsBadLines(_ line: String) {
        if case .success(let record) = decode(line) { Issue.record("accepted \(line) as \(record.message)") }
    }

    @Test func kindNames() {
        #expect(RecordDecoding.kind(name: "TEXT") == .text)
        #expect(RecordDecoding.kind(name: "Video") == .video)
        #expect(RecordDecoding.kind(name: "6") == .system)
        #expect(RecordDecoding.kind(name: "0") == nil)
        #expect(RecordDecoding.kind(name: "DIRECT_MESSAGE") == nil)
    }
}
