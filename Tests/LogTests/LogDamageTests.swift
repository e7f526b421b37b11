import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// Random damage to the log's files (bit flips, truncation, garbage, zeroed ranges) never
/// traps; open either reports a typed error or recovers a prefix of the committed
/// transactions, all of which then read back exactly.
@Suite struct LogDamageTests {
    @Test(arguments: TestSeeds.seeds(default: Array(1...40)))
    func randomDamageGivesATypedErrorOrAPrefix(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let options = smallOptions(segmentSize: 400, blockSize: 150, cacheBytes: 1000)
        let context = "seed \(seed) (replay with SCROLLBACK_SEED=\(seed))"
        let fs = MemoryFileSystem()
        let (log, _) = try openLog(fs, options)
        var model: [ModelTransaction] = []
        for i in 0..<25 {
            let count = Int.random(in: 1...3, using: &random)
            model.append(try append(log, (0..<count).map { record(i * 5 + $0, count: Int.random(in: 0...90, using: &random)) }))
            if random.next() % 3 == 0 { try log.sync(through: model[i].end) }
        }
        if random.next() % 2 == 0 { try log.sealFullSegments() }
        try log.close()

        let files = try fs.listDirectory(testDirectory).map { testDirectory + "/" + $0 }
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let file = files[Int.random(in: 0..<files.count, using: &random)]
            fs.mutate(file) { bytes in
                guard !bytes.isEmpty else { return }
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch random.next() % 5 {
                case 0: bytes[at] ^= UInt8.random(in: 1...255, using: &random)
                case 1: bytes.removeLast(bytes.count - at)
                case 2: bytes.append(contentsOf: (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
                case 3:
                    let end = min(bytes.count, at + Int.random(in: 1...40, using: &random))
                    for i in at..<end { bytes[i] = 0 }
                default:
                    let end = min(bytes.count, at + Int.random(in: 1...40, using: &random))
                    for i in at..<end { bytes[i] = UInt8.random(in: 0...255, using: &random) }
                }
            }
        }

        let reopened: Log
        let replayed: [Replayed]
        do {
            (reopened, replayed) = try openLog(fs, options)
        } catch is StorageError {
            return   // a typed report is an accepted outcome for damage
        }
        #expect(replayed.count <= model.count, "\(context)")
        #expect(replayed == model.prefix(replayed.count).map(asReplayed), "\(context): not a prefix")
        for t in model.prefix(replayed.count) {
            for (i, p) in t.positions.enumerated() {
                do {
                    #expect(try read(reopened, p) == t.records[i], "\(context)")
                } catch let error as StorageError {
                    // Damage in a sealed segment not scanned... every segment was scanned
                    // (replay from 0), so a replayed record must read back.
                    Issue.record("\(context): replayed record at \(LogPositions.describe(p)) does not read: \(error)")
                }
            }
        }
        // Reads of positions that were cut off fail with a typed error, never trap.
        for t in model.dropFirst(replayed.count) {
            for p in t.positions { _ = try? read(reopened, p) }
        }
        // The log keeps working.
        let t = try append(reopened, [record(999, count: 10)])
        try reopened.sync(through: t.end)
        #expect(try read(reopened, t.positions[0]) == t.records[0], "\(context)")
        try reopened.close()
    }

    /// Arbitrary bytes as a segment, a sealed segment or a temp file: open and reads never trap.
    @Test(arguments: TestSeeds.seeds(default: Array(100...160)))
    func arbitraryBytesNeverTrap(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let fs = MemoryFileSystem()
        try fs.createDirectory(testDirectory)
        let count = Int.random(in: 0...300, using: &random)
        var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
        // Often start from a valid header so the frame parser is reached.
        if random.next() % 2 == 0, bytes.count >= 24 {
            let valid: [UInt8] = [0x53, 0x42, 0x4c, 0x4f, 0x47, 0x53, 0x45, 0x47, 1, 0, 0, 0, 1, 0, 0, 0, 0xd7, 0x0d, 0x32, 0x59, 0xce, 0xcb, 0x65, 0xbf]
            bytes.replaceSubrange(0..<24, with: valid)
        }
        let sealed = random.next() % 2 == 0
        fs.setContents(of: sealed ? sealedPath(1) : segmentPath(1), to: bytes)
        do {
            let (log, _) = try openLog(fs, smallOptions())
            for _ in 0..<50 {
                _ = try? read(log, LogPositions.make(segment: 1, offset: UInt32.random(in: 0...400, using: &random)))
            }
            try log.close()
        } catch is StorageError {
        }
    }
}
