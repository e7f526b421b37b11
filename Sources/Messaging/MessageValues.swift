import ScrollbackStorage

// The values of the message layer's trees (spec/message-records.md, "Trees"): each loaded
// from and stored to its bytes in one place. Everything is little-endian; on disk: never change.

/// A messages-tree value: where the message's record is (the frame at `position`,
/// `frameLength` bytes), and its kind and flags.
package struct MessagePointer: Equatable, Sendable {
    package var position: LogPosition
    package var frameLength: UInt32
    package var kind: UInt8
    package var flags: UInt8

    static let size = 16
    static let positionOffset = 0     // u64 log position of the record frame
    static let lengthOffset = 8       // u32 frame length (header + payload)
    static let kindOffset = 12        // u8
    static let flagsOffset = 13       // u8
    static let reservedOffset = 14    // u16, zero

    package init(position: LogPosition, frameLength: UInt32, kind: UInt8, flags: UInt8) {
        self.position = position
        self.frameLength = frameLength
        self.kind = kind
        self.flags = flags
    }

    package init(_ value: UnsafeRawBufferPointer) {
        self.init(position: value.loadLE(UInt64.self, at: Self.positionOffset),
                  frameLength: value.loadLE(UInt32.self, at: Self.lengthOffset),
                  kind: value[Self.kindOffset], flags: value[Self.flagsOffset])
    }

    /// Only the record's position (what the read paths need).
    @inline(__always)
    static func position(in value: UnsafeRawBufferPointer) -> LogPosition {
        value.loadLE(UInt64.self, at: positionOffset)
    }

    package func store(into value: UnsafeMutableRawBufferPointer) {
        value.storeLE(position, at: Self.positionOffset)
        value.storeLE(frameLength, at: Self.lengthOffset)
        value[Self.kindOffset] = kind
        value[Self.flagsOffset] = flags
        value.storeLE(UInt16(0), at: Self.reservedOffset)
    }

    var bytes: [UInt8] {
        var value = [UInt8](repeating: 0, count: Self.size)
        value.withUnsafeMutableBytes { store(into: $0) }
        return value
    }
}

/// A message-id index value: with the key's seq, it names the message's `MessageKey`.
package struct MessageIDValue: Equatable, Sendable {
    package var conversation: UInt64
    package var createdAt: UInt64

    static let size = 16

    package init(conversation: UInt64, createdAt: UInt64) {
        self.conversation = conversation
        self.createdAt = createdAt
    }

    package init(_ value: UnsafeRawBufferPointer) {
        self.init(conversation: value.loadLE(UInt64.self, at: 0), createdAt: value.loadLE(UInt64.self, at: 8))
    }

    func messageKey(seq: UInt64) -> MessageKey { MessageKey(conversation: conversation, createdAt: createdAt, seq: seq) }

    var bytes: [UInt8] { twoWords(conversation, createdAt) }
}

/// A conversation record: its live message count, the key position of its newest live
/// message (both 0 when the count is 0) and its name.
package struct ConversationRecord: Equatable, Sendable {
    package var liveCount: UInt64
    package var newestCreatedAt: UInt64
    package var newestSeq: UInt64

    static let size = 280
    static let liveCountOffset = 0        // u64
    static let newestCreatedAtOffset = 8  // u64
    static let newestSeqOffset = 16       // u64 (0: no live message)
    static let nameOffset = 25            // after the name length u8 at 24; 255 bytes, zero padded

    package init(liveCount: UInt64, newestCreatedAt: UInt64, newestSeq: UInt64) {
        self.liveCount = liveCount
        self.newestCreatedAt = newestCreatedAt
        self.newestSeq = newestSeq
    }

    /// The counts of a stored record (the name is read with `name(in:)`).
    package init(_ value: UnsafeRawBufferPointer) {
        self.init(liveCount: value.loadLE(UInt64.self, at: Self.liveCountOffset),
                  newestCreatedAt: value.loadLE(UInt64.self, at: Self.newestCreatedAtOffset),
                  newestSeq: value.loadLE(UInt64.self, at: Self.newestSeqOffset))
    }

    /// Writes the counts into a copy of a stored record (the name stays).
    func store(into value: UnsafeMutableRawBufferPointer) {
        value.storeLE(liveCount, at: Self.liveCountOffset)
        value.storeLE(newestCreatedAt, at: Self.newestCreatedAtOffset)
        value.storeLE(newestSeq, at: Self.newestSeqOffset)
    }

    /// A new conversation: no messages yet.
    static func new(name: UnsafeRawBufferPointer) -> [UInt8] { NamedValue.new(size: size, nameOffset: nameOffset, name: name) }

    static func nameBytes(in value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        NamedValue.name(in: value, nameOffset: nameOffset)
    }

    /// The conversation's name.
    static func name(in value: UnsafeRawBufferPointer) -> String { String(decoding: nameBytes(in: value), as: UTF8.self) }
}

/// A user record: the user's name.
package enum UserRecord {
    static let size = 256
    static let nameOffset = 1   // after the name length u8 at 0; 255 bytes, zero padded

    static func new(name: UnsafeRawBufferPointer) -> [UInt8] { NamedValue.new(size: size, nameOffset: nameOffset, name: name) }

    static func nameBytes(in value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        NamedValue.name(in: value, nameOffset: nameOffset)
    }
}

/// The name field of conversation and user records: a length byte, then the bytes.
enum NamedValue {
    static func new(size: Int, nameOffset: Int, name: UnsafeRawBufferPointer) -> [UInt8] {
        var value = [UInt8](repeating: 0, count: size)
        value.withUnsafeMutableBytes { out in
            out[nameOffset - 1] = UInt8(name.count)
            UnsafeMutableRawBufferPointer(rebasing: out[nameOffset..<(nameOffset + name.count)]).copyMemory(from: name)
        }
        return value
    }

    static func name(in value: UnsafeRawBufferPointer, nameOffset: Int) -> UnsafeRawBufferPointer {
        let length = min(Int(value[nameOffset - 1]), value.count - nameOffset)
        return UnsafeRawBufferPointer(rebasing: value[nameOffset..<(nameOffset + length)])
    }
}

/// A read marker: the key position (createdAt, seq) of the message marked in the
/// conversation, which stays meaningful when that message is deleted.
package struct MarkerValue: Equatable, Sendable {
    package var createdAt: UInt64
    package var seq: UInt64

    static let size = 16

    package init(createdAt: UInt64, seq: UInt64) {
        self.createdAt = createdAt
        self.seq = seq
    }

    package init(_ value: UnsafeRawBufferPointer) {
        self.init(createdAt: value.loadLE(UInt64.self, at: 0), seq: value.loadLE(UInt64.self, at: 8))
    }

    init(through key: MessageKey) { self.init(createdAt: key.createdAt, seq: key.seq) }

    /// Whether this marker is after `other` (markers only move forward).
    func isAfter(_ other: MarkerValue) -> Bool {
        createdAt > other.createdAt || (createdAt == other.createdAt && seq > other.seq)
    }

    var bytes: [UInt8] { twoWords(createdAt, seq) }
}

/// A 16-byte value of two little-endian words.
private func twoWords(_ first: UInt64, _ second: UInt64) -> [UInt8] {
    var value = [UInt8](repeating: 0, count: 16)
    value.withUnsafeMutableBytes {
        $0.storeLE(first, at: 0)
        $0.storeLE(second, at: 8)
    }
    return value
}
