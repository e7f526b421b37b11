import ScrollbackBTree
import ScrollbackFormat
import ScrollbackPager
import TestSupport
import Testing

/// Randomized test of the B+tree against a sorted array, per seed:
/// inserts (new and duplicate), upserts, updates, deletes, gets, seeks both ways, cursor walks
/// both ways across leaves, rank / count(in:) / entry(atRank:), snapshots held across commits
/// (their reads must equal the model copy taken when they began), rollbacks. After EVERY
/// commit: checkInvariants() on every tree and the page accounting (no page leaked or double
/// used). Two trees of different shapes share the file. Replay one seed with SCROLLBACK_SEED=n.
@Suite struct BTreeModelTests {
    struct Config: Sendable, CustomTestStringConvertible {
        var seed: UInt64
        var pageSize: Int
        var operations: Int
        var testDescription: String { "seed \(seed), page \(pageSize), \(operations) ops" }
    }

    #if DEBUG
    static let scale = 20  // debug builds run 1/20 of the operations; release runs all (>= 1,000,000)
    #else
    static let scale = 1
    #endif

    static let configs: [Config] = {
        let defaults: [UInt64] = [1, 2, 3, 4, 5, 6, 7, 8]
        let pageSizes = [4096, 4096, 4096, 8192, 4096, 16384, 4096, 16384]
        let seeds = TestSeeds.seeds(default: defaults)
        return seeds.enumerated().map { i, seed in
            Config(seed: seed, pageSize: seeds.count == 1 ? [4096, 8192, 16384, 4096][Int(seed % 4)] : pageSizes[i],
                   operations: 130_000 / scale)
        }
    }()

    @Test(arguments: configs)
    func matchesSortedArrayModel(_ config: Config) throws {
        var run = ModelRun(config: config)
        do {
            try run.run()
        } catch {
            Issue.record("SCROLLBACK_SEED=\(config.seed) (page \(config.pageSize)) failed at operation \(run.step): \(error)")
        }
        #expect(run.step >= config.operations, "seed \(config.seed)")
    }
}

/// The reference model of one tree: sorted keys with a version per key (the value is
/// `valueBytes(key, version, size)`).
struct TreeModel {
    var slot: Int
    var keyWords: Int
    var valueSize: Int
    var keys: [BTreeKey] = []
    var versions: [UInt64] = []

    /// First index with keys[i] >= key.
    func lowerBound(_ key: BTreeKey) -> Int {
        var low = 0, high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func find(_ key: BTreeKey) -> Int? {
        let i = lowerBound(key)
        return i < keys.count && keys[i] == key ? i : nil
    }

    func value(_ i: Int) -> [UInt8] { valueBytes(keys[i], version: versions[i], size: valueSize) }
}

struct ModelRun {
    let config: BTreeModelTests.Config
    var rng: SeededRandom
    var step = 0
    var nextVersion: UInt64 = 1

    init(config: BTreeModelTests.Config) {
        self.config = config
        rng = SeededRandom(seed: config.seed)
    }

    mutating func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { random(100) < percent }

