/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every Scrollback
/// structure on disk (spec/README.md, "Checksums").
///
/// Implementation: slicing-by-8 over eight 256-entry tables (8 KiB), processing eight bytes
/// per step. The stored value is the plain CRC (initial value 0xFFFFFFFF, final XOR
/// 0xFFFFFFFF), not masked: every checksum field in the format is computed over bytes that
/// never contain the checksum itself, so LevelDB's masking is not needed.
///
/// Check value: `CRC32C.checksum("123456789")` == 0xE3069283.
///
/// Thread-safety: stateless; the tables are immutable after first use.
package enum CRC32C {
    /// Extends `crc` (a finished CRC of earlier bytes, or 0 for none) over `bytes`.
    @inlinable
    package static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        ~update(~crc, bytes)
    }

    package static func checksum<C: Collection>(_ bytes: C, continuing crc: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), continuing: crc) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { checksum($0, continuing: crc) }
    }

    @usableFromInline
    static func update(_ start: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = start
        guard var p = bytes.baseAddress else { return crc }
        var n = bytes.count
        return tables.withUnsafeBufferPointer { t -> UInt32 in
            while n >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) ^ UInt64(crc)
                let lo = UInt32(truncatingIfNeeded: word)
                let hi = UInt32(truncatingIfNeeded: word >> 32)
                crc = t[7 * 256 + Int(lo & 0xFF)]
                    ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)]
                    ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)]
                    ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                p += 1
                n -= 1
            }
            return crc
        }
    }

    /// Slicing-by-8 tables: `tables[k*256 + b]` is the CRC of byte `b` followed by `k` zero bytes.
    @usableFromInline
    static let tables: [UInt32] = {
        let polynomial: UInt32 = 0x82F6_3B78
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1 }
            t[byte] = crc
        }
        for byte in 0..<256 {
            var crc = t[byte]
            for k in 1..<8 {
                crc = t[Int(crc & 0xFF)] ^ (crc >> 8)
                t[k * 256 + byte] = crc
            }
        }
        return t
    }()
}
