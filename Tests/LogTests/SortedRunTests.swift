import Foundation
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import Testing
import TestSupport

/// Sorted-run files (spec/sorted-run.md): writing, reading by key, cursors, codecs, damage.
@Suite struct SortedRunTests {
    let directory = "/runs"

    func makeStore(_ fs: MemoryFileSystem, blockSize: Int = 512, cacheBytes: Int = 1 << 20) throws -> RunStore {
        try fs.createDirectory(directory)
        return try RunStore(fileSystem: fs, directory: directory, cacheBytes: cacheBytes, blockSize: blockSize)
    }

    /// Random records in key order: keys with shared conversations, close timestamps, random seqs.
    func records(count: Int, seed: UInt64, maxPayload: Int = 200) -> [(RunKey, [UInt8])] {
        var random = SeededRandom(seed: seed)
        var keys = Set<RunKey>()
        while keys.count < count {
            let conversation = UInt64.random(in: 1...max(1, UInt64(count / 20)), using: &random)
            keys.insert(RunKey(conversation, UInt64.random(in: 1_700_000_000_000...1_700_000_900_000, using: &random),
                               UInt64.random(in: 1...1 << 40, using: &random)))
        }
        let words = ["hello", "test", "message", "chat", "hey", "ok", "thanks", "sure", "great", "yes", "no"]
        return keys.sorted().map { key in
            var text = ""
            let length = Int.random(in: 0...maxPayload, using: &random)
            while text.utf8.count < length { text += words[Int(random.next() % UInt64(words.count))] + " " }
            return (key, Array(text.utf8.prefix(length)))
        }
    }

