@testable import ScrollbackPager
import Testing
import TestSupport

/// `SnapshotCounts`, the pager's table of live snapshots: against a dictionary model over
/// random begins and ends in any order (ids mostly the newest, some older, as a read-only
/// pager's generations give), the oldest id and every count agree.
@Suite struct SnapshotCountsTests {
    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3, 4])) func agreesWithADictionary(seed: UInt64) {
        var random = SeededRandom(seed: seed)
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
}