    func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ModelFailure(description: message()) }
    }

    /// A random key of the tree's shape from a small space (so duplicates and deletes of
    /// existing keys happen), with the top bit set at random to exercise unsigned order.
    mutating func randomKey(_ model: TreeModel) -> BTreeKey {
        let spaces: [[UInt64]] = [[0], [6_000], [60, 120], [8, 30, 30], [4, 10, 10, 12]]
        var key = BTreeKey(0)
        for w in 0..<model.keyWords {
            var word = UInt64(random(Int(spaces[model.keyWords][w])))
            if chance(15) { word |= 1 << 63 }
            if chance(2) { word = UInt64.max &- UInt64(random(2)) }
            key[word: w] = word
        }
        return key
    }

    /// A key near existing ones: an existing key, or a random one.
    mutating func probeKey(_ model: TreeModel) -> BTreeKey {
        if !model.keys.isEmpty, chance(50) { return model.keys[random(model.keys.count)] }
        return randomKey(model)
    }

    mutating func run() throws {
        let pager = try makePager(pageSize: config.pageSize)
        let shapes: [(Int, Int)] = [(1, 8), (2, 0), (3, 16), (4, 40), (2, 984), (1, 200), (3, 24), (4, 984)]
        let a = shapes[Int(config.seed % 8)], b = shapes[Int((config.seed / 8 + 3) % 8)]
        var committed = [TreeModel(slot: 2, keyWords: a.0, valueSize: a.1), TreeModel(slot: 5, keyWords: b.0, valueSize: b.1)]
        do {
            let txn = try pager.beginWrite()
            for m in committed { _ = try BTree.create(in: txn, slot: m.slot, keyWords: m.keyWords, valueSize: m.valueSize) }
            try txn.commit()
        }
        var snapshots: [(PageTransaction, [TreeModel])] = []
        // Grow, then shrink to empty, then grow again: exercises splits, merges, root collapse.
        let targetSizes = [3_000, 0, 1_500, 50, 2_500]
        while step < config.operations {
            let phase = targetSizes[(step * targetSizes.count) / config.operations]
            var models = committed
            let txn = try pager.beginWrite()
            let trees = try models.map { try BTree(txn, slot: $0.slot) }
            let batch = 1 + random(chance(10) ? 400 : 60)
            for _ in 0..<batch where step < config.operations {
                step += 1
                let t = random(2)
                try operate(trees[t], &models[t], phase: phase)
            }
            if chance(8) {
                txn.rollback()
                for (m, committedModel) in zip(models, committed) {
                    _ = m
                    let snapshot = pager.beginRead()
                    try verifyAll(try BTree(snapshot, slot: committedModel.slot), committedModel)
                    snapshot.rollback()
                }
            } else {
                try require(trees[0].count == models[0].keys.count && trees[1].count == models[1].keys.count, "counts before commit")
                try txn.commit()
                committed = models
            }
            try checkCommitted(pager)
            // Snapshots: take, verify, drop.
            if chance(25) { snapshots.append((pager.beginRead(), committed)) }
            if !snapshots.isEmpty, chance(40) {
                let i = random(snapshots.count)
                for m in snapshots[i].1 { try spotCheck(try BTree(snapshots[i].0, slot: m.slot), m) }
            }
            if snapshots.count > 4 || (!snapshots.isEmpty && chance(20)) {
                let i = random(snapshots.count)
                for m in snapshots[i].1 { try verifyAll(try BTree(snapshots[i].0, slot: m.slot), m) }
                snapshots.remove(at: i).0.rollback()
            }
        }
        for (snapshot, models) in snapshots {
            for m in models { try verifyAll(try BTree(snapshot, slot: m.slot), m) }
            snapshot.rollback()
        }
        try checkCommitted(pager)
    }

    mutating func operate(_ tree: BTree, _ model: inout TreeModel, phase: Int) throws {
        let growing = model.keys.count < phase
        let roll = random(100)
        switch roll {
        case 0..<30:  // insert (duplicates rejected)
            let key = growing ? randomKey(model) : probeKey(model)
            let version = nextVersion
            nextVersion += 1
            let inserted = try tree.insert(key, value: valueBytes(key, version: version, size: model.valueSize))
            if let i = model.find(key) {
                try require(!inserted, "insert of existing \(key) returned true")
                _ = i
            } else {
                try require(inserted, "insert of new \(key) returned false")
                let i = model.lowerBound(key)
                model.keys.insert(key, at: i)
                model.versions.insert(version, at: i)
            }
        case 30..<38:  // upsert
            let key = probeKey(model)
            let version = nextVersion
            nextVersion += 1
            let replaced = try tree.upsert(key, value: valueBytes(key, version: version, size: model.valueSize))
            if let i = model.find(key) {
                try require(replaced, "upsert of existing \(key) returned false")
                model.versions[i] = version
            } else {
                try require(!replaced, "upsert of new \(key) returned true")
                let i = model.lowerBound(key)
                model.keys.insert(key, at: i)
                model.versions.insert(version, at: i)
            }
        case 38..<43:  // update
            let key = probeKey(model)
            let version = nextVersion
            nextVersion += 1
            let updated = try tree.update(key, value: valueBytes(key, version: version, size: model.valueSize))
            if let i = model.find(key) {
                try require(updated, "update of existing \(key) returned false")
                model.versions[i] = version
            } else {
                try require(!updated, "update of absent \(key) returned true")
            }
        case 43..<(growing ? 55 : 75):  // delete
            let key = probeKey(model)
            let deleted = try tree.delete(key)
            if let i = model.find(key) {
                try require(deleted, "delete of existing \(key) returned false")
                model.keys.remove(at: i)
                model.versions.remove(at: i)
            } else {
                try require(!deleted, "delete of absent \(key) returned true")
            }
        default:
            try spotCheck(tree, model)
        }
        if chance(1) { try tree.checkInvariants() }
    }

    /// A few random reads compared with the model.
    mutating func spotCheck(_ tree: BTree, _ model: TreeModel) throws {
        try require(tree.count == model.keys.count, "count \(tree.count) != model \(model.keys.count)")
        let key = probeKey(model)
        switch random(6) {
        case 0:  // get
            let got = try tree.get(key)
            if let i = model.find(key) {
                try require(got == model.value(i), "get \(key) returned a wrong value")
            } else {
                try require(got == nil, "get of absent \(key) returned a value")
            }
        case 1:  // rank both ways and count in ranges
            let lower = model.lowerBound(key)
            try require(try tree.rank(key) == lower, "rank \(key)")
            let inclusive = lower + (model.find(key) != nil ? 1 : 0)
            try require(try tree.rank(key, inclusive: true) == inclusive, "inclusive rank \(key)")
            let other = probeKey(model)
            let (lo, hi) = key < other ? (key, other) : (other, key)
            try require(try tree.count(in: lo..<hi) == model.lowerBound(hi) - model.lowerBound(lo), "count half-open \(lo)..<\(hi)")
            let closedExpected = model.lowerBound(hi) + (model.find(hi) != nil ? 1 : 0) - model.lowerBound(lo)
            try require(try tree.count(in: lo...hi) == closedExpected, "count closed \(lo)...\(hi)")
            // A narrow range: the upper bound 0…40 entries after the lower one (one leaf, or
            // the next: the count's one-comparison and galloping paths).
            if !model.keys.isEmpty {
                let first = random(model.keys.count)
                let last = min(model.keys.count - 1, first + random(41))
                let (a, b) = (model.keys[first], model.keys[last])
                try require(try tree.count(in: a..<b) == last - first, "narrow count \(a)..<\(b)")
                try require(try tree.count(in: a...b) == last - first + 1, "narrow closed count \(a)...\(b)")
            }
        case 2:  // entry(atRank:) including both ends and out of range
            let n = model.keys.count
            let candidates = [0, n - 1, n, -1, n == 0 ? 0 : random(n)]
            let r = candidates[random(candidates.count)]
            var entry: (BTreeKey, [UInt8])? = nil
            let found = try tree.withEntry(atRank: r) { k, v in entry = (k, Array(v)) }
            try require(found == (entry != nil), "withEntry result")
            if r >= 0, r < n {
                try require(entry?.0 == model.keys[r] && entry?.1 == model.value(r), "entry(atRank: \(r))")
            } else {
                try require(entry == nil, "entry(atRank: \(r)) out of range returned a value")
            }
        default:  // cursor: seek then walk both ways
            var cursor = tree.cursor()
            var expected: Int  // model index; -1 before first, n after last
            let n = model.keys.count
            switch random(5) {
            case 0:
                try cursor.seek(atLeast: key)
                expected = model.lowerBound(key)
            case 1:
                try cursor.seek(atMost: key)
                let lb = model.lowerBound(key)
                expected = model.find(key) != nil ? lb : lb - 1
            case 2:
                try cursor.seekFirst()
                expected = n == 0 ? -1 : 0
            case 3:
                try cursor.seekLast()
                expected = n == 0 ? -1 : n - 1
            default:
                let r = random(n + 2) - 1
                try cursor.seek(toRank: r)
                expected = r
            }
            if n == 0 {
                try require(!cursor.isValid, "cursor valid on an empty tree")
                return
            }
            let steps = random(3) == 0 ? 200 : 25
            for _ in 0..<steps {
                try checkCursor(cursor, expected, model)
                if chance(50) {
                    let valid = try cursor.next()
                    expected = min(expected + 1, n)
                    try require(valid == (expected < n), "next() validity at \(expected)")
                } else {
                    let valid = try cursor.previous()
                    expected = max(expected - 1, -1)
                    try require(valid == (expected >= 0), "previous() validity at \(expected)")
                }
            }
            try checkCursor(cursor, expected, model)
        }
    }

    func checkCursor(_ cursor: BTreeCursor, _ expected: Int, _ model: TreeModel) throws {
        let n = model.keys.count
        if expected >= 0, expected < n {
            try require(cursor.isValid && cursor.rank == expected, "cursor rank \(cursor.rank) valid \(cursor.isValid), expected \(expected)")
            var current: (BTreeKey, [UInt8])? = nil
            try cursor.withCurrent { k, v in current = (k, Array(v)) }
            try require(current?.0 == model.keys[expected] && current?.1 == model.value(expected), "cursor entry at rank \(expected)")
        } else {
            try require(!cursor.isValid && cursor.rank == (expected < 0 ? -1 : n), "cursor off-end rank \(cursor.rank), expected \(expected)")
            try require(try cursor.key() == nil, "off-end cursor has a key")
        }
    }

    /// Full comparison: forward and backward cursor walks and every rank.
    func verifyAll(_ tree: BTree, _ model: TreeModel) throws {
        try require(tree.count == model.keys.count, "snapshot count \(tree.count) != model \(model.keys.count)")
        var cursor = tree.cursor()
        var i = 0
        var valid = try cursor.seekFirst()
        while valid {
            try require(i < model.keys.count, "forward walk longer than the model")
            try checkCursor(cursor, i, model)
            i += 1
            valid = try cursor.next()
        }
        try require(i == model.keys.count, "forward walk saw \(i) of \(model.keys.count)")
        valid = try cursor.seekLast()
        i = model.keys.count - 1
        while valid {
            try require(i >= 0, "backward walk longer than the model")
            try require(try cursor.key() == model.keys[i], "backward walk at \(i)")
            i -= 1
            valid = try cursor.previous()
        }
        try require(i == -1, "backward walk ended at \(i)")
    }
}
