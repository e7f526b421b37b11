import ScrollbackFormat
import Testing
import TestSupport

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, ascending.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    @Test func continuingEqualsWhole() {
        var rng = SeededRandom(seed: 7)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let whole = CRC32C.checksum(bytes)
            let split = Int.random(in: 0...length, using: &rng)
            let first = CRC32C.checksum(bytes[0..<split])
            #expect(CRC32C.checksum(bytes[split...], continuing: first) == whole, "length \(length) split \(split)")
            #expect(whole == bitwiseReference(bytes))
        }
    }

    private func bitwiseReference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}

@Suite struct CodecTests {
    @Test func varintRoundTripAndBounds() throws {
        let values: [UInt64] = [0, 1, 127, 128, 300, 16383, 16384, UInt64(UInt32.max), UInt64.max]
        var writer = ByteWriter()
        for v in values { writer.writeVarint(v) }
        try writer.bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw, file: "test")
            for v in values {
                let decoded = try reader.readVarint()
                #expect(decoded == v)
            }
            #expect(reader.remaining == 0)
        }
        for v in values {
            var w = ByteWriter()
            w.writeVarint(v)
            #expect(w.count == Varint.encodedSize(v))
        }
        // 11 continuation bytes and a truncated varint are corruption, not a trap.
        for bad in [[UInt8](repeating: 0x80, count: 11), [0x80, 0x80], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]] {
            bad.withUnsafeBytes { raw in
                var reader = ByteReader(raw, file: "f", baseOffset: 100)
                #expect(throws: StorageError.self) { try reader.readVarint() }
            }
        }
    }

    @Test func readerReportsFileAndOffset() {
        let bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeBytes { raw in
            var reader = ByteReader(raw, file: "seg", baseOffset: 4096)
            #expect((try? reader.read(UInt16.self)) == 0x0201)
            do {
                _ = try reader.read(UInt32.self)
                Issue.record("expected a corruption error")
            } catch {
                guard case let .corrupted(file, offset, _)? = error as? StorageError else { Issue.record("wrong error \(error)"); return }
                #expect(file == "seg")
                #expect(offset == 4098)
            }
        }
    }

    @Test func littleEndianLayout() {
        var w = ByteWriter()
        w.write(UInt32(0x1122_3344))
        w.write(UInt16(0xAABB))
        #expect(w.bytes == [0x44, 0x33, 0x22, 0x11, 0xBB, 0xAA])
    }
}
