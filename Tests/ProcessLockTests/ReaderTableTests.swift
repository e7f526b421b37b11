import class Foundation.Thread
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The reader table within one process (each `ReaderTable` is its own handle, so two tables
/// in one process behave like two processes): spec/reader-table.md.
@Suite struct ReaderTableTests {
    @Test(arguments: FileSystemKind.allCases)
    func claimUpdateReleaseAndTheOldestReader(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? writer.close() }
        #expect(writer.slotCount == ReaderTableLayout.defaultSlotCount)
        #expect(store.contents(store.readersPath)?.count == 64 + 64 * 126)
        #expect(try writer.oldestReader() == nil)
        #expect(try writer.readPublished() == PublishedState(durableLogEnd: ReaderTableLayout.noBound, checkpointTransaction: 0, publishCount: 0))

        let first = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        let second = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        defer { try? first.close(); try? second.close() }
        #expect(try first.claimSlot(snapshot: snapshot(40, 0x2_0000_0018)) == 0)
        #expect(try second.claimSlot(snapshot: snapshot(50, 0x1_0000_0100)) == 1)
        let pid = UInt64(getpid())
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 40, logPosition: 0x1_0000_0100, liveReaders: 2, pid: pid, unreadableSlots: 0))

        try first.update(snapshot: snapshot(60, 0x3_0000_0018))
        #expect(try writer.oldestReader()?.transactionID == 50)
        guard case .live(let slot) = try writer.inspectSlots()[0] else {
            Issue.record("slot 0 is not live")
            return
        }
        #expect(slot.generation == 2)
        #expect(slot.process == ProcessIdentity.current)
        #expect(slot.snapshot == snapshot(60, 0x3_0000_0018))

        try second.release()
        #expect(second.claimedSlot == nil)
        #expect(try writer.inspectSlots()[1] == .free)
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 60, logPosition: 0x3_0000_0018, liveReaders: 1, pid: pid, unreadableSlots: 0))
        // A released reader may claim again; the lowest free slot is taken.
        #expect(try second.claimSlot(snapshot: snapshot(70)) == 1)
        try first.close()
        #expect(try writer.oldestReader()?.transactionID == 70)
        #expect(try writer.inspectSlots()[0] == .free)
        #expect(storageError { try first.update(snapshot: snapshot(1)) } == .closed)
    }

    @Test func rolesAreChecked() throws {
        let store = try StoreDirectory(.memory)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        if case .invalidArgument? = storageError({ try writer.claimSlot(snapshot: snapshot(1)) }) {} else { Issue.record("writer claimed") }
        if case .invalidArgument? = storageError({ try reader.publish(durableEnd: 1, checkpointTransaction: 1) }) {} else { Issue.record("reader published") }
        if case .invalidArgument? = storageError({ try reader.update(snapshot: snapshot(1)) }) {} else { Issue.record("update without claim") }
        try reader.claimSlot(snapshot: snapshot(1))
        if case .invalidArgument? = storageError({ try reader.claimSlot(snapshot: snapshot(2)) }) {} else { Issue.record("claimed twice") }
        try reader.release()
        try reader.release()   // nothing to release: no error
        if case .invalidArgument? = storageError({ _ = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 0) }) {} else { Issue.record("slot count 0") }
    }

    /// A reader whose handle goes away without releasing (as when its process dies) leaves a
    /// stale slot: not counted, and cleared by the writer.
    @Test(arguments: FileSystemKind.allCases)
    func aSlotWhoseHolderIsGoneIsStale(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? writer.close() }
        do {
            let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
            try reader.claimSlot(snapshot: snapshot(7))
            #expect(try writer.oldestReader()?.liveReaders == 1)
        }   // deinit: the handle closes, the slot keeps its bytes
        guard case .stale(let content) = try writer.inspectSlots()[0] else {
            Issue.record("slot 0 is not stale")
            return
        }
        #expect(content?.snapshot == snapshot(7))
        #expect(try writer.oldestReader() == nil)
        #expect(try writer.clearStaleSlots() == 1)
        #expect(try writer.clearStaleSlots() == 0)
        #expect(try writer.inspectSlots().allSatisfy { $0 == .free })
    }

    /// A live slot whose bytes fail the checksum counts as the oldest possible reader; a stale
    /// one with bad bytes is just stale.
    @Test(arguments: FileSystemKind.allCases)
    func tornSlots(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, patience: impatient)
        defer { try? writer.close() }
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        let healthy = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        defer { try? healthy.close() }
        #expect(try reader.claimSlot(snapshot: snapshot(40)) == 0)
        #expect(try healthy.claimSlot(snapshot: snapshot(50)) == 1)

        // Flip a byte of slot 0 (its snapshot transaction) behind the reader's back.
        let damage = try store.fs.open(store.readersPath, mode: .existing)
        defer { try? damage.close() }
        let offset = ReaderTableLayout.slotOffset(0) + UInt64(ReaderSlotLayout.snapshotTransaction)
        let byte = try damage.readBytes(count: 1, at: offset)
        try damage.write([byte[0] ^ 0x20], at: offset)
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 0, logPosition: 0, liveReaders: 2, pid: nil, unreadableSlots: 1))
        #expect(try writer.inspectSlots()[0] == .liveUnreadable)
        #expect(try writer.clearStaleSlots() == 0)   // live: untouched

        // The reader rewrites its slot: readable again.
        try reader.update(snapshot: snapshot(45))
        #expect(try writer.oldestReader()?.transactionID == 45)

        // Garbage in a slot nobody holds is stale, whatever it says, and cleared.
        try reader.close()
        try damage.write([UInt8](repeating: 0xAB, count: 64), at: ReaderTableLayout.slotOffset(0))
        #expect(try writer.inspectSlots()[0] == .stale(nil))
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 50, logPosition: 0x1_0000_0018, liveReaders: 1, pid: UInt64(getpid()), unreadableSlots: 0))
        #expect(try writer.clearStaleSlots() == 1)
        #expect(try writer.inspectSlots()[0] == .free)
    }

    /// A slot read while its reader rewrites it fails the checksum once; the writer re-reads
    /// it instead of counting it as unreadable.
    @Test func aSlotCaughtMidWriteIsReadAgain() throws {
        let base = MemoryFileSystem()
        let flaky = FlakySlotReads(base: base)
        try base.createDirectory("/store")
        let writer = try ReaderTable.open(fileSystem: flaky, directory: "/store", role: .writer)
        let reader = try ReaderTable.open(fileSystem: base, directory: "/store", role: .reader)
        try reader.claimSlot(snapshot: snapshot(33))
        flaky.tearNextSlotReads(1)
        #expect(try writer.oldestReader() == OldestReader(
            transactionID: 33, logPosition: 0x1_0000_0018, liveReaders: 1, pid: UInt64(getpid()), unreadableSlots: 0))
        #expect(flaky.tornReads == 1)
        // Torn on every read: the oldest possible reader.
        flaky.tearNextSlotReads(100)
        #expect(try writer.oldestReader()?.unreadableSlots == 1)
        try reader.close()
        try writer.close()
    }

    @Test func aFullTableIsATypedError() throws {
        let store = try StoreDirectory(.memory)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 3)
        defer { try? writer.close() }
        var readers: [ReaderTable] = []
        for transaction in 1...3 {
            let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
            #expect(reader.slotCount == 3)
            try reader.claimSlot(snapshot: snapshot(UInt64(transaction)))
            readers.append(reader)
        }
        let late = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        let error = storageError { try late.claimSlot(snapshot: snapshot(9)) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("is full: all 3 slots belong to live readers"))
        if case .limitExceeded? = error {} else { Issue.record("expected limitExceeded, got \(String(describing: error))") }
        #expect(late.claimedSlot == nil)
        try readers[1].close()
        #expect(try late.claimSlot(snapshot: snapshot(9)) == 1)
        #expect(try writer.oldestReader()?.liveReaders == 3)
    }

    /// Whatever shape the file is in, the first process alone with it rebuilds it.
    @Test(arguments: FileSystemKind.allCases)
    func garbageTruncatedOrForeignTablesAreRebuiltByWhoeverIsAlone(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        var rng = SystemRandomNumberGenerator()
        let valid: [UInt8] = try {
            let table = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 4)
            try table.publish(durableEnd: 99, checkpointTransaction: 5)
            try table.close()
            return try #require(store.contents(store.readersPath))
        }()
        var newer = valid
        newer[ReaderTableHeaderLayout.formatVersion] = 2
        let crc = CRC32C.checksum(newer[..<ReaderTableHeaderLayout.checksum])
        withUnsafeBytes(of: crc.littleEndian) { newer.replaceSubrange(0x3C..<0x40, with: $0) }
        let shapes: [(String, [UInt8])] = [
            ("empty", []), ("short header", Array(valid.prefix(40))), ("header only", Array(valid.prefix(64))),
            ("cut slot area", Array(valid.prefix(64 + 64 * 3 + 10))),
            ("garbage", (0..<8192).map { _ in UInt8.random(in: 0...255, using: &rng) }),
            ("flipped header byte", { var b = valid; b[0x18] ^= 1; return b }()),
            ("newer version", newer),
        ]
        for (role, (name, bytes)) in [ReaderTable.Role.writer, .reader].flatMap({ role in shapes.map { (role, $0) } }) {
            try store.setContents(store.readersPath, bytes)
            let table = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: role, slotCount: 4)
            #expect(table.slotCount == 4, "\(name)")
            #expect(try table.readPublished().hasBound == false, "\(name): a rebuilt table has no bound")
            #expect(store.contents(store.readersPath)?.count == 64 + 4 * 64, "\(name)")
            #expect(try table.oldestReader() == nil, "\(name)")
            try table.close()
        }
        try store.fs.removeFile(store.readersPath)
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        #expect(reader.slotCount == ReaderTableLayout.defaultSlotCount, "a reader builds a missing table with the default size")
        try reader.close()
    }

    /// A valid table is kept (published values too); stale slots are cleared at open.
    @Test func aValidTableIsKeptAndItsStaleSlotsCleared() throws {
        let store = try StoreDirectory(.memory)
        do {
            let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 8)
            try writer.publish(durableEnd: 0x2_0000_0100, checkpointTransaction: 17)
            let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
            try reader.claimSlot(snapshot: snapshot(17))
            _ = (writer, reader)   // both die without closing
        }
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        #expect(reader.slotCount == 8)
        #expect(try reader.readPublished() == PublishedState(durableLogEnd: 0x2_0000_0100, checkpointTransaction: 17, publishCount: 1))
        #expect(try reader.inspectSlots().allSatisfy { $0 == .free })
        // A writer alone with a table of another size rebuilds it; not alone, it keeps it.
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 16)
        #expect(writer.slotCount == 8)
        try writer.close()
        try reader.close()
        let alone = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 16)
        #expect(alone.slotCount == 16)
        try alone.close()
    }

    /// While other processes have the table open, nobody rebuilds it: an invalid header is an
    /// error (after re-reads), a process building it makes others wait, then fail.
    @Test(arguments: [FileSystemKind.memory, .posix])
    func aTableInUseIsNeverRebuilt(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let user = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader, slotCount: 4)
        try user.claimSlot(snapshot: snapshot(3))
        let damage = try store.fs.open(store.readersPath, mode: .existing)
        defer { try? damage.close() }
        try damage.write([0x00], at: 0)   // breaks the magic
        for role in [ReaderTable.Role.writer, .reader] {
            let error = storageError {
                _ = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: role, patience: impatient)
            }
            guard case let .corrupted(file, offset, reason)? = error else {
                Issue.record("expected corrupted, got \(String(describing: error))")
                continue
            }
            #expect(file == store.readersPath && offset == 0)
            #expect(reason.contains("while other processes have it open"))
        }
        try user.update(snapshot: snapshot(4))   // its own slot still works
        // The last other user closes while an open waits (within its patience) to be alone:
        // the open rebuilds the table instead of failing.
        Thread.detachNewThread { usleep(100_000); try? user.close() }
        let rebuilt = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer, slotCount: 4)
        #expect(try rebuilt.readPublished().publishCount == 0)
        try rebuilt.close()

        // Someone holds the guard exclusively (building): others wait, then give up.
        try damage.write([0x53], at: 0)
        // A process another test spawns meanwhile shares this process's descriptions from its
        // fork to its exec (O_CLOEXEC closes them only then), and with them the guard lock the
        // closed tables held: wait out that window.
        var locked = try damage.tryLock(0..<1, exclusive: true)
        for _ in 0..<200 where !locked {
            usleep(10_000)
            locked = try damage.tryLock(0..<1, exclusive: true)
        }
        #expect(locked)
        let error = storageError {
            _ = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader, patience: impatient)
        }
        if case .io(_, _, EAGAIN)? = error {} else { Issue.record("expected EAGAIN, got \(String(describing: error))") }
        try damage.unlock(0..<1)
        try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader).close()
    }

    @Test func aNewerTableInUseIsUnsupported() throws {
        let store = try StoreDirectory(.memory)
        let user = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader, slotCount: 4)
        defer { try? user.close() }
        var header = try #require(store.contents(store.readersPath)).prefix(64).map { $0 }
        header[ReaderTableHeaderLayout.formatVersion] = 2
        let crc = CRC32C.checksum(header[..<ReaderTableHeaderLayout.checksum])
        withUnsafeBytes(of: crc.littleEndian) { header.replaceSubrange(0x3C..<0x40, with: $0) }
        let damage = try store.fs.open(store.readersPath, mode: .existing)
        try damage.write(header, at: 0)
        try damage.close()
        let error = storageError { _ = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader, patience: impatient) }
        #expect(error == .unsupportedVersion(file: store.readersPath, found: 2, supported: 1))
    }

    @Test(arguments: FileSystemKind.allCases)
    func publishedValuesNeverGoBackwards(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let writer = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader)
        defer { try? writer.close(); try? reader.close() }
        try writer.publish(durableEnd: 0x1_0000_0200, checkpointTransaction: 10)
        #expect(try reader.readPublished() == PublishedState(durableLogEnd: 0x1_0000_0200, checkpointTransaction: 10, publishCount: 1))
        try writer.publish(durableEnd: 0x1_0000_0100, checkpointTransaction: 12)
        #expect(try reader.readPublished() == PublishedState(durableLogEnd: 0x1_0000_0200, checkpointTransaction: 12, publishCount: 2))
        try writer.publish(durableEnd: 0x2_0000_0018, checkpointTransaction: 11)
        #expect(try reader.readPublished() == PublishedState(durableLogEnd: 0x2_0000_0018, checkpointTransaction: 12, publishCount: 3))
        // A writer reopening a valid table starts from what it finds, then publishes its own.
        try writer.close()
        let next = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .writer)
        defer { try? next.close() }
        #expect(try next.readPublished().publishCount == 3)
        try next.publish(durableEnd: 0x2_0000_0018, checkpointTransaction: 12)
        #expect(try reader.readPublished().publishCount == 4)
    }

    /// The LMDB rule: a snapshot is registered only once it is still the newest after the
    /// slot was written.
    @Test func publishSnapshotRetriesUntilTheNewestIsStable() throws {
        let store = try StoreDirectory(.memory)
        let reader = try ReaderTable.open(fileSystem: store.fs, directory: store.path, role: .reader, patience: impatient)
        defer { try? reader.close() }
        // A checkpoint completes between the first read and the re-check.
        var answers = [snapshot(5), snapshot(6), snapshot(6), snapshot(6)]
        var reads = 0
        let registered = try reader.publishSnapshot {
            reads += 1
            return answers.removeFirst()
        }
        #expect(registered == snapshot(6))
        #expect(reads == 4)
        #expect(reader.currentSnapshot == snapshot(6))
        #expect(reader.claimedSlot == 0)
        // Refreshing updates the same slot.
        #expect(try reader.publishSnapshot { snapshot(8) } == snapshot(8))
        #expect(reader.claimedSlot == 0)
        // A newest state that changes every time gives up, typed.
        var next: UInt64 = 100
        let error = storageError {
            _ = try reader.publishSnapshot {
                next += 1
                return snapshot(next)
            }
        }
        if case .limitExceeded? = error {} else { Issue.record("expected limitExceeded, got \(String(describing: error))") }
    }
}

