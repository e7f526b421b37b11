#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import Testing
import TestSupport

/// A file with 2048 synced bytes (0xAA) and four unsynced, non-overlapping 600-byte writes
/// (values 1...4) at offsets 100, 700, 1300 (inside the synced range) and 2048 (extending it).
/// The writes are not sector aligned, so tearing has to respect absolute sector boundaries.
struct SyncedPlusPending {
    static let path = "/db/f"
    static let base = [UInt8](repeating: 0xAA, count: 2048)
    static let writes: [(offset: Int, value: UInt8)] = [(100, 1), (700, 2), (1300, 3), (2048, 4)]
    static let length = 600

    let fs: CrashSimulatingFileSystem
    let handle: any FileHandle

    init(seed: UInt64) throws {
        fs = CrashSimulatingFileSystem(seed: seed)
        try fs.createDirectory("/db")
        handle = try fs.open(Self.path, mode: .createNew)
        try fs.syncDirectory("/db")
        try handle.write(Self.base, at: 0)
        try handle.syncData()
        for write in Self.writes {
            try handle.write([UInt8](repeating: write.value, count: Self.length), at: UInt64(write.offset))
        }
    }

    /// The file after applying the writes whose indices are in `kept` to the synced base.
    static func expected(keeping kept: some Sequence<Int>) -> [UInt8] {
        var bytes = base
        for index in kept.sorted() {
            let write = writes[index]
            let end = write.offset + length
            if bytes.count < end { bytes += [UInt8](repeating: 0, count: end - bytes.count) }
            for i in write.offset..<end { bytes[i] = write.value }
        }
        return bytes
    }
}

@Suite struct CrashSimulatingFileSystemTests {
    static let seeds = TestSeeds.seeds(default: Array(1...40))

    // MARK: Data crash modes

