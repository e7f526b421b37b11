#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A string compared and hashed by its UTF-8 bytes: the identity of a name or id in the store.
///
/// Swift's `String` equality is Unicode canonical equivalence (`"é" == "e\u{301}"`), but the
/// store keeps and compares names and ids as bytes (the names index hashes the bytes; lookups
/// compare them), so two canonically equivalent names are two conversations. Maps and sets
/// in the message layer that stand for names or ids are keyed by `ByteString`, never by
/// `String`, so that a cache or a batch's pending entries never merge what the store keeps
/// apart. Hashing reads the string's contiguous UTF-8 (no allocation for native strings).
package struct ByteString: Hashable, Sendable, CustomStringConvertible {
    package let string: String

    @inline(__always)
    package init(_ string: String) { self.string = string }

    package static func == (a: ByteString, b: ByteString) -> Bool {
        // Native strings: one memcmp of their contiguous UTF-8; others byte by byte.
        let compared: Bool?? = a.string.utf8.withContiguousStorageIfAvailable { x in
            b.string.utf8.withContiguousStorageIfAvailable { y in
                x.count == y.count && (x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0)
            }
        }
        if case .some(.some(let equal)) = compared { return equal }
        return a.string.utf8.elementsEqual(b.string.utf8)
    }

    package func hash(into hasher: inout Hasher) {
        let done: Void? = string.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if done == nil {
            for byte in string.utf8 { hasher.combine(byte) }
        }
    }

    package var description: String { string }
}
