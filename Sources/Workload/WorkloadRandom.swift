/// A small, fast, seedable pseudo-random generator (xoshiro256**, seeded by SplitMix64).
///
/// The dataset generator uses only this type (never the system generator), so a seed gives
/// the same dataset on every machine and every run. Not for cryptography.
package struct WorkloadRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    package init(seed: UInt64) {
        var sm = seed
        s0 = WorkloadRandom.splitMix(&sm)
        s1 = WorkloadRandom.splitMix(&sm)
        s2 = WorkloadRandom.splitMix(&sm)
        s3 = WorkloadRandom.splitMix(&sm)
    }

    /// A generator for an independent stream derived from `seed` and `stream`.
    package init(seed: UInt64, stream: UInt64) {
        self.init(seed: WorkloadRandom.mix(seed ^ WorkloadRandom.mix(stream &+ 0x9E37_79B9_7F4A_7C15)))
    }

    @inline(__always)
    private static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix(state)
    }

    /// The SplitMix64 / murmur3-style finalizer: a bijective 64-bit mix.
    @inline(__always)
    package static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    package mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in `0..<bound` (bound > 0), without modulo bias worth measuring (Lemire's method).
    @inline(__always)
    package mutating func below(_ bound: Int) -> Int {
        let product = next().multipliedFullWidth(by: UInt64(bound))
        return Int(product.high)
    }

    /// Uniform in [0, 1).
    @inline(__always)
    package mutating func unit() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// Walker/Vose alias table: O(1) sampling of an index with probability proportional to its
/// weight. Memory: 12 bytes per index.
package struct AliasTable: Sendable {
    private var probability: [Double]
    private var alias: [Int32]

    /// REQUIRES: `weights` is non-empty, every weight ≥ 0, and their sum > 0.
    package init(weights: [Double]) {
        let n = weights.count
        let total = weights.reduce(0, +)
        var scaled = weights.map { $0 * Double(n) / total }
        probability = [Double](repeating: 1, count: n)
        alias = [Int32](repeating: 0, count: n)
        var small: [Int] = []
        var large: [Int] = []
        small.reserveCapacity(n)
        large.reserveCapacity(n)
        for (i, p) in scaled.enumerated() {
            if p < 1 { small.append(i) } else { large.append(i) }
        }
        while let s = small.popLast() {
            guard let l = large.popLast() else {
                probability[s] = 1
                continue
            }
            probability[s] = scaled[s]
            alias[s] = Int32(l)
            scaled[l] = (scaled[l] + scaled[s]) - 1
            if scaled[l] < 1 { small.append(l) } else { large.append(l) }
        }
        for l in large { probability[l] = 1 }
    }

    package var count: Int { probability.count }

    @inline(__always)
    package func sample(_ random: inout WorkloadRandom) -> Int {
        let i = random.below(probability.count)
        return random.unit() < probability[i] ? i : Int(alias[i])
    }
}
