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
                let header = try MessageHeader.parse(payload, position: position, offset: 0)
                return message(header.key, header.body, MessageHeader.bodyRecord(of: payload))
            case .relocate:
                return "a compaction copy (format 1)"
            case .delete:
                let delete = try DeleteRecord.decode(payload, position: position)
                return "conversation \(delete.key.conversation) createdAt \(Int64(bitPattern: delete.key.createdAt)) "
                    + "seq \(delete.key.seq) id \"\(text(delete.id))\""
            case .markRead:
                let mark = try MarkReadRecord.decode(payload, position: position)
                return "user \(mark.marker.user) conversation \(mark.marker.conversation) through createdAt "
                    + "\(Int64(bitPattern: mark.through.createdAt)) seq \(mark.through.seq)"
                    + (mark.id.map { " id \"\(text($0))\"" } ?? "")
            case .newConversation, .newUser:
                let name = try NameRecord.decode(MessageRecordType(rawValue: type)!, payload, position: position)
                return "\(name.space == .conversation ? "conversation" : "user") \(name.id) name \"\(text(name.name))\""
            case .initialize:
                let initialize = try InitializeRecord.decode(payload, position: position)
                return "message format version \(initialize.formatVersion), cursor secret \(hex(initialize.cursorSecret))"
            case .retireSegment:
                let ids = try RetirementRecord.decode(payload, position: position)
                return "retires segments [\(ids.map(String.init).joined(separator: ", "))]"
            case .sealed, .attached, .merged:
                return EngineRecordDescription.describe(type: type, payload: payload, position: position, layout: MessageSchema.schema.liveness)
            case .join, .leave:
                let change = try MembershipRecord.decode(MessageRecordType(rawValue: type)!, payload, position: position)
                return "user \(change.entry.user) conversation \(change.entry.conversation)"
            case .bulkLoad:
                let load = try BulkLoadRecord.decode(payload, position: position)
                return "\(load.count) messages of run \(load.run) (segment \(load.segment))"
            case .replicaMark:
                let mark = try ReplicaMarkRecord.decode(payload, position: position)
                return "replica of source \(hex(mark.source)) through sequence \(mark.sequence)"
            case .searchEnable:
                return "turns the search index on"
            case .searchBuild:
                let build = try SearchBuildRecord.decode(payload, position: position)
                return "indexes \(build.entries.count) messages (\(build.entries.reduce(0) { $0 + $1.terms.count }) postings), "
                    + (build.built ? "build complete" : "build cursor \(MessageKey(build.cursor))")
            case .searchRemove:
                let entry = try SearchRemoveRecord.decode(payload, position: position)
                return "removes \(entry.terms.count) postings of message \(entry.key)"
            case .searchDisable:
                return "turns the search index off (frees its pages)"
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

    /// A message's fields (`record` is its body record), as a log or run record shows them.
    package static func message(_ key: MessageKey, _ body: MessageBody, _ record: UnsafeRawBufferPointer) -> String {
        MessageView.with(key: key, body: body, record: record, conversation: "") { view in describe(view, body) }
    }

    private static func describe(_ view: MessageView, _ body: MessageBody) -> String {
        let key = view.key
        let text = view.bodyBytes
        var preview = Self.text(UnsafeRawBufferPointer(rebasing: text.prefix(40)))
        if text.count > 40 { preview += "…" }
        var flags: [String] = []
        if body.flags & MessageFlags.edited != 0 { flags.append("edited") }
        if body.flags & MessageFlags.hasReplyTo != 0 { flags.append("reply") }
        if body.flags & MessageFlags.hasMetadata != 0 { flags.append("metadata") }
        return "seq \(key.seq) conversation \(key.conversation) createdAt \(Int64(bitPattern: key.createdAt)) "
            + "kind \(body.kind) flags \(body.flags)" + (flags.isEmpty ? "" : " (\(flags.joined(separator: ",")))")
            + " id \"\(view.id)\" sender \"\(view.sender)\"" + (view.replyTo.map { " replyTo \"\($0)\"" } ?? "")
            + (body.metadataLength > 0 ? " metadata \(body.metadataLength) B" : "")
            + " body \(body.bodyLength) B \"\(preview)\""
    }

    /// A run record of the message layer (a body record under its key), for `dump`.
    package static func describe(runRecord payload: UnsafeRawBufferPointer, key: RunKey) -> String? {
        guard let body = try? MessageBody.parse(payload, "run record") else { return nil }
        return message(MessageKey(key), body, payload)
    }

    private static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
