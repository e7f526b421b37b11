import ScrollbackPager
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// Random allocate / write / free / commit / rollback / checkpoint / reopen / crash /
/// snapshot sequences against a model map page → stamp. Every failure names the seed;
/// `SCROLLBACK_SEED=n swift test --filter RandomizedPagerTests` replays one.
@Suite struct RandomizedPagerTests {
    typealias Pages = [PageNumber: UInt64]

    struct Snapshot {
        let transaction: PageTransaction
        let pages: Pages
        let version: UInt64
    }

    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6]))
    func randomOperationsMatchTheModel(seed: UInt64) throws {
        do {
            try run(seed: seed, steps: 600)
        } catch {
            Issue.record("seed \(seed): \(error)")
        }
    }

    func run(seed: UInt64, steps: Int) throws {
        var rng = SeededRandom(seed: seed)
        let pageSize = [4096, 8192][Int(rng.next() % 2)]
        var base = try makeFileSystem()
        var fs = FaultyFileSystem(base: base)
        func cacheBytes() -> Int { Int(8 + rng.next() % 40) * pageSize }
        var pager = try Pager.create(fileSystem: fs, path: pagesPath, pageSize: pageSize, cacheBytes: cacheBytes())
        var committed: Pages = [:]
        var version: UInt64 = 0
        var durable: Pages = [:]
        var durableVersion: UInt64 = 0
        var snapshots: [Snapshot] = []
        var nextStamp: UInt64 = 1

        func check(_ snapshot: Snapshot, _ context: String) throws {
            #expect(snapshot.transaction.state.counters[0] == snapshot.version, "seed \(seed) \(context)")
            for (page, expected) in snapshot.pages {
                let found = try stamp(snapshot.transaction, page)
                #expect(found == expected, "seed \(seed) \(context): snapshot v\(snapshot.version) page \(page)")
            }
        }
        func releaseAll(_ context: String) throws {
            for snapshot in snapshots {
                try check(snapshot, context)
                snapshot.transaction.rollback()
            }
            snapshots.removeAll()
        }

        /// A write transaction (rolled back one time in five). `inFlight`: the pages of a
        /// checkpoint whose I/O is in progress (they must not be handed out either).
        func writeTransaction(_ context: String, inFlight: Set<PageNumber> = []) throws {
            let txn = try pager.beginWrite()
            var pages = committed
            var freedHere: Set<PageNumber> = []
            let protected = snapshots.reduce(into: Set(durable.keys).union(inFlight)) { $0.formUnion($1.pages.keys) }
            func allocate() throws -> PageNumber {
                let page = try txn.allocatePage()
                #expect(!protected.contains(page) && !freedHere.contains(page),
                        "seed \(seed) \(context): page \(page) reused while a snapshot, the durable state, a running checkpoint or this transaction's state holds it")
                #expect(pages[page] == nil, "seed \(seed) \(context): page \(page) handed out while live")
                return page
            }
            for _ in 0..<(1 + rng.next() % 10) {
                let live = Array(pages.keys)
                switch rng.next() % 5 {
                case 0, 1:  // new page
                    let page = try allocate()
                    try fill(txn, page, stamp: nextStamp)
                    pages[page] = nextStamp
                    nextStamp += 1
                case 2:  // copy on write
                    guard let old = live.randomElement(using: &rng) else { continue }
                    #expect(try stamp(txn, old) == pages[old], "seed \(seed) \(context): writer read of \(old)")
                    if txn.isOwned(old) {
                        try fill(txn, old, stamp: nextStamp)
                        pages[old] = nextStamp
                    } else {
                        let page = try allocate()
                        try fill(txn, page, stamp: nextStamp)
                        try txn.freePage(old)
                        freedHere.insert(old)
                        pages[old] = nil
                        pages[page] = nextStamp
                    }
                    nextStamp += 1
                case 3:  // free
                    guard let old = live.randomElement(using: &rng) else { continue }
                    if !txn.isOwned(old) { freedHere.insert(old) }
                    try txn.freePage(old)
                    pages[old] = nil
                default:  // read
                    guard let page = live.randomElement(using: &rng) else { continue }
                    #expect(try stamp(txn, page) == pages[page], "seed \(seed) \(context): writer read of \(page)")
                }
            }
            setState(txn, root: pages.keys.min(), version: version + 1)
            if rng.next() % 5 == 0 {
                txn.rollback()
            } else {
                try txn.commit()
                committed = pages
                version += 1
            }
        }

        for step in 0..<steps {
            let context = "step \(step)"
            let choice = rng.next() % 100
            switch choice {
            case 0..<45:  // a write transaction
                try writeTransaction(context)
            case 45..<55:  // take a snapshot
                if snapshots.count < 4 {
                    snapshots.append(Snapshot(transaction: pager.beginRead(), pages: committed, version: version))
                }
            case 55..<65:  // end a snapshot
                if !snapshots.isEmpty {
                    let index = Int(rng.next() % UInt64(snapshots.count))
                    try check(snapshots[index], context)
                    snapshots[index].transaction.rollback()
                    snapshots.remove(at: index)
                }
            case 65..<75:  // read through a snapshot
                if let snapshot = snapshots.randomElement(using: &rng) {
                    for (page, expected) in snapshot.pages.prefix(8) {
                        #expect(try stamp(snapshot.transaction, page) == expected, "seed \(seed) \(context): snapshot page \(page)")
                    }
                }
            case 75..<88:  // checkpoint, half of them with write transactions during their I/O
                if rng.next() % 2 == 0 {
                    try pager.checkpoint()
                    durable = committed
                    durableVersion = version
                } else {
                    let plan = try pager.beginCheckpoint()
                    let planned = committed, plannedVersion = version
                    for _ in 0..<(1 + rng.next() % 3) { try writeTransaction(context, inFlight: Set(planned.keys)) }
                    try pager.writeCheckpoint(plan)
                    durable = planned
                    durableVersion = plannedVersion
                }
            case 88..<94:  // clean reopen
                try releaseAll(context)
                try pager.close()
                pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: cacheBytes())
                committed = durable
                version = durableVersion
            default:  // crash during a checkpoint, reopen from what the disk kept
                try releaseAll(context)
                fs.failAfter(steps: Int(rng.next() % 8))
                // Half of them with write transactions during the checkpoint's I/O: what it
                // makes durable is the state it planned.
                let completed: Bool
                if rng.next() % 2 == 0 {
                    completed = (try? pager.checkpoint()) != nil
                } else {
                    let plan = try pager.beginCheckpoint()
                    let planned = committed, plannedVersion = version
                    for _ in 0..<(1 + rng.next() % 3) { try writeTransaction(context, inFlight: Set(planned.keys)) }
                    completed = (try? pager.writeCheckpoint(plan)) != nil
                    committed = planned
                    version = plannedVersion
                }
                let kinds: [FaultyFileSystem.CrashImage] = [.everythingWritten, .syncedOnly, .lastWriteTorn]
                let kind = completed ? .everythingWritten : kinds[Int(rng.next() % 3)]
                let image = fs.image(of: pagesPath, kind)
                base = try fileSystem(withPageFile: image)
                fs = FaultyFileSystem(base: base)
                pager = try Pager.open(fileSystem: fs, path: pagesPath, cacheBytes: cacheBytes())
                let reopened = pager.committedState.counters[0]
                if completed || (reopened == version && kind != .syncedOnly) {
                    #expect(reopened == version, "seed \(seed) \(context): completed checkpoint lost")
                    durable = committed
                    durableVersion = version
                } else {
                    #expect(reopened == durableVersion,
                            "seed \(seed) \(context): reopened to v\(reopened), expected v\(durableVersion) or v\(version)")
                    committed = durable
                    version = durableVersion
                }
            }
            #expect(pager.committedState.counters[0] == version, "seed \(seed) \(context)")
            do {
                try pager.pageAccounting().check(reachable: committed.keys)
            } catch {
                Issue.record("seed \(seed) \(context): \(error)")
                return
            }
        }
        try releaseAll("end")
        let reader = pager.beginRead()
        for (page, expected) in committed { #expect(try stamp(reader, page) == expected, "seed \(seed) end: page \(page)") }
    }
}
