import ScrollbackStorage

/// The message layer's records in words, for inspection tools (`scrollback dump`), decoded by
/// the layer's own decoders (and the engine's, for retirements).
package enum MessageRecordDescription {
    /// The record type's name ("?" for a type the layer does not define).
    package static func name(ofType type: UInt8) -> String {
        MessageRecordType(rawValue: type)?.description ?? "?"
    }

    /// The fields of the record, or nil when its payload does not decode.
    package static func describe(type: UInt8, payload: UnsafeRawBufferPointer, position: LogPosition) -> String? {
        do {
            switch MessageRecordType(rawValue: type) {
            case .message:
                return message(try MessageHeader.parse(payload, position: position, offset: 0), payload)
            case .relocate:
                let copy = try RelocateRecord.decode(payload, position: position)
                return "copy of the record at \(describe(copy.from)): " + message(copy.header, copy.message)
            case .delete:
                let delete = try DeleteRecord.decode(payload, position: position)
                return "conversation \(delete.key.conversation) createdAt \(Int64(bitPattern: delete.key.createdAt)) "
                    + "seq \(delete.key.seq) idHash \(hex(delete.idHash))"
            case .markRead:
                let mark = try MarkReadRecord.decode(payload, position: position)
                return "user \(mark.marker.user) conversation \(mark.marker.conversation) through createdAt "
                    + "\(Int64(bitPattern: mark.through.createdAt)) seq \(mark.through.seq)"
            case .newConversation, .newUser:
                let name = try NameRecord.decode(MessageRecordType(rawValue: type)!, payload, position: position)
                return "\(name.space == .conversation ? "conversation" : "user") \(name.id) name \"\(text(name.name))\""
            case .initialize:
                let initialize = try InitializeRecord.decode(payload, position: position)
                return "message format version \(initialize.formatVersion), cursor secret \(hex(initialize.cursorSecret))"
            case .retireSegment:
                let ids = try RetirementRecord.decode(payload, position: position)
                return "retires segments [\(ids.map(String.init).joined(separator: ", "))]"
            case nil:
                return nil
            }
        } catch {
            return nil
        }
    }

    /// "segment S offset O (0x…)".
    package static func describe(_ position: LogPosition) -> String {
        "segment \(LogPositions.segment(position)) offset \(LogPositions.offset(position)) (\(hex(position)))"
    }

    private static func message(_ header: MessageHeader, _ payload: UnsafeRawBufferPointer) -> String {
        let view = MessageView(header: header, payload: payload, conversation: "")
        let body = UnsafeRawBufferPointer(rebasing: payload[header.bodyStart..<(header.bodyStart + header.bodyLength)])
        var preview = text(UnsafeRawBufferPointer(rebasing: body.prefix(40)))
        if body.count > 40 { preview += "…" }
        var flags: [String] = []
        if header.flags & MessageFlags.edited != 0 { flags.append("edited") }
        if header.flags & MessageFlags.hasReplyTo != 0 { flags.append("reply") }
        return "seq \(header.seq) conversation \(header.conversation) createdAt \(Int64(bitPattern: header.createdAt)) "
            + "kind \(header.kind) flags \(header.flags)" + (flags.isEmpty ? "" : " (\(flags.joined(separator: ",")))")
            + " id \"\(view.id)\" sender \"\(view.sender)\"" + (view.replyTo.map { " replyTo \"\($0)\"" } ?? "")
            + " body \(header.bodyLength) B \"\(preview)\""
    }

    private static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
