import ScrollbackFormat
import Testing
import TestSupport

/// CRC32C on lengths that reach the four-stream block paths (4×64 and 4×1024 bytes) and their
/// boundaries, at unaligned addresses, against an independent bitwise reference.
@Suite struct CRC32CStripeTests {
    static func bitwise(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        var register = ~crc
        for byte in bytes {
            register ^= UInt32(byte)
            for _ in 0..<8 { register = (register & 1) != 0 ? (register >> 1) ^ 0x82F6_3B78 : register >> 1 }
        }
        return ~register
    }

    static func randomBytes(_ count: Int, _ rng: inout SeededRandom) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    @Test func blockBoundariesMatchTheBitwiseReference() {
        var lengths: [Int] = []
        for boundary in [8, 256, 4096, 4096 + 256, 8192, 3 * 4096 + 3 * 256 + 8] {
            lengths += [boundary - 9, boundary - 8, boundary - 1, boundary, boundary + 1, boundary + 7, boundary + 8]
        }
        var rng = SeededRandom(seed: 42)
        let data = Self.randomBytes(3 * 4096 + 3 * 256 + 100, &rng)
        for length in lengths where length >= 0 {
            for misalignment in [0, 1, 3, 7] where misalignment + length <= data.count {
                let slice = data[misalignment..<(misalignment + length)]
                #expect(CRC32C.checksum(slice) == Self.bitwise(slice), "length \(length) misalignment \(misalignment)")
            }
        }
    }

    @Test func randomLengthsAndSplits() {
        for seed in TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6, 7, 8]) {
            var rng = SeededRandom(seed: seed)
            let data = Self.randomBytes(Int.random(in: 0...20_000, using: &rng), &rng)
            let whole = CRC32C.checksum(data)
            #expect(whole == Self.bitwise(data), "seed \(seed) length \(data.count)")
            // Any split into pieces, continued, gives the same checksum.
            var crc: UInt32 = 0
            var start = 0
            while start < data.count {
                let end = min(data.count, start + Int.random(in: 0...5000, using: &rng))
                crc = CRC32C.checksum(data[start..<end], continuing: crc)
                start = end
            }
            #expect(crc == whole, "seed \(seed)")
        }
    }

    @Test func oneMebibyte() {
        var rng = SeededRandom(seed: 9)
        let data = Self.randomBytes(1 << 20, &rng)
        let whole = CRC32C.checksum(data)
        #expect(whole == Self.bitwise(data))
        let half = CRC32C.checksum(data[..<(1 << 19)])
        #expect(CRC32C.checksum(data[(1 << 19)...], continuing: half) == whole)
        // A single flipped bit anywhere changes the checksum.
        var damaged = data
        damaged[123_457] ^= 0x10
        #expect(CRC32C.checksum(damaged) != whole)
    }
}