    /// Scans run `id` from its first record, expecting `records` in order; returns how many
    /// records the scan met.
    func scanAll(_ store: RunStore, _ id: UInt32, _ records: [(RunKey, [UInt8])], _ context: String) throws -> Int {
        var cursor = try store.cursor(id)
        var seen = 0
        var valid = try cursor.seekFirst()
        while valid {
            #expect(seen < records.count && cursor.key == records[seen].0 && Array(cursor.payload) == records[seen].1,
                    "\(context) #\(seen)")
            seen += 1
            valid = try cursor.next()
        }
        return seen
    }

    func write(_ store: RunStore, id: UInt32, _ records: [(RunKey, [UInt8])], compression: RunCompression = .fast,
               threads: Int = 1) throws -> SortedRun {
        let writer = try store.writer(id: id, compression: compression, compressionThreads: threads)
        for (key, payload) in records {
            try payload.withUnsafeBytes { try writer.append(key, tag: UInt32(truncatingIfNeeded: key.w2 % 97), payload: $0) }
        }
        let run = try writer.finish()
        store.add(run)
        return run
    }

    @Test(arguments: [RunCompression.fast, .high(level: 4)])
    func everyRecordReadsBackByKeyAndInOrder(compression: RunCompression) throws {
        for seed in TestSeeds.seeds(default: [1, 2, 3]) {
            let fs = MemoryFileSystem()
            let store = try makeStore(fs)
            let input = records(count: 2000, seed: seed)
            let written = try write(store, id: 7, input, compression: compression)
            #expect(written.recordCount == 2000, "seed \(seed)")
            #expect(written.blockCount > 10, "seed \(seed): small blocks give many blocks")
            // Reopened from the file (a new store lists and validates it), by a store whose
            // writers use another block size: blocks are found through the run's index, so runs
            // written under an older default (32 KiB; 8 KiB now) read alike.
            let reopened = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 1 << 20, blockSize: 32 << 10)
            #expect(reopened.ids() == [7])
            // A run not opened yet still counts its bytes (stats of a freshly opened store).
            let unopened = reopened.statistics
            #expect(unopened.runs == 1 && unopened.bytes == written.fileSize && unopened.records == 0, "seed \(seed): \(unopened)")
            let run = try reopened.run(7)
            #expect(reopened.statistics.bytes == written.fileSize && reopened.statistics.records == 2000, "seed \(seed)")
            #expect(try run.allEntries() == written.allEntries())
            #expect(run.recordCount == 2000 && run.payloadBytes == UInt64(input.reduce(0) { $0 + $1.1.count }))
            // By key, in random order and in both scan directions.
            var cursor = try reopened.cursor(7)
            var random = SeededRandom(seed: seed)
            for (key, payload) in input.shuffled(using: &random) {
                #expect(try cursor.find(key), "seed \(seed) key \(key)")
                #expect(Array(cursor.payload) == payload && cursor.tag == UInt32(key.w2 % 97), "seed \(seed) key \(key)")
            }
            for (key, payload) in input.reversed() {
                #expect(try cursor.find(key) && Array(cursor.payload) == payload, "seed \(seed) reverse \(key)")
            }
            // Absent keys are not found.
            for (key, _) in input.prefix(50) {
                #expect(try !cursor.find(RunKey(key.w0, key.w1, key.w2 &+ 1)) || input.contains { $0.0 == RunKey(key.w0, key.w1, key.w2 &+ 1) })
            }
            #expect(try !cursor.find(RunKey(0, 0, 0)))
            #expect(try !cursor.find(RunKey.max))
            // Forward iteration.
            #expect(try scanAll(reopened, 7, input, "seed \(seed)") == input.count)
            try run.verify()
        }
    }

    @Test func highCompressionIsSmallerAndMarked() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 32 << 10)
        let input = records(count: 3000, seed: 9)
        let fast = try write(store, id: 1, input, compression: .fast)
        let high = try write(store, id: 2, input, compression: .high(level: 9))
        #expect(high.fileSize < fast.fileSize)
        #expect(high.highCompressionBlocks == high.blockCount && fast.highCompressionBlocks == 0)
        #expect(try fast.allEntries().allSatisfy { $0.codec == .lz4 })
    }

    /// Several compression threads write the file one thread writes, byte for byte: batches
    /// of blocks (more than one batch, and a last one part full), stored blocks among them,
    /// a record larger than the block size, both codecs.
    @Test(arguments: [RunCompression.fast, .high(level: 2)])
    func parallelCompressionWritesTheSameFile(compression: RunCompression) throws {
        for seed in TestSeeds.seeds(default: [1, 2]) {
            let fs = MemoryFileSystem()
            let store = try makeStore(fs, blockSize: 512)
            var random = SeededRandom(seed: seed)
            var input = records(count: 3_000, seed: seed)
            for i in stride(from: 100, to: input.count, by: 400) {   // incompressible and oversized records
                input[i].1 = (0..<(i % 800 == 100 ? 2_000 : 400)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
            let one = try write(store, id: 1, input, compression: compression)
            let files = try [1, 2, 3].map { threads in
                let run = threads == 1 ? one : try write(store, id: UInt32(threads), input, compression: compression, threads: threads)
                #expect(run.recordCount == UInt64(input.count), "seed \(seed) threads \(threads)")
                #expect(try run.allEntries() == one.allEntries(), "seed \(seed) threads \(threads)")
                return fs.contents(of: "\(directory)/\(SortedRun.fileName(UInt32(threads)))") ?? []
            }
            #expect(one.blockCount > 2 * 64, "seed \(seed): more than two batches")
            #expect(try one.allEntries().contains { $0.codec == .stored }, "seed \(seed)")
            // The header holds the run id; everything after it is the same.
            for file in files.dropFirst() { #expect(file.dropFirst(32) == files[0].dropFirst(32), "seed \(seed)") }
            #expect(try scanAll(store, 3, input, "seed \(seed) three threads") == input.count)
            try store.run(3).verify()
        }
        let fs = MemoryFileSystem()
        let store = try makeStore(fs)
        #expect(throws: StorageError.self) { try store.writer(id: 1, compression: compression, compressionThreads: 0) }
        // Counted while blocks wait in a batch; abandoned with a batch pending, nothing is left.
        let input = records(count: 500, seed: 5)
        let writer = try store.writer(id: 9, compression: compression, compressionThreads: 2)
        for (i, (key, payload)) in input.enumerated() {
            try payload.withUnsafeBytes { try writer.append(key, payload: $0) }
            #expect(writer.recordCount == UInt64(i + 1))
        }
        writer.abandon()
        #expect(try fs.listDirectory(directory).isEmpty)
    }

    @Test func incompressibleBlocksAreStored() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 4096)
        var random = SeededRandom(seed: 4)
        let input = (0..<40).map { i in (RunKey(1, UInt64(i), 0), (0..<300).map { _ in UInt8.random(in: 0...255, using: &random) }) }
        let run = try write(store, id: 3, input)
        #expect(try run.allEntries().allSatisfy { $0.codec == .stored })
        var cursor = try store.cursor(3)
        for (key, payload) in input { #expect(try cursor.find(key) && Array(cursor.payload) == payload) }
    }

    @Test func edgeCases() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 256)
        // Empty run.
        let empty = try write(store, id: 1, [])
        #expect(empty.blockCount == 0 && empty.recordCount == 0)
        var emptyCursor = try store.cursor(1)
        #expect(try !emptyCursor.seekFirst())
        // A record larger than the block size gets a block of its own; empty payloads work.
        let big = [UInt8](repeating: 7, count: 5000)
        let run = try write(store, id: 2, [(RunKey(1, 1, 1), []), (RunKey(1, 1, 2), big), (RunKey(1, 1, 3), [1])])
        #expect(run.blockCount == 3)
        var cursor = try store.cursor(2)
        #expect(try cursor.find(RunKey(1, 1, 2)) && Array(cursor.payload) == big)
        #expect(try cursor.find(RunKey(1, 1, 1)) && cursor.payload.isEmpty)
        // Keys must increase; a refused append adds nothing.
        let writer = try store.writer(id: 3, compression: .fast)
        try [UInt8]().withUnsafeBytes { try writer.append(RunKey(5, 5, 5), payload: $0) }
        #expect(throws: StorageError.self) { try [UInt8]().withUnsafeBytes { try writer.append(RunKey(5, 5, 5), payload: $0) } }
        #expect(throws: StorageError.self) { try [UInt8]().withUnsafeBytes { try writer.append(RunKey(5, 4, 9), payload: $0) } }
        #expect(writer.recordCount == 1)
        writer.abandon()
        #expect(!fs.fileExists(directory + "/run-00000003.run.tmp") && !fs.fileExists(directory + "/run-00000003.run"))
        // Removal drops the file and its cached blocks.
        try store.remove(2)
        #expect(!fs.fileExists(directory + "/run-00000002.run"))
        #expect(throws: StorageError.self) { _ = try store.run(2) }
    }

    @Test func temporaryFilesAreRemovedAtOpenAndOtherNamesIgnored() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs)
        _ = try write(store, id: 4, records(count: 10, seed: 1))
        fs.setContents(of: directory + "/run-00000005.run.tmp", to: [1, 2, 3])
        fs.setContents(of: directory + "/run-5.run", to: [1])
        fs.setContents(of: directory + "/log-00000001.seg", to: [1])
        let reopened = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 0)
        #expect(reopened.ids() == [4])
        #expect(!fs.fileExists(directory + "/run-00000005.run.tmp"))
        #expect(fs.fileExists(directory + "/run-5.run"))
    }

    /// A version-2 run opens by reading its page table only; a lookup reads the one index page
    /// it needs; a scan reads the pages in turn; `verify` reads every page.
    @Test func indexPagesAreReadOnFirstUse() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 256)
        let input = records(count: 3000, seed: 21)
        let written = try write(store, id: 8, input)
        #expect(written.pageCount >= 5 && written.loadedPageCount == written.pageCount, "\(written.blockCount) blocks")
        let reopened = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 1 << 20, blockSize: 256)
        let run = try reopened.run(8)
        #expect(run.version == SortedRunLayout.formatVersion && run.pageCount == written.pageCount)
        #expect(run.loadedPageCount == 0 && run.lastKey == input.last!.0 && run.blockCount == written.blockCount)
        #expect(run.highCompressionBlocks == written.highCompressionBlocks && run.recordCount == 3000)
        var cursor = try reopened.cursor(8)
        let middle = input[input.count / 2]
        #expect(try cursor.find(middle.0) && Array(cursor.payload) == middle.1)
        #expect(run.loadedPageCount == 1)
        // Neighbouring keys stay in the cursor's page; a key past the last is not found.
        #expect(try cursor.find(input[input.count / 2 + 1].0))
        #expect(try !cursor.find(RunKey(UInt64.max, 0, 0)))
        #expect(run.loadedPageCount == 1)
        // A full scan in order meets every record and reads every page.
        #expect(try scanAll(reopened, 8, input, "scan") == input.count && run.loadedPageCount == run.pageCount)
        #expect(try run.allEntries() == written.allEntries())
        try run.verify()
        // Seeks land in the right page from anywhere.
        var random = SeededRandom(seed: 22)
        var seeker = try reopened.cursor(8)
        for _ in 0..<200 {
            let i = Int.random(in: 0..<input.count, using: &random)
            #expect(try seeker.seek(atLeast: input[i].0) && seeker.key == input[i].0, "seek \(i)")
        }
    }

    /// Damage to an index page that no lookup reads is found by `verify`, named by the page's
    /// offset; damage to the page table is found at open.
    @Test func damagedIndexPagesAreFoundOnUseAndByVerify() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 256)
        let input = records(count: 3000, seed: 23)
        let written = try write(store, id: 9, input)
        let path = directory + "/run-00000009.run"
        let original = try #require(fs.contents(of: path))
        let entries = try written.allEntries()
        let indexOffset = Int(entries.last!.fileOffset) + Int(entries.last!.storedLength)
        // A byte of page 3's entries (its last key word): the open succeeds, a lookup in page 0 too.
        var damaged = original
        let pageStart = indexOffset + 3 * SortedRunLayout.indexPageEntries * SortedRunLayout.indexEntrySize
        damaged[pageStart + 30] ^= 0x40
        fs.setContents(of: path, to: damaged)
        let copy = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 0)
        var cursor = try copy.cursor(9)
        #expect(try cursor.find(input[0].0) && Array(cursor.payload) == input[0].1)
        do {
            try copy.run(9).verify()
            Issue.record("verify passed a damaged index page")
        } catch let StorageError.corrupted(file, offset, reason) {
            #expect(file == path && offset == UInt64(pageStart) && reason.contains("index page 3"), "\(offset) \(reason)")
        }
        // A key of page 3 reports the damage instead of an answer.
        let inPage3 = entries[3 * SortedRunLayout.indexPageEntries + 1].firstKey
        var other = try copy.cursor(9)
        #expect(throws: StorageError.self) { _ = try other.find(inPage3) }
        // A byte of the page table: the open fails, naming the table.
        damaged = original
        let tableStart = indexOffset + entries.count * SortedRunLayout.indexEntrySize
        damaged[tableStart + SortedRunLayout.pageSummarySize + 25] ^= 1
        fs.setContents(of: path, to: damaged)
        do {
            _ = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 0).run(9)
            Issue.record("a damaged page table opened")
        } catch let StorageError.corrupted(_, offset, reason) {
            #expect(offset == UInt64(tableStart) && reason.contains("page table"), "\(offset) \(reason)")
        }
        fs.setContents(of: path, to: original)
    }

    /// Every damaged byte gives a typed error or the right data, never wrong data or a trap.
    @Test func damageGivesTypedErrorsOrCorrectData() throws {
        let fs = MemoryFileSystem()
        let store = try makeStore(fs, blockSize: 700)
        let input = records(count: 120, seed: 11)
        _ = try write(store, id: 6, input)
        let path = directory + "/run-00000006.run"
        let original = try #require(fs.contents(of: path))
        var outcomes = (errors: 0, correct: 0)
        var random = SeededRandom(seed: 12)
        for round in 0..<400 {
            var damaged = original
            let offset = round < original.count ? round * max(1, original.count / 400) % original.count
                : Int.random(in: 0..<original.count, using: &random)
            damaged[offset] ^= UInt8.random(in: 1...255, using: &random)
            fs.setContents(of: path, to: damaged)
            do {
                let copy = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 0)
                var cursor = try copy.cursor(6)
                for (key, payload) in input {
                    if try cursor.find(key) {
                        #expect(Array(cursor.payload) == payload, "damage at \(offset) returned wrong data for \(key)")
                    } else {
                        Issue.record("damage at \(offset): key \(key) silently missing")
                    }
                }
                outcomes.correct += 1
            } catch let error as StorageError {
                if case .corrupted = error { outcomes.errors += 1 } else if case .notAStore = error { outcomes.errors += 1 } else {
                    Issue.record("damage at \(offset): unexpected error \(error)")
                }
            }
        }
        #expect(outcomes.errors > 300)
        fs.setContents(of: path, to: original)
        // Truncation at every length is an error, never a trap.
        for length in stride(from: 0, to: original.count, by: 7) {
            fs.setContents(of: path, to: Array(original.prefix(length)))
            #expect(throws: StorageError.self) { _ = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 0).run(6).verify() }
        }
    }
}

