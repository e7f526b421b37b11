import ScrollbackBTree
import ScrollbackStorage

// The values of the message layer's trees (spec/message-records.md, "Trees"): each loaded
// from and stored to its bytes in one place. Everything is little-endian; on disk: never change.

/// A messages-tree value: the log position the message's current version was written at
/// (for a bulk-loaded message, its virtual segment and ordinal). The record is read from
/// the log, or — once the segment is sealed — from the segment's run, by key.
package struct MessagePointer: Equatable, Sendable {
    package var position: LogPosition

    static let size = 8

    package init(position: LogPosition) { self.position = position }

    package init(_ value: UnsafeRawBufferPointer) { self.init(position: value.loadLE(UInt64.self, at: 0)) }

    /// Only the record's position (what the read paths need).
    @inline(__always)
    static func position(in value: UnsafeRawBufferPointer) -> LogPosition { value.loadLE(UInt64.self, at: 0) }

    var bytes: [UInt8] {
        var value = [UInt8](repeating: 0, count: Self.size)
        value.withUnsafeMutableBytes { $0.storeLE(position, at: 0) }
        return value
    }

    /// The value's bytes on the stack, for the duration of `body` (no allocation: the write
    /// path's form of `bytes`).
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: position.littleEndian, body)
    }
}

/// A message-id index value: the message's packed `MessageKey`.
package struct MessageIDValue: Equatable, Sendable {
    package var key: MessageKey

    static let size = 16

    package init(key: MessageKey) { self.key = key }

    package init(_ value: UnsafeRawBufferPointer) {
        key = MessageKey(BTreeKey(value.loadLE(UInt64.self, at: 0), value.loadLE(UInt64.self, at: 8)))
    }

    var bytes: [UInt8] {
        let packed = key.treeKey
        return twoWords(packed.w0, packed.w1)
    }

    /// The value's bytes on the stack, for the duration of `body` (no allocation).
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let packed = key.treeKey
        return try withUnsafeBytes(of: (packed.w0.littleEndian, packed.w1.littleEndian), body)
    }
}

/// A conversation record (64 bytes): its live message count, the key position of its newest
/// live message (both 0 when the count is 0), its member count and its name (inline up to 31
/// bytes; a longer name keeps its first 31 bytes here and the rest in the long-name tree).
package struct ConversationRecord: Equatable, Sendable {
    package var liveCount: UInt64
    package var newestCreatedAt: UInt64
    package var newestSeq: UInt64
    package var members: UInt32

    static let size = 64
    static let liveCountOffset = 0        // u64
    static let newestCreatedAtOffset = 8  // u64
    static let newestSeqOffset = 16       // u64 (0: no live message)
    static let membersOffset = 24         // u32, then 4 reserved bytes (zero)
    static let nameOffset = 33            // after the name length u8 at 32; 31 bytes, zero padded

    package init(liveCount: UInt64, newestCreatedAt: UInt64, newestSeq: UInt64, members: UInt32 = 0) {
        self.liveCount = liveCount
        self.newestCreatedAt = newestCreatedAt
        self.newestSeq = newestSeq
        self.members = members
    }

    /// The counts of a stored record (the name is read with `NameValue`).
    package init(_ value: UnsafeRawBufferPointer) {
        self.init(liveCount: value.loadLE(UInt64.self, at: Self.liveCountOffset),
                  newestCreatedAt: value.loadLE(UInt64.self, at: Self.newestCreatedAtOffset),
                  newestSeq: value.loadLE(UInt64.self, at: Self.newestSeqOffset),
                  members: value.loadLE(UInt32.self, at: Self.membersOffset))
    }

    /// Writes the counts into a copy of a stored record (the name stays).
    func store(into value: UnsafeMutableRawBufferPointer) {
        value.storeLE(liveCount, at: Self.liveCountOffset)
        value.storeLE(newestCreatedAt, at: Self.newestCreatedAtOffset)
        value.storeLE(newestSeq, at: Self.newestSeqOffset)
        value.storeLE(members, at: Self.membersOffset)
    }
}

/// A user record (32 bytes): the user's name (inline up to 31 bytes, like a conversation's).
package enum UserRecord {
    static let size = 32
    static let nameOffset = 1   // after the name length u8 at 0; 31 bytes, zero padded
}

