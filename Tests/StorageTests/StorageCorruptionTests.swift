import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing
import TestSupport

/// Damage at rest: a healthy store is closed, then one of its files is damaged (a flipped
/// bit, a zeroed 512-byte sector, a truncation, appended garbage). Opening and reading it
/// must either return exactly the committed data or throw a typed `StorageError`; nothing
/// may trap or return a wrong value. Damage the reads did not touch must still be found by
/// `verify()` when it lies in a checked structure (see the per-layer tests for exact offsets).
@Suite struct StorageCorruptionTests {
    enum Damage: CaseIterable { case flipBit, zeroSector, truncate, appendGarbage }

    @Test(arguments: TestSeeds.seeds(default: [11, 12, 13]))
    func damagedFilesGiveTypedErrorsOrCorrectData(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        let pristine = MemoryFileSystem()
        var model: [UInt64: UInt64] = [:]
        let options = StorageEngineTests.smallOptions()
        do {
            let engine = try StorageEngine.open(fileSystem: pristine, directory: "/db", options: options, schema: KeyValueSchema.schema)
            for _ in 0..<400 {
                let key = UInt64.random(in: 0..<300, using: &rng)
                let operations: [KeyValueSchema.Operation] =
                    Bool.random(using: &rng) ? [.put(key, UInt64.random(in: 0..<1000, using: &rng))] : [.delete(key)]
                try KeyValueSchema.commit(operations, to: engine)
                KeyValueSchema.apply(operations, to: &model)
            }
            try engine.close()
        }
        let files = try pristine.listDirectory("/db").map { "/db/" + $0 }
        // This schema keeps nothing in runs: full segments are retired and removed once a
        // checkpoint replays from a later one, so the files are the page file and the newest
        // segments.
        #expect(files.contains("/db/pages") && files.contains { $0.hasSuffix(".seg") },
                "the workload must produce every file type: \(files)")

        var cases = 0, typedErrors = 0, correct = 0, verifyReports = 0
        for path in files {
            guard let original = pristine.contents(of: path), !original.isEmpty else { continue }
            for _ in 0..<50 {
                let damage = Damage.allCases.randomElement(using: &rng)!
                var bytes = original
                switch damage {
                case .flipBit:
                    let offset = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[offset] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case .zeroSector:
                    let sector = Int.random(in: 0..<((bytes.count + 511) / 512), using: &rng) * 512
                    for i in sector..<min(sector + 512, bytes.count) { bytes[i] = 0 }
                case .truncate:
                    bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
                case .appendGarbage:
                    bytes += (0..<Int.random(in: 1...700, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                }
                let fs = MemoryFileSystem()
                try fs.createDirectory("/db")
                for file in files { fs.setContents(of: file, to: file == path ? bytes : pristine.contents(of: file)!) }
                cases += 1
                do {
                    let engine = try StorageEngine.open(fileSystem: fs, directory: "/db", options: options, schema: KeyValueSchema.schema)
                    let contents = try KeyValueSchema.contents(of: engine)
                    if contents != model {
                        Issue.record("wrong data without an error: \(damage) in \(path) (seed \(seed))")
                    } else {
                        correct += 1
                    }
                    let problems = engine.verify()
                    if !problems.isEmpty { verifyReports += 1; if verifyReports % 20 == 1 { print("  \(damage) \(path): \(problems)") } }
                } catch is StorageError {
                    typedErrors += 1
                } catch {
                    Issue.record("untyped error \(error) for \(damage) in \(path) (seed \(seed))")
                }
            }
        }
        print("storage corruption seed \(seed): \(cases) cases, \(typedErrors) typed errors, \(correct) correct reads (\(verifyReports) of them flagged by verify)")
        #expect(cases >= 90)
        #expect(typedErrors > 0, "no damage was ever detected")
    }
}
