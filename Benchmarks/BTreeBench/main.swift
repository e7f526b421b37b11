// B+tree microbenchmark (release mode): swift run -c release BTreeBench [--n N] [--page-size P] [--ops M]
//
// Builds a tree of N messages keyed (conversation, createdAt, seq) with a 16-byte value,
// inserted in time order across N/1000 conversations (so inserts land inside the tree, not
// only at its end) and committed in batches, then reports ns/op for:
//   seek + 20-step reverse cursor  (latest 20 of a conversation, reading key and value)
//   count-in-range                 (messages of a conversation in a time window)
//   get                            (point lookup of an existing key)
//   random insert                  (new messages into random conversations, commit every 1000)
// Measured on the pager in this build (the in-memory shim until the real pager is merged).
import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackPager

#if canImport(Glibc)
import Glibc
#endif

func argument(_ name: String, default value: Int) -> Int {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(String(args[i + 1].filter { $0 != "_" })) { return v }
    return value
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: UInt64) -> UInt64 { next() % n }
}

let n = argument("--n", default: 10_000_000)
let pageSize = argument("--page-size", default: 4096)
let ops = argument("--ops", default: 200_000)
let conversations = UInt64(max(1, n / 1000))

/// Message `seq` (0-based, in time order) of the loaded data set.
func key(ofMessage seq: UInt64) -> BTreeKey {
    var mix = Random(state: seq)
    return BTreeKey(mix.below(conversations), 1_700_000_000_000 + seq * 10, seq)
}

func fixed(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func report(_ name: String, _ start: UInt64, _ count: Int) {
    let ns = Double(now() - start) / Double(max(count, 1))
    print(pad(name, 36) + fixed(ns) + " ns/op")
}

do {
    let pager = try Pager.create(fileSystem: MemoryFileSystem(), path: "/bench/pages", pageSize: pageSize, cacheBytes: 1 << 30)
    var value = [UInt8](repeating: 0, count: 16)
    let loadStart = now()
    var seq: UInt64 = 0
    let batch = 10_000
    while seq < UInt64(n) {
        let txn = try pager.beginWrite()
        let tree = try BTree.create(in: txn, slot: 0, keyWords: 3, valueSize: 16)
        for _ in 0..<min(batch, n - Int(seq)) {
            value.withUnsafeMutableBytes { $0.storeLE(seq, at: 0) }
            try value.withUnsafeBytes { _ = try tree.insert(key(ofMessage: seq), value: $0) }
            seq += 1
        }
        try txn.commit()
    }
    let loadNs = now() - loadStart
    let snapshot = pager.beginRead()
    let tree = try BTree(snapshot, slot: 0)
    let accounting = pager.pageAccounting()
    print("BTreeBench  page size \(pageSize)  N \(tree.count)  height \(tree.height)  pages \(accounting.pageCount)  (pager: \(String(describing: type(of: pager))))")
    print(pad("load (time-ordered, commit per \(batch))", 36) + fixed(Double(loadNs) / Double(n)) + " ns/insert")

    var rng = Random(state: 42)
    var checksum: UInt64 = 0

    // Seek + 20-step reverse cursor: the newest 20 messages of a random conversation.
    var start = now()
    var cursor = tree.cursor()
    for _ in 0..<ops {
        let conversation = rng.below(conversations)
        var valid = try cursor.seek(atMost: BTreeKey(conversation, .max, .max))
        var steps = 0
        while valid, steps < 20 {
            var sameConversation = false
            try cursor.withCurrent { key, value in
                sameConversation = key.w0 == conversation
                checksum &+= key.w2 &+ value.loadLE(UInt64.self, at: 0)
            }
            if !sameConversation { break }
            steps += 1
            valid = try cursor.previous()
        }
    }
    report("seek + 20-step reverse cursor", start, ops)

    // Count in range: messages of a conversation within a random window of the time span.
    start = now()
    let span = UInt64(n) * 10
    for _ in 0..<ops {
        let conversation = rng.below(conversations)
        let from = 1_700_000_000_000 + rng.below(span)
        let to = from + rng.below(span / 4 + 1)
        checksum &+= UInt64(try tree.count(in: BTreeKey(conversation, from, 0)..<BTreeKey(conversation, to, 0)))
    }
    report("count-in-range", start, ops)

    // Get of an existing key.
    start = now()
    for _ in 0..<ops {
        let k = key(ofMessage: rng.below(UInt64(n)))
        try tree.withValue(for: k) { checksum &+= $0.loadLE(UInt64.self, at: 0) }
    }
    report("get", start, ops)
    snapshot.rollback()

    // Random insert, committed in batches of 1000.
    start = now()
    var inserted = 0
    while inserted < ops {
        let txn = try pager.beginWrite()
        let writer = try BTree(txn, slot: 0)
        for _ in 0..<min(1000, ops - inserted) {
            let k = BTreeKey(rng.below(conversations), 1_700_000_000_000 + rng.below(span), UInt64(n) + UInt64(inserted))
            value.withUnsafeMutableBytes { $0.storeLE(k.w2, at: 0) }
            try value.withUnsafeBytes { _ = try writer.insert(k, value: $0) }
            inserted += 1
        }
        try txn.commit()
    }
    report("random insert (commit per 1000)", start, ops)
    print("checksum \(checksum)")
} catch {
    print("BTreeBench failed: \(error)")
    exit(1)
}
