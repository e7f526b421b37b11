import ScrollbackIO
import Testing
import TestSupport

struct IntegerMapTests {
    static let seeds = TestSeeds.seeds(default: Array(1...20))

    /// Random inserts, updates and removals against `Dictionary`, keys drawn from small ranges
    /// (many collisions of first slots, long clusters, removals inside them) and from the
    /// whole 64-bit range; after every step the counts agree and a sample of keys, present
    /// and absent, reads the same; at the end iteration yields exactly the model's pairs.
    @Test(arguments: seeds)
    func agreesWithDictionary(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var map = IntegerMap<Int>()
        var model: [UInt64: Int] = [:]
        let wide = seed % 2 == 0
        func key() -> UInt64 {
            // Small keys, and multiples of 2^32 (the block caches' packing: run << 32 | block).
            let small = random.next() % 300
            return wide ? small << 32 | random.next() % 4 : small
        }
        for step in 0..<20_000 {
            let k = key()
            switch random.next() % 10 {
            case 0...4:
                let v = Int(truncatingIfNeeded: random.next())
                map[k] = v
                model[k] = v
            case 5...7:
                let removed = map.remove(k)
                #expect(removed == model.removeValue(forKey: k), "seed \(seed) step \(step): remove(\(k))")
            case 8:
                map[k] = nil
                model[k] = nil
            default:
                if random.next() % 500 == 0 {
                    map.removeAll()
                    model.removeAll()
                }
            }
            #expect(map.count == model.count, "seed \(seed) step \(step): count")
            for _ in 0..<4 {
                let probe = key()
                #expect(map[probe] == model[probe], "seed \(seed) step \(step): [\(probe)]")
                #expect(map.contains(probe) == (model[probe] != nil), "seed \(seed) step \(step): contains(\(probe))")
            }
        }
        var seen: [UInt64: Int] = [:]
        for (k, v) in map {
            #expect(seen[k] == nil, "seed \(seed): \(k) iterated twice")
            seen[k] = v
        }
        #expect(seen == model, "seed \(seed): iteration")
        #expect(Set(map.keys) == Set(model.keys) && map.values.sorted() == model.values.sorted(), "seed \(seed): keys, values")
    }

    @Test func emptyAndEdgeKeys() {
        var map = IntegerMap<String>()
        #expect(map.isEmpty && map[0] == nil && map.remove(7) == nil && Array(map).isEmpty)
        map[0] = "zero"
        map[.max] = "max"
        map[0] = "zero again"
        #expect(map.count == 2 && map[0] == "zero again" && map[.max] == "max" && map[1] == nil)
        #expect(map[5, default: "none"] == "none")
        #expect(map.remove(0) == "zero again" && map.count == 1 && map[.max] == "max")
    }

    /// Iterating a copy while the original changes (how the engine's tables are rewritten in
    /// place under their lock) sees the state at the copy.
    @Test func iterationIsOverASnapshot() {
        var map = IntegerMap<Int>()
        for k in 0..<100 { map[UInt64(k)] = k }
        var visited = 0
        for (k, _) in map {
            map[k] = nil
            map[k + 1_000] = 1
            visited += 1
        }
        #expect(visited == 100 && map.count == 100 && map[5] == nil && map[1_005] == 1)
    }
}