/// A file system over a `MemoryFileSystem` whose handles can return a torn copy of the
/// reader table's slot area on the next `n` reads (as a read racing a slot write would).
final class FlakySlotReads: FileSystem, @unchecked Sendable {
    let base: MemoryFileSystem
    private let state = Lock((tearsLeft: 0, torn: 0))

    init(base: MemoryFileSystem) { self.base = base }

    func tearNextSlotReads(_ count: Int) { state.withLock { $0.tearsLeft = count } }
    var tornReads: Int { state.withLock { $0.torn } }

    func open(_ path: String, mode: OpenMode) throws -> any FileHandle { Handle(try base.open(path, mode: mode), owner: self) }
    func fileExists(_ path: String) -> Bool { base.fileExists(path) }
    func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws { try base.rename(source, to: destination) }
    func removeFile(_ path: String) throws { try base.removeFile(path) }
    func syncDirectory(_ directory: String) throws { try base.syncDirectory(directory) }

    final class Handle: FileHandle, @unchecked Sendable {
        let inner: any FileHandle
        let owner: FlakySlotReads
        init(_ inner: any FileHandle, owner: FlakySlotReads) {
            self.inner = inner
            self.owner = owner
        }
        var path: String { inner.path }
        func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
            let n = try inner.read(into: buffer, at: offset)
            let tear = offset >= 64 && owner.state.withLock { state -> Bool in
                guard state.tearsLeft > 0 else { return false }
                state.tearsLeft -= 1
                state.torn += 1
                return true
            }
            if tear && n > 0x10 { buffer[0x10] ^= 0x01 }   // the first slot's transaction id
            return n
        }
        func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { try inner.write(bytes, at: offset) }
        func truncate(to size: UInt64) throws { try inner.truncate(to: size) }
        func syncData() throws { try inner.syncData() }
        func size() throws -> UInt64 { try inner.size() }
        func close() throws { try inner.close() }
        func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool { try inner.tryLock(range, exclusive: exclusive) }
        func unlock(_ range: Range<UInt64>) throws { try inner.unlock(range) }
        func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
            try inner.isLockedByOthers(range, exclusive: exclusive)
        }
    }
}
