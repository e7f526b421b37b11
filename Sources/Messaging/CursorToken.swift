import ScrollbackStorage

/// The cursor token: base64url (no padding) of 33 bytes: version u8, conversationID u64,
/// createdAt u64, seq u64, check u64, where check = fmix64(FNV-1a 64 of (secret LE ‖ the first
/// 25 bytes)) XOR secret. Versions 3 and 4 are positions in a conversation's messages issued
/// by a newest-first and an oldest-first walk (a token given back with the other order is
/// rejected); version 1, issued by earlier builds for either order, is still accepted in
/// both; version 2 is a position in the conversation list (conversationID, lastActivity,
/// seq 0); version 5 is a position in a user's inbox (conversationID, inbox rank, userID);
/// version 6 is a position in a search's results, bound to the query and its scope. One
/// kind of token is never accepted as another (spec/message-records.md, "Cursor token").
package enum CursorToken {
    /// Message positions of builds before the order was bound into the token.
    package static let legacyVersion: UInt8 = 1
    /// The version byte of conversation-list tokens.
    package static let listVersion: UInt8 = 2
    /// Message positions of a newest-first walk.
    package static let newestFirstVersion: UInt8 = 3
    /// Message positions of an oldest-first walk.
    package static let oldestFirstVersion: UInt8 = 4
    /// The version byte of inbox tokens (`MessageDatabase.inbox`).
    package static let inboxVersion: UInt8 = 5
    /// The version byte of search positions (conversationID, createdAt, seq of the last match
    /// returned), checked with the secret XOR a hash of the query's terms and scope, so a token
    /// continues only the search that issued it.
    package static let searchVersion: UInt8 = 6

    /// The version byte of a message position issued by a walk in this direction.
    package static func messageVersion(forward: Bool) -> UInt8 { forward ? oldestFirstVersion : newestFirstVersion }
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

    package static func encode(_ position: Position, secret: UInt64, version: UInt8) -> String {
        // On the stack: a keyset page makes one token (no array per token).
        withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { out in
            out[0] = version
            out.storeLE(position.conversation, at: 1)
            out.storeLE(position.createdAt, at: 9)
            out.storeLE(position.seq, at: 17)
            let c = check(UnsafeRawBufferPointer(rebasing: out[0..<25]), secret: secret)
            out.storeLE(c, at: 25)
            return Base64URL.encode(UnsafeRawBufferPointer(out))
        }
    }

    /// Decodes and checks a token of `version`; nil when it is malformed, of another version,
    /// or its check value does not match.
    package static func decode(_ token: String, secret: UInt64, version: UInt8) -> Position? {
        guard let (found, position) = decode(token, secret: secret), found == version else { return nil }
        return position
    }

    /// Decodes and checks a token of any version; nil when it is malformed or its check value
    /// does not match.
    package static func decode(_ token: String, secret: UInt64) -> (version: UInt8, position: Position)? {
        guard token.utf8.count == tokenLength else { return nil }
        func decode(_ text: UnsafeBufferPointer<UInt8>) -> (UInt8, Position)? {
            withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8) { raw -> (UInt8, Position)? in
                guard Base64URL.decode(text, into: raw) == byteCount else { return nil }
                let c = check(UnsafeRawBufferPointer(rebasing: raw[0..<25]), secret: secret)
                guard c == raw.loadLE(UInt64.self, at: 25) else { return nil }
                return (raw[0], Position(conversation: raw.loadLE(UInt64.self, at: 1),
                                         createdAt: raw.loadLE(UInt64.self, at: 9), seq: raw.loadLE(UInt64.self, at: 17)))
            }
        }
        if let decoded = token.utf8.withContiguousStorageIfAvailable(decode) { return decoded }
        return Array(token.utf8).withUnsafeBufferPointer(decode)
    }
}

/// RFC 4648 §5 base64url without padding.
package enum Base64URL {
    /// The encoding of `bytes`.
    package static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        String(unsafeUninitializedCapacity: (bytes.count * 4 + 2) / 3) { out in
            var i = 0, o = 0
            while i + 3 <= bytes.count {
                let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
                out[o] = character(v >> 18)
                out[o + 1] = character(v >> 12)
                out[o + 2] = character(v >> 6)
                out[o + 3] = character(v)
                i += 3
                o += 4
            }
            let rest = bytes.count - i
            if rest > 0 {
                let v = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
                out[o] = character(v >> 18)
                out[o + 1] = character(v >> 12)
                o += 2
                if rest == 2 {
                    out[o] = character(v >> 6)
                    o += 1
                }
            }
            return o
        }
    }

    /// The alphabet, by value (a constant: no allocation, no lazy initialization).
    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    /// The value of each byte, `invalid` for a byte not in the alphabet. (A table: a switch over
    /// the ranges mispredicts on the random characters of a token.)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: invalid, count: 256)
        for value in 0..<64 { table[Int(alphabet.utf8Start[value])] = UInt8(value) }
        return table
    }()
    private static let invalid: UInt8 = 0xFF

    /// The character of the low six bits of `v`.
    @inline(__always)
    static func character(_ v: UInt32) -> UInt8 {
        alphabet.utf8Start[Int(v & 63)]
    }

    /// Decodes canonical base64url without padding; nil for any other input.
    package static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        if chars.count % 4 == 1 { return nil }
        let decodedCount = chars.count * 3 / 4
        var valid = false
        let out = [UInt8](unsafeUninitializedCapacity: decodedCount) { buffer, count in
            valid = chars.withUnsafeBufferPointer { decode($0, into: UnsafeMutableRawBufferPointer(buffer)) } == decodedCount
            count = valid ? decodedCount : 0
        }
        return valid ? out : nil
    }

    /// Decodes canonical base64url without padding from `text` into the start of `out`;
    /// returns the number of bytes decoded, or nil when `text` is not canonical base64url or
    /// its bytes do not fit in `out`.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawBufferPointer) -> Int? {
        if text.count % 4 == 1 || text.count * 3 / 4 > out.count { return nil }
        return values.withUnsafeBufferPointer { values in decode(text, into: out, values: values) }
    }

    @inline(__always)
    private static func decode(_ text: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableRawBufferPointer,
                               values: UnsafeBufferPointer<UInt8>) -> Int? {
        var i = 0, o = 0
        while i < text.count {
            let n = min(4, text.count - i)
            var v: UInt32 = 0
            for j in 0..<4 {
                v <<= 6
                if j < n {
                    let d = values[Int(text[i + j])]
                    guard d != invalid else { return nil }
                    v |= UInt32(d)
                }
            }
            out[o] = UInt8(v >> 16 & 0xFF)
            if n > 2 { out[o + 1] = UInt8(v >> 8 & 0xFF) }
            if n > 3 { out[o + 2] = UInt8(v & 0xFF) }
            // Canonical form: unused low bits must be zero.
            if n == 2 && v & 0xFFFF != 0 { return nil }
            if n == 3 && v & 0xFF != 0 { return nil }
            o += n - 1
            i += n
        }
        return o
    }
}
