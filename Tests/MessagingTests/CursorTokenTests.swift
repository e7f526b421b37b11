import Foundation
@testable import ScrollbackMessaging
import Testing
import TestSupport

/// Base64url and the cursor token's encoding, against Foundation's base64 and by round trip.
@Suite struct CursorTokenTests {
    /// Foundation's base64 of `bytes` in the URL alphabet without padding (RFC 4648 §5).
    func reference(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test func base64URLAgreesWithFoundation() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var generator = SeededRandom(seed: seed)
        for length in 0...70 {
            for _ in 0..<20 {
                let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                let encoded = bytes.withUnsafeBytes { Base64URL.encode($0) }
                #expect(encoded == reference(bytes), "seed \(seed) length \(length)")
                #expect(Base64URL.decode(encoded) == bytes, "seed \(seed) length \(length)")
            }
        }
    }

    @Test func base64URLRejectsWhatIsNotCanonical() {
        #expect(Base64URL.decode("A") == nil)            // a length of 4k + 1
        #expect(Base64URL.decode("AB") == nil)           // unused low bits set
        #expect(Base64URL.decode("AAB") == nil)
        #expect(Base64URL.decode("AA") == [0])
        #expect(Base64URL.decode("AAA") == [0, 0])
        #expect(Base64URL.decode("AA==") == nil)         // padding
        #expect(Base64URL.decode("ab+c") == nil)         // the standard alphabet
        #expect(Base64URL.decode("ab/c") == nil)
        #expect(Base64URL.decode("ab c") == nil)
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("_-_-") == [0xFF, 0xEF, 0xFE])
        // Every byte value in every position: exactly the 64 of the alphabet decode, to their value.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out = [UInt8](repeating: 0, count: 3)
        for byte in 0...255 {
            for position in 0..<4 {
                var text = [UInt8](repeating: UInt8(ascii: "A"), count: 4)
                text[position] = UInt8(byte)
                let decoded = text.withUnsafeBufferPointer { text in out.withUnsafeMutableBytes { Base64URL.decode(text, into: $0) } }
                guard let value = alphabet.firstIndex(of: UInt8(byte)) else {
                    #expect(decoded == nil, "byte \(byte) at \(position)")
                    continue
                }
                let expected = UInt32(value) << (6 * (3 - position))
                #expect(decoded == 3 && out == [UInt8(expected >> 16 & 0xFF), UInt8(expected >> 8 & 0xFF), UInt8(expected & 0xFF)],
                        "byte \(byte) at \(position)")
            }
        }
    }

    @Test func tokensRoundTripAndRejectDamage() {
        let secret: UInt64 = 0x0123_4567_89AB_CDEF
        let position = CursorToken.Position(conversation: 77, createdAt: 1_700_000_000_123, seq: 9)
        let token = CursorToken.encode(position, secret: secret, version: CursorToken.newestFirstVersion)
        #expect(token.utf8.count == CursorToken.tokenLength)
        #expect(CursorToken.decode(token, secret: secret, version: CursorToken.newestFirstVersion) == position)
        #expect(CursorToken.decode(token, secret: secret, version: CursorToken.oldestFirstVersion) == nil)
        #expect(CursorToken.decode(token, secret: secret ^ 1) == nil)
        // Every one-character change is rejected (by the alphabet, canonical form or the check).
        let characters = Array(token.utf8)
        for i in characters.indices {
            for replacement in Array("Aa0-_+/=".utf8) where replacement != characters[i] {
                var damaged = characters
                damaged[i] = replacement
                #expect(CursorToken.decode(String(decoding: damaged, as: UTF8.self), secret: secret) == nil, "at \(i)")
            }
        }
        // A token that is not a native string (bridged or not contiguous) decodes the same.
        let copy = String(token.utf8.map { Character(Unicode.Scalar($0)) })
        #expect(CursorToken.decode(copy, secret: secret, version: CursorToken.newestFirstVersion) == position)
        #expect(CursorToken.decode(token + "A", secret: secret) == nil)
        #expect(CursorToken.decode(String(token.dropLast()), secret: secret) == nil)
    }
}
