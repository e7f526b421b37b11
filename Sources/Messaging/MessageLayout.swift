// See spec/message-records.md
//
// Constants mirroring the message-layer document: tree slots and their key/value layouts,
// log record types and payload layouts, counters, the hash function and the cursor token.
// (They live here rather than under Sources/Format because they belong to the message layer,
// which the storage core below does not know.)

import ScrollbackStorage

/// Tree slots of the message layer. on disk: never renumber.
package enum MessageTree {
    /// (conversationID, createdAt, seq) → 16 B message pointer.
    package static let messages = 0
    /// (hash64(id), seq) → 16 B: conversationID u64, createdAt u64.
    package static let messageIDs = 1
    /// (namespace, hash64(name), internal id) → 0 B.
    package static let names = 2
    /// (conversationID) → 280 B conversation record.
    package static let conversations = 3
    /// (newest createdAt, conversationID) → 0 B.
    package static let activity = 4
    /// (userID) → 256 B user record.
    package static let users = 5
    /// (userID, conversationID) → 16 B: marker createdAt u64, marker seq u64.
    package static let readMarkers = 6
    /// (segment id) → 16 B: record bytes u64, live record bytes u64.
    package static let segments = 7
}

/// Layouts of the tree values.
package enum MessageValueLayout {
    // messages (slot 0) value
    package static let messageValueSize = 16
    package static let positionOffset = 0      // u64 log position of the record frame
    package static let lengthOffset = 8        // u32 frame length (header + payload)
    package static let kindOffset = 12         // u8
    package static let flagsOffset = 13        // u8
    // 14..<16 reserved (zero)

    // messageIDs (slot 1) value
    package static let idValueSize = 16        // conversationID u64, createdAt u64

    // names (slot 2) namespaces. on disk: never renumber.
    package static let conversationNamespace: UInt64 = 1
    package static let userNamespace: UInt64 = 2

    // conversations (slot 3) value
    package static let conversationValueSize = 280
    package static let liveCountOffset = 0     // u64
    package static let newestCreatedAtOffset = 8 // u64
    package static let newestSeqOffset = 16    // u64 (0: no live message)
    package static let conversationNameLengthOffset = 24  // u8
    package static let conversationNameOffset = 25        // 255 bytes, zero padded

    // users (slot 5) value
    package static let userValueSize = 256
    package static let userNameLengthOffset = 0  // u8
    package static let userNameOffset = 1        // 255 bytes, zero padded

    // readMarkers (slot 6) value
    package static let markerValueSize = 16

    // segments (slot 7): the storage engine's segment table (`SegmentAccount`).
}

/// Message flags (slot 0 value byte 13 and record byte 25). on disk: never renumber.
package enum MessageFlags {
    package static let edited: UInt8 = 1
    package static let hasReplyTo: UInt8 = 2
    package static let known: UInt8 = 3
}

/// Log record types of the message layer (caller range 16…255). on disk: never renumber.
package enum MessageRecordType {
    package static let message: UInt8 = 16
    package static let delete: UInt8 = 17
    package static let markRead: UInt8 = 18
    package static let newConversation: UInt8 = 19
    package static let newUser: UInt8 = 20
    /// A message record copied by compaction: fromPosition u64, then a type-16 payload.
    package static let relocate: UInt8 = 21
    /// Written once when the store is created: layer format version u64, cursor secret u64.
    package static let initialize: UInt8 = 22
    /// The end of a compaction: it forgets segments whose records are all dead (their files
    /// are removed afterwards): count u64, then count segment ids u64. Adds 1 to the
    /// compactions counter. Written and applied by the storage engine (`LivenessLayout`).
    package static let retireSegment: UInt8 = 23
}

/// Payload layout of a type-16 message record (and of a type-21 record after its first 8 bytes).
package enum MessageRecordLayout {
    package static let seqOffset = 0             // u64
    package static let conversationOffset = 8    // u64
    package static let createdAtOffset = 16      // u64
    package static let kindOffset = 24           // u8
    package static let flagsOffset = 25          // u8
    package static let idLengthOffset = 26       // u8
    package static let senderLengthOffset = 27   // u8
    package static let replyToLengthOffset = 28  // u8
    package static let reservedOffset = 29       // u8 (zero)
    package static let bodyLengthOffset = 30     // u32
    package static let headerSize = 34
    /// A relocate record starts with the position of the record it copies.
    package static let relocatePrefix = 8

    package static let deletePayloadSize = 32    // conversationID, createdAt, seq, idHash
    package static let markReadPayloadSize = 32  // userID, conversationID, createdAt, seq
    package static let initializePayloadSize = 16
}

