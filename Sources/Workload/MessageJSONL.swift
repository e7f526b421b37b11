import Scrollback

/// The JSON Lines form of a message: one object per line,
/// `{"id":…,"conversation":…,"sender":…,"createdAt":…,"kind":…,"body":…,"replyTo":…,"edited":…}`
/// with `kind` the lowercase name (`text`, `image`, …; `MessageKind.name`) and `replyTo`
/// omitted when nil. This is the format `scrollback import` reads and `scrollback generate`
/// writes.
///
/// Decoding accepts the keys in any order, whitespace between tokens, `"replyTo": null`,
/// and any JSON string escapes (`\uXXXX` with surrogate pairs); it rejects unknown keys,
/// missing required keys, wrong types and trailing garbage with a `WorkloadError` naming
/// the problem and the byte column.
package enum MessageJSONL {
    /// One line, without the trailing newline.
    package static func encode(_ message: Message) -> String {
        var out = [UInt8]()
        out.reserveCapacity(96 + message.body.utf8.count)
        encode(message, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends one line and a newline to `out` (the fast path for writing files).
    package static func appendLine(_ message: Message, to out: inout [UInt8]) {
        encode(message, into: &out)
        out.append(UInt8(ascii: "\n"))
    }

    private static func encode(_ m: Message, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"id":"#.utf8)
        appendString(m.id, to: &out)
        out.append(contentsOf: #","conversation":"#.utf8)
        appendString(m.conversation, to: &out)
        out.append(contentsOf: #","sender":"#.utf8)
        appendString(m.sender, to: &out)
        out.append(contentsOf: #","createdAt":"#.utf8)
        out.append(contentsOf: String(m.createdAt).utf8)
        out.append(contentsOf: #","kind":"#.utf8)
        appendString(m.kind.name, to: &out)
        out.append(contentsOf: #","body":"#.utf8)
        appendString(m.body, to: &out)
        if let replyTo = m.replyTo {
            out.append(contentsOf: #","replyTo":"#.utf8)
            appendString(replyTo, to: &out)
        }
        out.append(contentsOf: m.edited ? #","edited":true}"#.utf8 : #","edited":false}"#.utf8)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: Array(#"\u00"#.utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Parses one line (surrounding whitespace and a trailing `\r` are allowed).
    package static func decode(_ line: String) throws -> Message {
        var copy = line
        return try copy.withUTF8 { try decode(bytes: $0) }
    }

    /// Parses one line given as UTF-8 bytes.
    package static func decode(bytes: UnsafeBufferPointer<UInt8>) throws -> Message {
        var parser = Parser(bytes: bytes)
        return try parser.message()
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func fail(_ what: String) -> WorkloadError { WorkloadError("JSONL: \(what) at column \(i + 1)") }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws {
            skipSpace()
            guard i < bytes.count, bytes[i] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
            i += 1
        }

        mutating func message() throws -> Message {
            var id: String?, conversation: String?, sender: String?, body: String?, replyTo: String?
            var createdAt: Int64?, kind: MessageKind?, edited: Bool?
            try expect(UInt8(ascii: "{"))
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                i += 1
            } else {
                while true {
                    skipSpace()
                    let key = try string()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    switch key {
                    case "id": id = try string()
                    case "conversation": conversation = try string()
                    case "sender": sender = try string()
                    case "body": body = try string()
                    case "createdAt": createdAt = try integer()
                    case "kind":
                        let name = try string()
                        guard let k = MessageKind(name: name) else { throw fail("unknown kind \"\(name)\"") }
                        kind = k
                    case "replyTo":
                        if try null() { replyTo = nil } else { replyTo = try string() }
                    case "edited": edited = try boolean()
                    default: throw fail("unknown key \"\(key)\"")
                    }
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                    throw fail("expected ',' or '}'")
                }
            }
            skipSpace()
            guard i == bytes.count else { throw fail("trailing characters") }
            guard let id else { throw fail("missing \"id\"") }
            guard let conversation else { throw fail("missing \"conversation\"") }
            guard let sender else { throw fail("missing \"sender\"") }
            guard let createdAt else { throw fail("missing \"createdAt\"") }
            guard let body else { throw fail("missing \"body\"") }
            return Message(
                id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind ?? .text,
                body: body, replyTo: replyTo, edited: edited ?? false)
        }

        mutating func null() throws -> Bool {
            if bytes.count - i >= 4, bytes[i] == UInt8(ascii: "n"), bytes[i + 1] == UInt8(ascii: "u"),
                bytes[i + 2] == UInt8(ascii: "l"), bytes[i + 3] == UInt8(ascii: "l")
            {
                i += 4
                return true
            }
            return false
        }

        mutating func boolean() throws -> Bool {
            if bytes.count - i >= 4, Array(bytes[i..<i + 4]) == Array("true".utf8) { i += 4; return true }
            if bytes.count - i >= 5, Array(bytes[i..<i + 5]) == Array("false".utf8) { i += 5; return false }
            throw fail("expected true or false")
        }

        mutating func integer() throws -> Int64 {
            var negative = false
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
            let start = i
            var value: Int64 = 0
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw fail("integer out of range") }
                value = a
                i += 1
            }
            guard i > start else { throw fail("expected an integer") }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                throw fail("expected an integer (milliseconds)")
            }
            return negative ? -value : value
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - i >= 4 else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw fail("bad \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            i += 1
            let start = i
            // Fast path: no escapes.
            while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") {
                guard bytes[i] >= 0x20 else { throw fail("control character in string") }
                i += 1
            }
            guard i < bytes.count else { throw fail("unterminated string") }
            if bytes[i] == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            var out = Array(bytes[start..<i])
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                guard c >= 0x20 else { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800, scalar < 0xDC00 {
                        guard bytes.count - i >= 6, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard low >= 0xDC00, low < 0xE000 else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00, scalar < 0xE000 {
                        throw fail("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("bad escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
