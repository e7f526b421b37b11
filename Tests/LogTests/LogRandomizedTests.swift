import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// Random transactions, reads by position, syncs, rolls, sealing and reopen with replay
/// from a random position, checked against an in-memory list of every transaction.
@Suite struct LogRandomizedTests {
    @Test(arguments: TestSeeds.seeds(default: [1, 2, 3, 4, 5, 6, 7, 8]))
    func randomOperationsMatchTheModel(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let options = LogOptions(
            segmentSize: Int.random(in: 128...3000, using: &random),
            blockSize: Int.random(in: 64...1500, using: &random),
            blockCacheBytes: [0, 500, 4000, 1 << 20][Int.random(in: 0...3, using: &random)],
            saltSeed: seed)
        let context = "seed \(seed) (replay with SCROLLBACK_SEED=\(seed)), options \(options)"
        let fs = MemoryFileSystem()
        var (log, replayed) = try openLog(fs, options)
        #expect(replayed.isEmpty)
        var model: [ModelTransaction] = []
        var batch = LogBatch(capacity: 64)
        do {
            for step in 0..<600 {
                let dice = Int.random(in: 0..<100, using: &random)
                switch dice {
                case 0..<55:
                    let count = Int.random(in: 1...4, using: &random)
                    let records = (0..<count).map { _ in
                        ModelRecord(type: UInt8.random(in: 16...255, using: &random),
                                    payload: payload(Int(random.next() % 1000),
                                                     count: random.next() % 8 == 0 ? Int.random(in: 0...2000, using: &random)
                                                                                   : Int.random(in: 0...120, using: &random)))
                    }
                    model.append(try append(log, records, batch: &batch))
                case 55..<80:
                    guard let t = model.randomElement(using: &random) else { continue }
                    let i = Int.random(in: 0..<t.positions.count, using: &random)
                    let got = try read(log, t.positions[i])
                    #expect(got == t.records[i], "step \(step): read \(LogPositions.describe(t.positions[i])); \(context)")
                case 80..<88:
                    if let t = model.last { try log.sync(through: t.end) }
                case 88..<92:
                    try log.sealFullSegments()
                case 92..<95:
                    try log.rollSegment()
                default:
                    try log.close()
                    let from: LogPosition
                    let k: Int
                    if model.isEmpty || random.next() % 4 == 0 {
                        from = 0
                        k = 0
                    } else {
                        k = Int.random(in: 0..<model.count, using: &random)
                        from = model[k].end
                    }
                    let skipped = from == 0 ? 0 : k + 1
                    (log, replayed) = try openLog(fs, options, replayFrom: from)
                    #expect(replayed == model[skipped...].map(asReplayed),
                            "step \(step): replay from \(LogPositions.describe(from)); \(context)")
                }
            }
            // Finally every record reads back, sealed or not, before and after a reopen.
            for t in model {
                for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i], "\(context)") }
            }
            try log.sealFullSegments()
            try log.close()
            (log, replayed) = try openLog(fs, options)
            #expect(replayed == model.map(asReplayed), "\(context)")
            for t in model {
                for (i, p) in t.positions.enumerated() { #expect(try read(log, p) == t.records[i], "\(context)") }
            }
            try log.close()
        } catch {
            Issue.record("\(context): \(error)")
        }
    }
}
