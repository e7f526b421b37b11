// PostingBench: release-mode cost of the search index's posting-block codec.
//
//   swift run -c release PostingBench
//
// Builds blocks from postings shaped like the benchmark's two datasets (`latin`: a third of
// the followers start another conversation, as a common word's block on the reference
// dataset; `runs`: long same-conversation runs, as a rare term's or a heavy room's; `spread`:
// every follower in another conversation, as a CJK pair's on the CJK variant) and
// prints the best of several rounds, in nanoseconds: a posting decoded, a block encoded, a
// posting added in place (`PostingBlock.inserting`). The results are folded into a printed
// value so the optimizer cannot drop the work. (Blocks are packed full, so most postings added
// in place do not fit: the figure is the cost of an attempt, which decodes the whole block.)
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackBTree
import ScrollbackMessaging

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 17
    }
}

/// Sorted postings of one term: `changeEvery` followers per conversation on average.
func postings(count: Int, conversationRun: UInt64, seed: UInt64) -> [Posting] {
    var g = Generator(state: seed)
    var list: [Posting] = []
    var conversation: UInt64 = 1 + g.next() % 1000
    var seq: UInt64 = 1 + g.next() % 100_000
    var time: UInt64 = 1_767_225_600_000 - 30 * 86_400_000
    for _ in 0..<count {
        list.append(Posting(term: 7, conversation: conversation, createdAt: time, seq: seq))
        if g.next() % conversationRun == 0 {
            conversation += 1 + g.next() % 20
            seq = 1 + g.next() % 300_000
            time = 1_767_225_600_000 - 30 * 86_400_000 + g.next() % (30 * 86_400_000)
        } else {
            let ds = 1 + g.next() % 80
            seq += ds
            time += ds * 8_640 + g.next() % 100_000
        }
    }
    return list
}

/// Blocks packed from `list` greedily, with the postings each holds.
func blocks(_ list: [Posting]) -> [(key: BTreeKey, value: [UInt8], postings: [Posting])] {
    var out: [(key: BTreeKey, value: [UInt8], postings: [Posting])] = []
    var start = 0
    while start < list.count {
        var end = min(list.count, start + 400)
        var value = PostingBlock.encode(list[start..<end])
        while value == nil { end -= 1; value = PostingBlock.encode(list[start..<end]) }
        out.append((list[start].blockKey, value!, Array(list[start..<end])))
        start = end
    }
    return out
}

func best(_ rounds: Int, _ body: () throws -> Int) rethrows -> (nanoseconds: Double, fold: Int) {
    var best = Double.infinity
    var fold = 0
    for _ in 0..<rounds {
        let start = nowNanoseconds()
        let units = try body()
        best = min(best, Double(nowNanoseconds() - start) / Double(units))
        fold &+= units
    }
    return (best, fold)
}

var folded = 0
for (label, run) in [("latin", UInt64(3)), ("runs", UInt64(60)), ("spread", UInt64(1))] {
    let list = postings(count: 200_000, conversationRun: run, seed: run)
    let packed = blocks(list)
    let perBlock = Double(list.count) / Double(packed.count)
    let decode = try best(7) {
        var n = 0
        var sum: UInt64 = 0
        for block in packed {
            try block.value.withUnsafeBytes { raw in
                var reader = try PostingBlockReader(key: block.key, value: raw, file: "bench")
                while let p = try reader.next() { n &+= 1; sum &+= p.seq }
            }
        }
        folded &+= Int(truncatingIfNeeded: sum)
        return n
    }
    let encode = best(7) {
        for block in packed { folded &+= PostingBlock.encode(block.postings[...])?.count ?? 0 }
        return packed.count
    }
    // A posting added at the end of a conversation's run in the middle of each block.
    var out = [UInt8](repeating: 0, count: PostingBlock.valueSize)
    let splice = try best(7) {
        var n = 0
        for block in packed where block.postings.count > 2 {
            let middle = block.postings[block.postings.count / 2]
            let added = Posting(term: middle.term, conversation: middle.conversation, createdAt: middle.createdAt, seq: middle.seq + 1)
            if block.postings.contains(added) { continue }
            try block.value.withUnsafeBytes { raw in
                try out.withUnsafeMutableBytes { target in
                    if try PostingBlock.inserting(added, key: block.key, value: raw, into: target, file: "bench") == .inserted { folded &+= 1 }
                    n += 1
                }
            }
        }
        return max(1, n)
    }
    folded &+= decode.fold &+ encode.fold &+ splice.fold
    print("\(label): \(String(format: "%.0f", perBlock)) postings a block; decode \(String(format: "%.1f", decode.nanoseconds)) ns a posting, "
        + "encode \(String(format: "%.0f", encode.nanoseconds)) ns a block, insert in place \(String(format: "%.0f", splice.nanoseconds)) ns")
}
print("(fold \(folded))")
