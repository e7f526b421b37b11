@testable import ScrollbackPager
import Testing

/// `SnapshotCounts`, the pager's table of live snapshots: against a dictionary model over
/// random begins and ends in any order (ids mostly the newest, some older, as a read-only
/// pager's generations give), the oldest id and every count agree.
@Suite struct SnapshotCountsTests {
    @Test(arguments: [1, 2, 3, 4]) func agreesWithADictionary(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var counts = SnapshotCounts()
        var model: [UInt64: Int] = [:]
        var open: [UInt64] = []
        var newest: UInt64 = 10
        for step in 0..<20_000 {
            switch random.next() % 8 {
            case 0, 1, 2:
                if random.next() % 4 == 0 { newest += 1 }
                let id = random.next() % 10 == 0 ? newest - random.next() % 8 : newest
                counts.add(id)
                model[id, default: 0] += 1
                open.append(id)
            case 3:
                counts.remove(newest + 100)   // never held: no effect
            default:
                guard !open.isEmpty else { continue }
                let index = Int(random.next() % UInt64(open.count))
                let id = open.remove(at: index)
                counts.remove(id)
                if model[id] == 1 { model[id] = nil } else { model[id]! -= 1 }
            }
            #expect(counts.oldest == model.keys.min(), "seed \(seed), step \(step)")
            #expect(counts.isEmpty == model.isEmpty, "seed \(seed), step \(step)")
            if step % 97 == 0 {
                for id in (newest > 20 ? newest - 20 : 0)...newest + 1 {
                    #expect(counts.count(of: id) == model[id, default: 0], "seed \(seed), step \(step), id \(id)")
                }
            }
        }
    }

    /// A small deterministic generator (the seed replays a failure).
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