    @Test func dropAllUnsyncedKeepsExactlyTheSyncedBytes() throws {
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            #expect(setup.fs.pendingChangeCount(of: SyncedPlusPending.path) == 4)
            #expect(setup.fs.durableContents(of: SyncedPlusPending.path) == SyncedPlusPending.base, "seed \(seed)")
            setup.fs.crash(mode: .dropAllUnsynced)
            #expect(setup.fs.contents(of: SyncedPlusPending.path) == SyncedPlusPending.base, "seed \(seed)")
        }
    }

    @Test func keepAllKeepsEverything() throws {
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            let before = setup.fs.contents(of: SyncedPlusPending.path)
            #expect(before == SyncedPlusPending.expected(keeping: 0..<4))
            setup.fs.crash(mode: .keepAll)
            #expect(setup.fs.contents(of: SyncedPlusPending.path) == before, "seed \(seed)")
            #expect(setup.fs.durableContents(of: SyncedPlusPending.path) == before, "seed \(seed)")
        }
    }

    @Test func keepPrefixKeepsAnInOrderPrefix() throws {
        var lengthsSeen = Set<Int>()
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            setup.fs.crash(mode: .keepPrefix)
            let after = setup.fs.contents(of: SyncedPlusPending.path)
            let length = (0...4).first { after == SyncedPlusPending.expected(keeping: 0..<$0) }
            #expect(length != nil, "seed \(seed): not a prefix of the pending writes")
            if let length { lengthsSeen.insert(length) }
        }
        // Over 40 seeds every prefix length 0...4 shows up.
        #expect(lengthsSeen == Set(0...4), "prefix lengths seen: \(lengthsSeen.sorted())")
    }

    @Test func keepRandomSubsetKeepsSomeWritesInAnyCombination() throws {
        var subsetsSeen = Set<[Int]>()
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            setup.fs.crash(mode: .keepRandomSubset)
            let after = setup.fs.contents(of: SyncedPlusPending.path)
            let subsets = (0..<16).map { mask in (0..<4).filter { mask & (1 << $0) != 0 } }
            let match = subsets.first { after == SyncedPlusPending.expected(keeping: $0) }
            #expect(match != nil, "seed \(seed): not a subset of the pending writes")
            if let match { subsetsSeen.insert(match) }
        }
        // Reordering shows: some kept subset is not a prefix, and there is variety.
        #expect(subsetsSeen.contains { $0 != Array(0..<$0.count) }, "only prefixes seen: \(subsetsSeen)")
        #expect(subsetsSeen.count >= 8, "subsets seen: \(subsetsSeen)")
    }

    @Test func tearLastWriteKeepsASectorPrefixThenGarbage() throws {
        var keptSectorsSeen = Set<Int>()
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            setup.fs.crash(mode: .tearLastWrite)
            guard let after = setup.fs.contents(of: SyncedPlusPending.path) else {
                Issue.record("seed \(seed): file vanished")
                continue
            }
            // Writes 0...2 are applied in full; the last (offset 2048, 600 bytes: one whole
            // sector 2048..<2560 and a piece 2560..<2648) is torn.
            let complete = SyncedPlusPending.expected(keeping: 0..<3)
            #expect(Array(after.prefix(2048)) == complete, "seed \(seed): bytes before the torn write changed")
            let pieces = [2048..<2560, 2560..<2648]
            let kept = pieces.prefix { range in after.count >= range.upperBound && after[range].allSatisfy { $0 == 4 } }.count
            #expect(kept < pieces.count, "seed \(seed): the last write was not torn")
            guard kept < pieces.count else { continue }
            keptSectorsSeen.insert(kept)
            let torn = pieces[kept]
            guard after.count == torn.upperBound else {
                Issue.record("seed \(seed): size \(after.count), torn sector ends at \(torn.upperBound)")
                continue
            }
            #expect(after[torn].contains { $0 != 4 }, "seed \(seed): the sector in flight holds the real data")
            #expect(Set(after[torn]).count > 8, "seed \(seed): the sector in flight is not garbage")
        }
        #expect(keptSectorsSeen == [0, 1])
    }

    /// An unaligned write is torn at absolute sector boundaries (512, 1024), and bytes outside
    /// the write keep their synced value even inside a sector the write shares.
    @Test func tearCutsAtAbsoluteSectorBoundariesAndSparesNeighbours() throws {
        var keptSeen = Set<Int>()
        for seed in Self.seeds {
            let fs = CrashSimulatingFileSystem(seed: seed)
            let file = try fs.open("/f", mode: .createNew)
            try fs.syncDirectory("/")
            try file.write([UInt8](repeating: 7, count: 2048), at: 0)
            try file.syncData()
            try file.write([UInt8](repeating: 9, count: 1000), at: 300)  // pieces 300..<512, 512..<1024, 1024..<1300
            fs.crash(mode: .tearLastWrite)
            let after = try #require(fs.contents(of: "/f"))
            #expect(after.count == 2048, "seed \(seed)")
            guard after.count == 2048 else { continue }
            #expect(after[0..<300].allSatisfy { $0 == 7 } && after[1300...].allSatisfy { $0 == 7 }, "seed \(seed)")
            let pieces = [300..<512, 512..<1024, 1024..<1300]
            let kept = pieces.prefix { piece in after[piece].allSatisfy { $0 == 9 } }.count
            #expect(kept < 3, "seed \(seed): not torn")
            guard kept < 3 else { continue }
            keptSeen.insert(kept)
            #expect(Set(after[pieces[kept]]).count > 8, "seed \(seed): piece \(kept) is not garbage")
            for piece in pieces[(kept + 1)...] {
                #expect(after[piece].allSatisfy { $0 == 7 }, "seed \(seed): piece after the torn one reached the disk")
            }
        }
        #expect(keptSeen == [0, 1, 2])
    }

    @Test func mixedLeavesEachWriteAppliedAbsentOrTorn() throws {
        for seed in Self.seeds {
            let setup = try SyncedPlusPending(seed: seed)
            setup.fs.crash(mode: .mixed)
            let after = try #require(setup.fs.contents(of: SyncedPlusPending.path))
            // Bytes no write touched keep their synced value.
            #expect(after[0..<100].allSatisfy { $0 == 0xAA }, "seed \(seed)")
            #expect(after.count == 2048 || after.count == 2560 || after.count == 2648, "seed \(seed): size \(after.count)")
        }
    }

    @Test func unsyncedTruncateIsUndoneAndSyncedTruncateKept() throws {
        for seed in Self.seeds.prefix(5) {
            let fs = CrashSimulatingFileSystem(seed: seed)
            let file = try fs.open("/f", mode: .createNew)
            try fs.syncDirectory("/")
            try file.write([UInt8](repeating: 1, count: 1000), at: 0)
            try file.syncData()
            try file.truncate(to: 10)
            try file.write([2, 2], at: 20)
            #expect(fs.contents(of: "/f") == [UInt8](repeating: 1, count: 10) + [UInt8](repeating: 0, count: 10) + [2, 2])
            fs.crash(mode: .dropAllUnsynced)
            #expect(fs.contents(of: "/f") == [UInt8](repeating: 1, count: 1000), "seed \(seed)")
            let again = try fs.open("/f", mode: .existing)
            try again.truncate(to: 10)
            try again.syncData()
            fs.crash(mode: .dropAllUnsynced)
            #expect(fs.contents(of: "/f") == [UInt8](repeating: 1, count: 10), "seed \(seed)")
        }
    }

    /// Random writes, truncates and syncs against a reference of the synced and current bytes:
    /// dropAllUnsynced restores exactly the synced reference, keepAll the current one, and
    /// every mode keeps synced bytes that no pending change touched.
    @Test func randomWorkloadsAgainstAReference() throws {
        for seed in Self.seeds {
            for mode in CrashMode.allCases {
                var rng = SeededRandom(seed: seed)
                let fs = CrashSimulatingFileSystem(seed: seed)
                let file = try fs.open("/f", mode: .createNew)
                try fs.syncDirectory("/")
                var current: [UInt8] = []
                var synced: [UInt8] = []
                var touchedSinceSync = IndexSet()
                for _ in 0..<Int.random(in: 1...60, using: &rng) {
                    switch Int.random(in: 0..<10, using: &rng) {
                    case 0:
                        try file.syncData()
                        synced = current
                        touchedSinceSync = IndexSet()
                    case 1:
                        let size = Int.random(in: 0...3000, using: &rng)
                        try file.truncate(to: UInt64(size))
                        touchedSinceSync.insert(min(size, current.count)..<max(size, current.count))
                        setSize(&current, size)
                    default:
                        let offset = Int.random(in: 0...3000, using: &rng)
                        let data = (0..<Int.random(in: 1...1500, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                        try file.write(data, at: UInt64(offset))
                        if current.count < offset + data.count { setSize(&current, offset + data.count) }
                        current.replaceSubrange(offset..<offset + data.count, with: data)
                        touchedSinceSync.insert(offset..<offset + data.count)
                    }
                    #expect(fs.contents(of: "/f") == current, "seed \(seed) mode \(mode)")
                }
                #expect(fs.durableContents(of: "/f") == synced, "seed \(seed) mode \(mode)")
                fs.crash(mode: mode)
                let after = try #require(fs.contents(of: "/f"), "seed \(seed) mode \(mode)")
                switch mode {
                case .dropAllUnsynced: #expect(after == synced, "seed \(seed) mode \(mode)")
                case .keepAll: #expect(after == current, "seed \(seed) mode \(mode)")
                default:
                    let untouched = (0..<min(after.count, synced.count)).filter { !touchedSinceSync.contains($0) }
                    #expect(untouched.allSatisfy { after[$0] == synced[$0] }, "seed \(seed) mode \(mode): synced bytes changed")
                }
                // A second crash with nothing pending changes nothing.
                fs.crash(mode: mode)
                #expect(fs.contents(of: "/f") == after, "seed \(seed) mode \(mode)")
            }
        }
    }

    @Test func sameSeedReplaysTheSameCrash() throws {
        for mode in CrashMode.allCases {
            var results = Set<[UInt8]>()
            for seed in Self.seeds.prefix(10) {
                let first = try SyncedPlusPending(seed: seed)
                first.fs.crash(mode: mode)
                let second = try SyncedPlusPending(seed: seed)
                second.fs.crash(mode: mode)
                let a = first.fs.contents(of: SyncedPlusPending.path)
                #expect(a == second.fs.contents(of: SyncedPlusPending.path), "seed \(seed) mode \(mode)")
                if let a { results.insert(a) }
            }
            if mode != .dropAllUnsynced && mode != .keepAll {
                #expect(results.count > 1, "mode \(mode): every seed gave the same crash")
            }
        }
    }

    // MARK: Namespace

    @Test func unsyncedNamespaceChangesAreUndone() throws {
        for seed in Self.seeds.prefix(5) {
            let fs = CrashSimulatingFileSystem(seed: seed)
            try fs.createDirectory("/db")
            for name in ["kept", "renamed", "removed"] {
                let file = try fs.open("/db/" + name, mode: .createNew)
                try file.write(Array(name.utf8), at: 0)
                try file.syncData()
            }
            try fs.syncDirectory("/db")
            let fresh = try fs.open("/db/fresh", mode: .createNew)
            try fresh.write([1, 2, 3], at: 0)
            try fresh.syncData()  // data synced, name not
            try fs.rename("/db/renamed", to: "/db/new-name")
            try fs.removeFile("/db/removed")
            #expect(try fs.listDirectory("/db") == ["fresh", "kept", "new-name"])
            #expect(fs.durableContents(of: "/db/fresh") == nil)
            fs.crash(mode: .keepAll)
            #expect(try fs.listDirectory("/db") == ["kept", "removed", "renamed"], "seed \(seed)")
            #expect(fs.contents(of: "/db/renamed") == Array("renamed".utf8))
            #expect(fs.contents(of: "/db/removed") == Array("removed".utf8))
            #expect(!fs.fileExists("/db/fresh"))
        }
    }

    @Test func syncedNamespaceChangesAreKept() throws {
        for seed in Self.seeds.prefix(5) {
            let fs = CrashSimulatingFileSystem(seed: seed)
            try fs.createDirectory("/db")
            try fs.createDirectory("/other")
            for name in ["renamed", "removed", "replaced"] {
                let file = try fs.open("/db/" + name, mode: .createNew)
                try file.write(Array(name.utf8), at: 0)
                try file.syncData()
            }
            try fs.syncDirectory("/db")
            let fresh = try fs.open("/db/fresh", mode: .createNew)
            try fresh.write([1, 2, 3], at: 0)
            try fresh.syncData()
            try fs.rename("/db/renamed", to: "/db/new-name")
            try fs.removeFile("/db/removed")
            try fs.rename("/db/fresh", to: "/db/replaced")  // replaces an existing file
            let elsewhere = try fs.open("/other/x", mode: .createNew)  // other directory: not synced
            try elsewhere.syncData()
            try fs.syncDirectory("/db")
            fs.crash(mode: .dropAllUnsynced)
            #expect(try fs.listDirectory("/db") == ["new-name", "replaced"], "seed \(seed)")
            #expect(fs.contents(of: "/db/new-name") == Array("renamed".utf8))
            #expect(fs.contents(of: "/db/replaced") == [1, 2, 3])
            #expect(try fs.listDirectory("/other") == [], "seed \(seed)")
        }
    }

    /// The swap an upgrade does: `/s` → `/s.old`, then `/s.new` → `/s`, then a sync of `/`.
    /// A crash keeps a prefix of the two renames (each moves its whole directory, with the
    /// bytes its files had synced), never a half-moved directory; the parent's sync makes both
    /// durable. The model's limits are refused with EINVAL.
    @Test func directoryRenamesMoveEveryNameAtOnce() throws {
        func build(_ seed: UInt64) throws -> CrashSimulatingFileSystem {
            let fs = CrashSimulatingFileSystem(seed: seed)
            for (directory, content) in [("/s", "old"), ("/s.new", "new")] {
                try fs.createDirectory(directory)
                for name in ["a", "b"] {
                    let file = try fs.open(directory + "/" + name, mode: .createNew)
                    try file.write(Array((content + name).utf8), at: 0)
                    try file.syncData()
                }
                try fs.syncDirectory(directory)
            }
            return fs
        }
        func state(_ fs: CrashSimulatingFileSystem) throws -> String {
            try ["/s", "/s.old", "/s.new"].map { directory in
                guard fs.fileExists(directory) else { return "-" }
                return try fs.listDirectory(directory).map { String(decoding: fs.contents(of: directory + "/" + $0)!, as: UTF8.self) }
                    .joined(separator: ",")
            }.joined(separator: " ")
        }
        let before = "olda,oldb - newa,newb", between = "- olda,oldb newa,newb", after = "newa,newb olda,oldb -"
        var prefixes = Set<String>()
        for seed in Self.seeds {
            for namespace in NamespaceCrashMode.allCases {
                let fs = try build(seed)
                #expect(try state(fs) == before)
                try fs.rename("/s", to: "/s.old")
                #expect(try state(fs) == between)
                try fs.rename("/s.new", to: "/s")
                #expect(try state(fs) == after)
                fs.crash(mode: .dropAllUnsynced, namespace: namespace)
                let outcome = try state(fs)
                switch namespace {
                case .revertUnsynced: #expect(outcome == before, "seed \(seed)")
                case .keepAll: #expect(outcome == after, "seed \(seed)")
                case .keepPrefix:
                    #expect([before, between, after].contains(outcome), "seed \(seed): \(outcome)")
                    prefixes.insert(outcome)
                }
                // Synced: every crash keeps both renames.
                let synced = try build(seed)
                try synced.rename("/s", to: "/s.old")
                try synced.rename("/s.new", to: "/s")
                try synced.syncDirectory("/")
                synced.crash(mode: .dropAllUnsynced, namespace: namespace)
                #expect(try state(synced) == after, "seed \(seed) \(namespace)")
                // The store opened in the renamed directory keeps working after the crash.
                let file = try synced.open("/s/c", mode: .createNew)
                try file.syncData()
                try synced.syncDirectory("/s")
                #expect(try synced.listDirectory("/s") == ["a", "b", "c"])
            }
        }
        #expect(prefixes == [before, between, after], "keepPrefix outcomes: \(prefixes)")

        // The model's limits: unsynced entries inside, another parent, an existing destination.
        let fs = try build(1)
        _ = try fs.open("/s/unsynced", mode: .createNew)
        #expect(throws: StorageError.self) { try fs.rename("/s", to: "/s.old") }
        try fs.syncDirectory("/s")
        try fs.createDirectory("/elsewhere")
        #expect(throws: StorageError.self) { try fs.rename("/s", to: "/elsewhere/s") }
        #expect(throws: StorageError.self) { try fs.rename("/s", to: "/s.new") }
        try fs.rename("/s", to: "/s.old")
        #expect(throws: StorageError.self) { try fs.syncDirectory("/s.old") }   // before its parent
        try fs.syncDirectory("/")
        try fs.syncDirectory("/s.old")
    }

    @Test func namespaceCrashModesKeepRenamesAtomic() throws {
        var outcomes = Set<String>()
        for seed in Self.seeds {
            for namespace in NamespaceCrashMode.allCases {
                let fs = CrashSimulatingFileSystem(seed: seed)
                let tmp = try fs.open("/CURRENT.tmp", mode: .createNew)
                try tmp.write(Array("v2".utf8), at: 0)
                try tmp.syncData()
                let old = try fs.open("/CURRENT", mode: .createNew)
                try old.write(Array("v1".utf8), at: 0)
                try old.syncData()
                try fs.syncDirectory("/")
                let tmp2 = try fs.open("/CURRENT.tmp2", mode: .createNew)
                try tmp2.syncData()
                try fs.rename("/CURRENT.tmp", to: "/CURRENT")
                fs.crash(mode: .dropAllUnsynced, namespace: namespace)
                let names = try fs.listDirectory("/")
                let current = fs.contents(of: "/CURRENT").map { String(decoding: $0, as: UTF8.self) } ?? "none"
                // Either the old file under both old names, or the new file under the new name.
                let outcome = "\(names) \(current)"
                let allowed = [
                    "[\"CURRENT\", \"CURRENT.tmp\"] v1",
                    "[\"CURRENT\", \"CURRENT.tmp\", \"CURRENT.tmp2\"] v1",
                    "[\"CURRENT\", \"CURRENT.tmp2\"] v2",
                ]
                #expect(allowed.contains(outcome), "seed \(seed) namespace \(namespace): \(outcome)")
                switch namespace {
                case .revertUnsynced: #expect(outcome == allowed[0], "seed \(seed)")
                case .keepAll: #expect(outcome == allowed[2], "seed \(seed)")
                case .keepPrefix: outcomes.insert(outcome)
                }
            }
        }
        #expect(outcomes.count == 3, "keepPrefix outcomes: \(outcomes)")
    }

    @Test func handlesFollowTheFileAcrossRenameAndRemove() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        let file = try fs.open("/a", mode: .createNew)
        try fs.rename("/a", to: "/b")
        try file.write([5], at: 0)
        #expect(fs.contents(of: "/b") == [5])
        try fs.removeFile("/b")
        try file.write([6], at: 1)
        #expect(try file.readBytes(count: 2, at: 0) == [5, 6])
        #expect(!fs.fileExists("/b"))
        #expect(fs.allFilePaths() == [])
    }

    // MARK: Power loss

    /// A workload of exactly 12 steps (creates, writes, syncs, truncate, rename, remove,
    /// directory syncs) that returns how many of them completed before an error.
    private func twelveStepWorkload(_ fs: CrashSimulatingFileSystem) -> (completed: Int, error: (any Error)?) {
        var completed = 0
        do {
            try fs.createDirectory("/db"); completed += 1
            let a = try fs.open("/db/a", mode: .createNew); completed += 1
            try a.write([1, 2, 3], at: 0); completed += 1
            try a.syncData(); completed += 1
            try fs.syncDirectory("/db"); completed += 1
            try a.write([4], at: 3); completed += 1
            try a.truncate(to: 2); completed += 1
            let b = try fs.open("/db/b", mode: .createIfMissing); completed += 1
            _ = try b.readBytes(count: 1, at: 0)  // reads are not steps
            try b.write([9], at: 0); completed += 1
            try fs.rename("/db/b", to: "/db/c"); completed += 1
            try fs.removeFile("/db/a"); completed += 1
            _ = try fs.open("/db/c", mode: .createIfMissing)  // exists: not a step
            try fs.syncDirectory("/db"); completed += 1
            return (completed, nil)
        } catch {
            return (completed, error)
        }
    }

    @Test func scheduleCrashStopsAtExactlyStepN() throws {
        let reference = CrashSimulatingFileSystem(seed: 0)
        let full = twelveStepWorkload(reference)
        #expect(full.error == nil)
        #expect(full.completed == 12 && reference.stepCount == 12)
        for n in 0...13 {
            let fs = CrashSimulatingFileSystem(seed: UInt64(n))
            let handle = try fs.open("/pre", mode: .createNew)  // one step before the schedule
            fs.scheduleCrash(afterSteps: n)
            let run = twelveStepWorkload(fs)
            #expect(run.completed == min(n, 12), "n \(n)")
            #expect(fs.stepCount == 1 + min(n, 12), "n \(n)")
            if n < 12 {
                guard case let .io(_, _, code)? = run.error as? StorageError else {
                    Issue.record("n \(n): expected EIO, got \(String(describing: run.error))")
                    continue
                }
                #expect(code == EIO)
            }
            if n <= 12 {
                // With the power off every call fails and nothing changes.
                #expect(fs.isPoweredOff, "n \(n)")
                #expect(ioErrno { _ = try handle.readBytes(count: 1, at: 0) } == EIO)
                #expect(ioErrno { _ = try fs.listDirectory("/") } == EIO)
                #expect(ioErrno { _ = try fs.open("/pre", mode: .existing) } == EIO)
                #expect(fs.stepCount == 1 + min(n, 12))
            } else {
                #expect(!fs.isPoweredOff)
            }
            fs.crash(mode: .keepAll)
            #expect(!fs.isPoweredOff)
            // Old handles are stale; the file system works again.
            #expect(ioErrno { _ = try handle.size() } == EIO)
            #expect(ioErrno { try handle.write([1], at: 0) } == EIO)
            try handle.close()
            let again = try fs.open("/after-crash", mode: .createNew)
            try again.write([1], at: 0)
            #expect(try again.readBytes(count: 1, at: 0) == [1])
        }
    }

    @Test func crashDuringRecoveryKeepsOnlyDurableState() throws {
        let fs = CrashSimulatingFileSystem(seed: 3)
        let file = try fs.open("/log", mode: .createNew)
        try fs.syncDirectory("/")
        try file.write([1, 1], at: 0)
        try file.syncData()
        fs.scheduleCrash(afterSteps: 1)
        try file.write([2, 2], at: 2)
        #expect(throws: StorageError.self) { try file.syncData() }
        fs.crash(mode: .dropAllUnsynced)
        // Recovery starts, writes, and the power fails again before its sync.
        let recovery = try fs.open("/log", mode: .existing)
        #expect(try recovery.readBytes(count: 10, at: 0) == [1, 1])
        fs.scheduleCrash(afterSteps: 1)
        try recovery.truncate(to: 1)
        #expect(throws: StorageError.self) { try recovery.syncData() }
        fs.crash(mode: .dropAllUnsynced)
        #expect(fs.contents(of: "/log") == [1, 1])
        #expect(fs.crashCount == 2)
    }

    // MARK: Faults

    @Test func failedSyncDropsPendingDataOnce() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        try fs.createDirectory("/db")
        let file = try fs.open("/db/seg", mode: .createNew)
        try fs.syncDirectory("/db")
        let other = try fs.open("/other", mode: .createNew)
        try file.write([1, 2, 3], at: 0)
        try file.syncData()
        try file.write([4, 5], at: 3)
        try other.write([7], at: 0)
        fs.injectFault(.syncFails(pathSuffix: "seg"))
        let steps = fs.stepCount
        try other.syncData()  // suffix does not match: unaffected
        #expect(ioErrno { try file.syncData() } == EIO)
        #expect(fs.stepCount == steps + 1)  // the failed sync is not a step
        #expect(fs.contents(of: "/db/seg") == [1, 2, 3])  // pending data dropped
        #expect(try file.readBytes(count: 10, at: 0) == [1, 2, 3])
        try file.write([6], at: 3)
        try file.syncData()  // once only
        #expect(fs.durableContents(of: "/db/seg") == [1, 2, 3, 6])
        #expect(fs.durableContents(of: "/other") == nil)  // name never made durable
    }

    @Test func failedWriteWritesNothingOnce() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        let segment = try fs.open("/log-1.seg", mode: .createNew)
        let pages = try fs.open("/pages", mode: .createNew)
        fs.injectFault(.writeFails(pathSuffix: ".seg"))
        try pages.write([1], at: 0)
        let steps = fs.stepCount
        #expect(ioErrno { try segment.write([1, 2], at: 0) } == EIO)
        #expect(fs.stepCount == steps)
        #expect(try segment.size() == 0)
        try segment.write([3], at: 0)
        #expect(fs.contents(of: "/log-1.seg") == [3])
    }

    @Test func failedDirectorySyncLeavesNamesUnsynced() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        try fs.createDirectory("/db")
        _ = try fs.open("/db/a", mode: .createNew)
        fs.injectFault(.syncDirectoryFails(pathSuffix: "db"))
        #expect(ioErrno { try fs.syncDirectory("/db") } == EIO)
        fs.crash(mode: .keepAll)
        #expect(!fs.fileExists("/db/a"))
        _ = try fs.open("/db/a", mode: .createNew)
        try fs.syncDirectory("/db")
        fs.crash(mode: .keepAll)
        #expect(fs.fileExists("/db/a"))
    }

    @Test func diskFullAfterAByteBudget() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        let file = try fs.open("/f", mode: .createNew)
        try file.write([UInt8](repeating: 1, count: 100), at: 0)  // before the fault: not counted
        fs.injectFault(.diskFull(byteBudget: 1000))
        try file.write([UInt8](repeating: 2, count: 600), at: 0)
        try file.write([UInt8](repeating: 3, count: 400), at: 600)  // exactly at the budget
        #expect(ioErrno { try file.write([4], at: 1000) } == ENOSPC)
        #expect(ioErrno { try file.write([UInt8](repeating: 5, count: 10), at: 0) } == ENOSPC)
        #expect(try file.size() == 1000)  // the failed writes wrote nothing
        #expect(try file.readBytes(count: 1, at: 0) == [2])
        try file.truncate(to: 10)  // truncates are not writes
        try file.syncData()
        fs.clearFaults()
        try file.write([4], at: 1000)
    }

    @Test func readFailsOnTheNthRead() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        let file = try fs.open("/f", mode: .createNew)
        try file.write([1, 2, 3], at: 0)
        fs.injectFault(.readFails(nth: 3))
        #expect(try file.readBytes(count: 1, at: 0) == [1])
        #expect(try file.readBytes(count: 1, at: 1) == [2])
        #expect(ioErrno { _ = try file.readBytes(count: 1, at: 2) } == EIO)
        #expect(try file.readBytes(count: 1, at: 2) == [3])
    }

    // MARK: Errors and helpers

    @Test func errorsCarryPosixErrno() throws {
        let fs = CrashSimulatingFileSystem(seed: 1, maxFileSize: 1 << 20)
        #expect(ioErrno { _ = try fs.open("/missing", mode: .existing) } == ENOENT)
        #expect(ioErrno { _ = try fs.open("/no/dir/file", mode: .createNew) } == ENOENT)
        let file = try fs.open("/f", mode: .createNew)
        #expect(ioErrno { _ = try fs.open("/f", mode: .createNew) } == EEXIST)
        #expect(ioErrno { try fs.removeFile("/missing") } == ENOENT)
        #expect(ioErrno { try fs.rename("/missing", to: "/x") } == ENOENT)
        #expect(ioErrno { try fs.syncDirectory("/missing") } == ENOENT)
        #expect(ioErrno { _ = try fs.listDirectory("/f") } == ENOTDIR)
        #expect(ioErrno { try fs.createDirectory("/f") } == EEXIST)
        #expect(ioErrno { try file.write([1], at: 1 << 20) } == EFBIG)
        #expect(ioErrno { try file.write([1], at: UInt64.max) } == EFBIG)
        #expect(ioErrno { try file.truncate(to: UInt64.max) } == EFBIG)
        let reader = try fs.open("/f", mode: .readOnly)
        #expect(ioErrno { try reader.write([1], at: 0) } == EBADF)
        try file.close()
        #expect(ioErrno { try file.close() } == EBADF)
        #expect(ioErrno { _ = try file.size() } == EBADF)
    }

    @Test func setContentsInjectsDurableDamage() throws {
        let fs = CrashSimulatingFileSystem(seed: 1)
        let file = try fs.open("/f", mode: .createNew)
        try file.write([1, 2, 3], at: 0)
        fs.setContents(of: "/f", to: [9, 9])
        #expect(fs.durableContents(of: "/f") == [9, 9])
        #expect(try file.readBytes(count: 8, at: 0) == [9, 9])
        fs.setContents(of: "/new", to: [7])
        fs.crash(mode: .dropAllUnsynced)
        #expect(fs.contents(of: "/f") == [9, 9])
        #expect(fs.contents(of: "/new") == [7])
    }
}

