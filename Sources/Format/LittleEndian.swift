// Little-endian fixed-width codecs over raw buffers. Every on-disk integer in Scrollback is
// little-endian (spec/README.md). Two flavours:
//  - `load…(at:)` / `store…(at:)`: unchecked except for debug assertions; for code that has
//    already validated the bounds (page views whose size is fixed and known).
//  - `ByteReader`: bounds-checked cursor for decoding untrusted bytes; throws `.corrupted`.

extension UnsafeRawBufferPointer {
    /// Reads a little-endian integer at `offset`. REQUIRES: `offset + size <= count`.
    @inlinable @inline(__always)
    package func loadLE<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= count, "loadLE out of bounds")
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    /// Reads a little-endian integer at `offset`. REQUIRES: `offset + size <= count`.
    @inlinable @inline(__always)
    package func loadLE<T: FixedWidthInteger>(_: T.Type = T.self, at offset: Int) -> T {
        UnsafeRawBufferPointer(self).loadLE(T.self, at: offset)
    }

    /// Writes `value` little-endian at `offset`. REQUIRES: `offset + size <= count`.
    @inlinable @inline(__always)
    package func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        assert(offset >= 0 && offset + MemoryLayout<T>.size <= count, "storeLE out of bounds")
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

/// A bounds-checked reader over untrusted bytes. Every read that would run past the end
/// throws `StorageError.corrupted` with the file name and the absolute file offset
/// (`baseOffset` + position), so errors point at the damaged byte.
package struct ByteReader {
    package let bytes: UnsafeRawBufferPointer
    package var position: Int
    package let file: String
    package let baseOffset: UInt64

    package init(_ bytes: UnsafeRawBufferPointer, file: String, baseOffset: UInt64 = 0, position: Int = 0) {
        self.bytes = bytes
        self.position = position
        self.file = file
        self.baseOffset = baseOffset
    }

    package var remaining: Int { bytes.count - position }
    package var absoluteOffset: UInt64 { baseOffset + UInt64(position) }

    package func corruption(_ reason: String, at relative: Int? = nil) -> StorageError {
        .corrupted(file: file, offset: baseOffset + UInt64(relative ?? position), reason: reason)
    }

    package mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard position >= 0, size <= bytes.count - position else {
            throw corruption("truncated: need \(size) bytes, \(max(0, remaining)) left")
        }
        let value = bytes.loadLE(T.self, at: position)
        position += size
        return value
    }

    /// Returns a view of the next `count` bytes and advances past them.
    package mutating func readBytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= bytes.count - position else {
            throw corruption("truncated: need \(count) bytes, \(max(0, remaining)) left")
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
        position += count
        return slice
    }

    package mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let start = position
        while true {
            guard position < bytes.count else { throw corruption("truncated varint", at: start) }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 1 { throw corruption("varint overflows 64 bits", at: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw corruption("varint longer than 10 bytes", at: start) }
        }
    }

    package mutating func skip(_ count: Int) throws {
        _ = try readBytes(count)
    }
}

/// An append-only little-endian encoder into a growable byte array. Used off the hot path
/// (meta pages, log record payloads built once per commit).
package struct ByteWriter {
    package var bytes: [UInt8]

    package init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    package var count: Int { bytes.count }

    @inlinable
    package mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    package mutating func write(bytes other: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: other)
    }

    package mutating func write<C: Collection>(contentsOf other: C) where C.Element == UInt8 {
        bytes.append(contentsOf: other)
    }

    package mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Overwrites a little-endian value at an earlier position (for back-patched lengths).
    package mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= bytes.count, "patch out of bounds")
        bytes.withUnsafeMutableBytes { $0.storeLE(value, at: offset) }
    }
}

/// Varint (unsigned LEB128) helpers.
package enum Varint {
    /// Number of bytes `value` takes as a varint (1…10).
    @inlinable
    package static func encodedSize(_ value: UInt64) -> Int {
        let bits = 64 - value.leadingZeroBitCount
        return max(1, (bits + 6) / 7)
    }
}