/// Decodes the worked example of spec/sorted-run.md (read from the document).
@Suite struct SortedRunSpecExampleTests {
    /// A store holding `bytes` as run 5.
    static func store(holdingRun bytes: [UInt8]) throws -> (MemoryFileSystem, RunStore) {
        let fs = MemoryFileSystem()
        try fs.createDirectory("/s")
        fs.setContents(of: "/s/run-00000005.run", to: bytes)
        return (fs, try RunStore(fileSystem: fs, directory: "/s", cacheBytes: 1 << 16))
    }

    /// The worked example as version 1 wrote it (no page table; the footer's index crc over
    /// the whole index): still read, by key and by `verify`.
    @Test func versionOneRunsAreStillRead() throws {
        let hex = "5342534f5254524e01000000050000000300000000000000000000008cebc5960200000002000000000000007b68e5cf8b010000070000000000000000f90204080002036869796f2102000000000000007b68e5cf8b01000007000000000000000200000000000000f469e5cf8b010000090000000000000020000000000000002900000029000000020000000000000000000000a8bab1634900000000000000010000000000000002000000000000000500000000000000000000000000000092145a50af1a1438"
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            bytes.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        #expect(bytes.count == 201)
        let (fs, store) = try Self.store(holdingRun: bytes)
        let run = try store.run(5)
        #expect(run.version == 1 && run.recordCount == 2 && run.blockCount == 1 && run.loadedPageCount == 1)
        var cursor = try store.cursor(5)
        #expect(try cursor.find(RunKey(2, 1_700_000_000_500, 9)) && Array(cursor.payload) == Array("yo!".utf8) && cursor.tag == 4)
        try run.verify()
        // Version 1's footer bytes +0x0C must be zero (version 2 counts LZ4 HC blocks there).
        var damaged = bytes
        damaged[0x99 + 12] = 1
        damaged.withUnsafeMutableBytes { $0.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0x99..<(0x99 + 44)])), at: 0x99 + 44) }
        fs.setContents(of: "/s/run-00000005.run", to: damaged)
        #expect(throws: StorageError.self) { _ = try RunStore(fileSystem: fs, directory: "/s", cacheBytes: 0).run(5) }
    }

    @Test func specExampleRunDecodes() throws {
        let bytes = try LogSpecExampleTests().exampleBytes("sorted-run.md")
        #expect(bytes.count == 241)
        let (fs, store) = try Self.store(holdingRun: bytes)
        let run = try store.run(5)
        #expect(run.recordCount == 2 && run.payloadBytes == 5 && run.blockCount == 1)
        #expect(try run.entry(0).codec == .stored)
        var cursor = try store.cursor(5)
        #expect(try cursor.find(RunKey(2, 1_700_000_000_123, 7)) && Array(cursor.payload) == Array("hi".utf8) && cursor.tag == 4)
        #expect(try cursor.find(RunKey(2, 1_700_000_000_500, 9)) && Array(cursor.payload) == Array("yo!".utf8))
        // This code writes exactly these bytes.
        let writer = try store.writer(id: 6, compression: .fast)
        try Array("hi".utf8).withUnsafeBytes { try writer.append(RunKey(2, 1_700_000_000_123, 7), tag: 4, payload: $0) }
        try Array("yo!".utf8).withUnsafeBytes { try writer.append(RunKey(2, 1_700_000_000_500, 9), tag: 4, payload: $0) }
        _ = try writer.finish()
        var expected = bytes
        expected[12] = 6   // run id 6
        expected.withUnsafeMutableBytes { $0.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<28])), at: 28) }
        #expect(fs.contents(of: "/s/run-00000006.run") == expected)
    }
}
