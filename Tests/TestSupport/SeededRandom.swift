/// A deterministic, seedable random generator (SplitMix64) for reproducible randomized
/// tests. Every randomized test prints its seed on failure so the run can be replayed.
package struct SeededRandom: RandomNumberGenerator, Sendable {
    package private(set) var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seeds for randomized tests: `SCROLLBACK_SEED=n` replays one seed; otherwise a fixed list.
package enum TestSeeds {
    package static func seeds(default defaults: [UInt64]) -> [UInt64] {
        if let text = getenvString("SCROLLBACK_SEED"), let seed = UInt64(text) { return [seed] }
        return defaults
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package func getenvString(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}
