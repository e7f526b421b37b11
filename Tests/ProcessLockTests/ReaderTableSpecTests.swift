import ScrollbackFormat
import ScrollbackIO
@testable import ScrollbackStorage
import Testing

/// Decodes and re-encodes exactly the worked examples of spec/reader-table.md (read from the
/// document, so the document cannot drift from the code).
@Suite struct ReaderTableSpecTests {
    let exampleSlot = ReaderSlot(
        process: ProcessIdentity(pid: 4242, startTime: 987_654),
        snapshot: ReaderSnapshot(transactionID: 40, logPosition: 0x2_0000_0018), generation: 3)

    /// The example table, opened while "pid 4242" holds slot 1's lock and another process
    /// has the table open (so the opener is not alone and takes the file as it is).
    @Test func readersExampleDecodes() throws {
        let bytes = try specExample("readers-example", size: 320)
        let fs = MemoryFileSystem()
        fs.setContents(of: "/store/readers", to: bytes)
        try fs.createDirectory("/store")
        let other = try fs.open("/store/readers", mode: .existing)
        defer { try? other.close() }
        #expect(try other.tryLock(0..<1, exclusive: false))             // the guard, shared
        #expect(try other.tryLock(0x80..<0x81, exclusive: true))        // slot 1's lock

        let table = try ReaderTable.open(fileSystem: fs, directory: "/store", role: .writer, slotCount: 4)
        defer { try? table.close() }
        #expect(table.slotCount == 4)
        #expect(try table.readPublished() == PublishedState(
            durableLogEnd: 0x3_0000_1A2B, checkpointTransaction: 42, publishCount: 7))
        #expect(try table.inspectSlots() == [.free, .live(exampleSlot), .free, .free])
        #expect(try table.oldestReader() == OldestReader(
            transactionID: 40, logPosition: 0x2_0000_0018, liveReaders: 1, pid: 4242, unreadableSlots: 0))
        #expect(fs.contents(of: "/store/readers") == bytes, "opening a table in use changed it")

        // Once "pid 4242" is gone its slot is stale and the next process alone clears it.
        try other.close()
        #expect(try table.oldestReader() == nil)
        #expect(try table.inspectSlots()[1] == .stale(exampleSlot))
    }

    @Test func readersExampleEncodes() throws {
        let bytes = try specExample("readers-example", size: 320)
        var encoded = [UInt8](repeating: 0, count: 320)
        encoded.withUnsafeMutableBytes { raw in
            ReaderTableHeader(
                slotCount: 4,
                published: PublishedState(durableLogEnd: 0x3_0000_1A2B, checkpointTransaction: 42, publishCount: 7)
            ).encode(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<64]))
            exampleSlot.encode(into: UnsafeMutableRawBufferPointer(rebasing: raw[128..<192]))
        }
        #expect(encoded == bytes)
        #expect(bytes.withUnsafeBytes { ReaderTableHeader.decode($0, fileSize: 320) }
            == .valid(ReaderTableHeader(slotCount: 4, published: PublishedState(
                durableLogEnd: 0x3_0000_1A2B, checkpointTransaction: 42, publishCount: 7))))
        #expect(bytes.withUnsafeBytes { ReaderTableHeader.decode($0, fileSize: 319) } != .valid(ReaderTableHeader(
            slotCount: 4, published: PublishedState(durableLogEnd: 0x3_0000_1A2B, checkpointTransaction: 42, publishCount: 7))))
    }

    @Test func lockExampleDecodesAndEncodes() throws {
        let bytes = try specExample("lock-example", size: 59)
        let holder = StoreLockHolder(
            process: ProcessIdentity(pid: 4242, startTime: 987_654), acquiredAt: 0x6B0C_A2BB, label: "scrollback exec")
        #expect(StoreLockHolder.decode(bytes) == holder)
        #expect(holder.encoded() == bytes)
        #expect(UTCTime.iso8601(secondsSinceEpoch: holder.acquiredAt) == "2026-11-29T22:10:03Z")
    }

    @Test func constantsMatchTheSpec() {
        #expect(withUnsafeBytes(of: ReaderTableLayout.magic.littleEndian) { Array($0) } == Array("SBREADRS".utf8))
        #expect(withUnsafeBytes(of: StoreLockLayout.magic.littleEndian) { Array($0) } == Array("SBWRITER".utf8))
        #expect(ReaderTableLayout.headerSize == 64 && ReaderTableLayout.slotSize == 64)
        #expect(ReaderTableLayout.fileSize(slotCount: ReaderTableLayout.defaultSlotCount) == 8128)
        #expect(ReaderTableHeaderLayout.checksum == 0x3C && ReaderSlotLayout.checksum == 0x3C)
        #expect(ReaderSlotLayout.reserved + ReaderSlotLayout.reservedSize == ReaderSlotLayout.checksum)
        #expect(ReaderTableHeaderLayout.reserved1 + ReaderTableHeaderLayout.reserved1Size == ReaderTableHeaderLayout.checksum)
        #expect(StoreLockLayout.recordSize(labelBytes: 15) == 59)
        // Slots never cross a 512-byte sector, so a slot write tears as a whole.
        #expect(512 % ReaderTableLayout.slotSize == 0 && ReaderTableLayout.headerSize % ReaderTableLayout.slotSize == 0)
        // The checksum of a zero slot is not zero: a free slot never reads as used.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 60)) != 0)
        #expect([UInt8](repeating: 0, count: 64).withUnsafeBytes { ReaderSlot.decode($0) } == .free)
    }

    @Test func slotDecodingNeverTrapsAndRejectsDamage() {
        var rng = SystemRandomNumberGenerator()
        var valid = [UInt8](repeating: 0, count: 64)
        valid.withUnsafeMutableBytes { exampleSlot.encode(into: $0) }
        #expect(valid.withUnsafeBytes { ReaderSlot.decode($0) } == .valid(exampleSlot))
        for round in 0..<20_000 {
            var bytes = valid
            if round % 3 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes[Int.random(in: 0..<64, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            let decoded = bytes.withUnsafeBytes { ReaderSlot.decode($0) }
            if bytes != valid, case .valid = decoded { Issue.record("damaged slot accepted: \(bytes)") }
        }
        for round in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = bytes.withUnsafeBytes { ReaderTableHeader.decode($0, fileSize: UInt64(round)) }
        }
    }
}