/// Counter slots of `CommittedState.counters`. on disk: never renumber.
package enum MessageCounter {
    package static let nextSeq = 0
    package static let nextConversation = 1
    package static let nextUser = 2
    package static let liveMessages = 3
    package static let cursorSecret = 4
    package static let compactions = 5
    /// Message-layer format version (0 before the initialize record is applied).
    package static let formatVersion = 6
}

/// Versions and limits.
package enum MessageLimits {
    /// Message-layer format version (spec/message-records.md, "Version history").
    package static let formatVersion: UInt64 = 1
    package static let maxIDBytes = 128
    package static let maxNameBytes = 255
    package static let maxCreatedAt: Int64 = 1 << 53
    package static let maxBodyLimit = 16 << 20
}

/// The fixed 64-bit hash of names and ids (on disk: never change): FNV-1a 64 over the UTF-8
/// bytes, then the murmur3 fmix64 finalizer.
package enum Hash64 {
    @inline(__always)
    package static func fmix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    @inline(__always)
    package static func fnv1a(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
        var h = seed
        for byte in bytes {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        return h
    }

    package static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        fmix(fnv1a(bytes))
    }

    package static func hash(_ string: String) -> UInt64 {
        var copy = string
        return copy.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }
}

/// The cursor token: base64url (no padding) of 33 bytes: version u8 (1), conversationID u64,
/// createdAt u64, seq u64, check u64, where check = fmix64(FNV-1a 64 of (secret LE ‖ the first
/// 25 bytes)) XOR secret.
package enum CursorToken {
    package static let version: UInt8 = 1
    package static let byteCount = 33
    package static let tokenLength = 44

    package struct Position: Equatable, Sendable {
        package var conversation: UInt64
        package var createdAt: UInt64
        package var seq: UInt64
        package init(conversation: UInt64, createdAt: UInt64, seq: UInt64) {
            self.conversation = conversation
            self.createdAt = createdAt
            self.seq = seq
        }
    }

    static func check(_ first25: UnsafeRawBufferPointer, secret: UInt64) -> UInt64 {
        var little = secret.littleEndian
        let seeded = withUnsafeBytes(of: &little) { Hash64.fnv1a($0) }
        return Hash64.fmix(Hash64.fnv1a(first25, seed: seeded)) ^ secret
    }

    package static func encode(_ position: Position, secret: UInt64) -> String {
        var bytes = [UInt8](repeating: 0, count: byteCount)
        bytes.withUnsafeMutableBytes { out in
            out[0] = version
            out.storeLE(position.conversation, at: 1)
            out.storeLE(position.createdAt, at: 9)
            out.storeLE(position.seq, at: 17)
            let c = check(UnsafeRawBufferPointer(rebasing: out[0..<25]), secret: secret)
            out.storeLE(c, at: 25)
        }
        return Base64URL.encode(bytes)
    }

    /// Decodes and checks a token; nil when it is malformed or its check value does not match.
    package static func decode(_ token: String, secret: UInt64) -> Position? {
        guard token.utf8.count == tokenLength, let bytes = Base64URL.decode(token), bytes.count == byteCount else {
            return nil
        }
        return bytes.withUnsafeBytes { raw -> Position? in
            guard raw[0] == version else { return nil }
            let c = check(UnsafeRawBufferPointer(rebasing: raw[0..<25]), secret: secret)
            guard c == raw.loadLE(UInt64.self, at: 25) else { return nil }
            return Position(conversation: raw.loadLE(UInt64.self, at: 1), createdAt: raw.loadLE(UInt64.self, at: 9),
                            seq: raw.loadLE(UInt64.self, at: 17))
        }
    }
}

/// RFC 4648 §5 base64url without padding.
package enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
            out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let v = UInt32(bytes[i]) << 16
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
        } else if rest == 2 {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(alphabet[Int(v >> 6 & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func value(_ c: UInt8) -> UInt32? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }

    /// Decodes canonical base64url without padding; nil for any other input.
    package static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        if chars.count % 4 == 1 { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count * 3 / 4)
        var i = 0
        while i < chars.count {
            let n = min(4, chars.count - i)
            var v: UInt32 = 0
            for j in 0..<4 {
                v <<= 6
                if j < n {
                    guard let d = value(chars[i + j]) else { return nil }
                    v |= d
                }
            }
            out.append(UInt8(v >> 16 & 0xFF))
            if n > 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if n > 3 { out.append(UInt8(v & 0xFF)) }
            // Canonical form: unused low bits must be zero.
            if n == 2 && v & 0xFFFF != 0 { return nil }
            if n == 3 && v & 0xFF != 0 { return nil }
            i += n
        }
        return out
    }
}