/// Offsets touched since the last sync (a small set of half-open ranges).
struct IndexSet {
    var ranges: [Range<Int>] = []
    mutating func insert(_ range: Range<Int>) { if !range.isEmpty { ranges.append(range) } }
    func contains(_ index: Int) -> Bool { ranges.contains { $0.contains(index) } }
}

func setSize(_ bytes: inout [UInt8], _ size: Int) {
    if bytes.count > size { bytes.removeLast(bytes.count - size) } else { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
}

@Suite struct CrashSimulatingFileSystemConcurrencyTests {
    @Test func concurrentWritersThenCrashKeepSyncedData() async throws {
        let fs = CrashSimulatingFileSystem(seed: 11)
        try fs.createDirectory("/db")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    let file = try fs.open("/db/f\(worker)", mode: .createNew)
                    for block in 0..<50 {
                        try file.write([UInt8](repeating: UInt8(worker), count: 100), at: UInt64(block * 100))
                        if block == 24 { try file.syncData() }
                    }
                }
            }
            try await group.waitForAll()
        }
        try fs.syncDirectory("/db")
        #expect(fs.stepCount == 1 + 8 * (1 + 50 + 1) + 1)
        fs.crash(mode: .dropAllUnsynced)
        for worker in 0..<8 {
            #expect(fs.contents(of: "/db/f\(worker)") == [UInt8](repeating: UInt8(worker), count: 2500))
        }
    }
}
