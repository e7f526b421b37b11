import Scrollback
import ScrollbackJSON

/// One message read by `import` (or made by `generate`), with where it came from.
struct ImportRecord {
    var message: Message
    /// `edited` in an exported file: re-applied after the append so a round trip keeps it.
    var edited: Bool
    /// "line 17", "row 5", … for error messages.
    var origin: String
}

/// Why an input record cannot be imported (reported with its line or row and skipped).
struct RecordError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reading message fields from the inputs `import` accepts.
enum RecordDecoding {
    /// A message kind by name (any case: `text`, `TEXT`, `Image`…) or by its stored number 1…6.
    static func kind(name: String) -> MessageKind? {
        let lower = name.trimmingSpaces.lowercased()
        if let kind = MessageKind(name: lower) { return kind }
        if let n = UInt8(lower) { return MessageKind(rawValue: n) }
        return nil
    }

    static let kindNames = MessageKind.allCases.map(\.name).joined(separator: ", ")

    /// A JSONL line: the message object of `export` (and `exec`), read by the one message
    /// codec. Also accepted, for files written by other tools: the reference schema's names
    /// `conversationId`, `senderId`, `type`, `content`; ids given as integers; `createdAt` as
    /// ISO-8601 text; `kind` in any case or as its number (default `text`).
    static func jsonLine(_ line: [UInt8], origin: String) throws(RecordError) -> ImportRecord {
        do {
            let decoded = try MessageJSON.decode(line: line, importing)
            var message = decoded.message
            message.edited = false
            return ImportRecord(message: message, edited: decoded.edited, origin: origin)
        } catch {
            throw RecordError(error.description)
        }
    }

    /// The dialect `import` reads.
    static let importing = MessageJSON.Dialect(
        otherSpellings: MessageJSON.OtherSpellings(time: { Timestamp.parse($0) }, kind: { RecordDecoding.kind(name: $0) }))
}