/// The name field of conversation and user records: a length byte, then up to 31 bytes
/// inline; the bytes past 31 of a longer name are in the long-name tree, 32 per chunk.
enum NameValue {
    static let inlineBytes = 31

    static func nameOffset(_ space: NameSpace) -> Int {
        space == .conversation ? ConversationRecord.nameOffset : UserRecord.nameOffset
    }

    static func recordSize(_ space: NameSpace) -> Int {
        space == .conversation ? ConversationRecord.size : UserRecord.size
    }

    /// A new record of `space` holding `name` (its inline part).
    static func newRecord(_ space: NameSpace, name: UnsafeRawBufferPointer) -> [UInt8] {
        let nameOffset = nameOffset(space)
        var value = [UInt8](repeating: 0, count: recordSize(space))
        value.withUnsafeMutableBytes { out in
            out[nameOffset - 1] = UInt8(name.count)
            let inline = min(name.count, inlineBytes)
            UnsafeMutableRawBufferPointer(rebasing: out[nameOffset..<(nameOffset + inline)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: name[0..<inline]))
        }
        return value
    }

    /// The full length of the name in a record.
    static func length(in value: UnsafeRawBufferPointer, _ space: NameSpace) -> Int { Int(value[nameOffset(space) - 1]) }

    /// The inline bytes of the name in a record (all of it when it is at most 31 bytes).
    static func inline(in value: UnsafeRawBufferPointer, _ space: NameSpace) -> UnsafeRawBufferPointer {
        let nameOffset = nameOffset(space)
        let length = min(Int(value[nameOffset - 1]), inlineBytes, value.count - nameOffset)
        return UnsafeRawBufferPointer(rebasing: value[nameOffset..<(nameOffset + length)])
    }
}

/// The chunks of long names (the bytes past the first 31), 32 bytes each, zero padded.
enum LongName {
    static let chunkSize = 32

    /// Chunk keys and values holding bytes 31… of `name`.
    static func chunks(_ space: NameSpace, id: UInt64, name: UnsafeRawBufferPointer) -> [(BTreeKey, [UInt8])] {
        guard name.count > NameValue.inlineBytes else { return [] }
        var result: [(BTreeKey, [UInt8])] = []
        var offset = NameValue.inlineBytes
        var chunk: UInt64 = 0
        while offset < name.count {
            let end = min(offset + chunkSize, name.count)
            var value = [UInt8](repeating: 0, count: chunkSize)
            value.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: name[offset..<end])) }
            result.append((LongNameKey(space: space, id: id, chunk: chunk).treeKey, value))
            offset = end
            chunk += 1
        }
        return result
    }
}

/// A user's entry in a conversation (24 bytes): the read marker — the key position
/// (createdAt, seq) of the message marked, which stays meaningful when that message is
/// deleted — and the membership.
package struct MarkerValue: Equatable, Sendable {
    package var createdAt: UInt64
    package var seq: UInt64
    package var flags: UInt64

    static let size = 24
    /// `flags` bits. on disk: never renumber.
    static let hasMarker: UInt64 = 1
    static let isMember: UInt64 = 2

    package init(createdAt: UInt64, seq: UInt64, flags: UInt64 = MarkerValue.hasMarker) {
        self.createdAt = createdAt
        self.seq = seq
        self.flags = flags
    }

    package init(_ value: UnsafeRawBufferPointer) {
        self.init(createdAt: value.loadLE(UInt64.self, at: 0), seq: value.loadLE(UInt64.self, at: 8),
                  flags: value.loadLE(UInt64.self, at: 16))
    }

    init(through key: MessageKey) { self.init(createdAt: key.createdAt, seq: key.seq) }

    package var marks: Bool { flags & Self.hasMarker != 0 }
    package var member: Bool { flags & Self.isMember != 0 }

    /// Whether this marker is after `other`'s (markers only move forward; no marker is before
    /// every marker).
    func isAfter(_ other: MarkerValue) -> Bool {
        guard other.marks else { return true }
        return createdAt > other.createdAt || (createdAt == other.createdAt && seq > other.seq)
    }

    var bytes: [UInt8] {
        var value = [UInt8](repeating: 0, count: Self.size)
        value.withUnsafeMutableBytes {
            $0.storeLE(createdAt, at: 0)
            $0.storeLE(seq, at: 8)
            $0.storeLE(flags, at: 16)
        }
        return value
    }
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
