import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing

/// Crash-sweeps the lock file and the reader table like every other file
/// (spec/reader-table.md, "Crash analysis"): a workload of a writer and two readers runs on
/// the crash simulator with the power cut after each of its I/O steps, in every crash mode
/// and every namespace mode; then a writer must open (lock and table), see no live reader,
/// and the table must work — and so again after a second crash during that open.
@Suite struct ReaderTableCrashTests {
    static let directory = "/store"

    /// Everything the workload's "processes" hold, so the power cut leaves them in place (as
    /// processes that die with the machine).
    final class Actors {
        var lock: StoreLock?
        var tables: [ReaderTable] = []
    }

    /// Creation, claims, updates, releases, publishes, a scan and a stale sweep.
    static func workload(_ fs: any FileSystem, _ actors: Actors) throws {
        actors.lock = try StoreLock.acquire(fileSystem: fs, directory: directory, label: "sweep writer")
        let writer = try ReaderTable.open(fileSystem: fs, directory: directory, role: .writer, slotCount: 6)
        actors.tables.append(writer)
        try writer.publish(durableEnd: 0x1_0000_0018, checkpointTransaction: 1)
        let first = try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader)
        actors.tables.append(first)
        try first.claimSlot(snapshot: snapshot(1))
        let second = try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader)
        actors.tables.append(second)
        try second.claimSlot(snapshot: snapshot(2))
        try writer.publish(durableEnd: 0x1_0000_0100, checkpointTransaction: 2)
        try first.update(snapshot: snapshot(3))
        _ = try writer.oldestReader()
        try second.release()
        try writer.publish(durableEnd: 0x1_0000_0200, checkpointTransaction: 3)
        try second.claimSlot(snapshot: snapshot(3))
        try first.close()
        _ = try writer.clearStaleSlots()
        try writer.publish(durableEnd: 0x2_0000_0018, checkpointTransaction: 4)
        try actors.lock?.release()
        try writer.close()
    }

    /// What must hold after any crash: a writer opens, sees no reader, and the table works.
    static func checkWriterOpens(_ fs: any FileSystem) throws {
        let lock = try StoreLock.acquire(fileSystem: fs, directory: directory)
        defer { try? lock.release() }
        let writer = try ReaderTable.open(fileSystem: fs, directory: directory, role: .writer, slotCount: 6)
        defer { try? writer.close() }
        #expect(writer.slotCount == 6)
        #expect(try writer.oldestReader() == nil)
        #expect(try writer.inspectSlots().allSatisfy { $0 == .free })
        #expect(try StoreLock.isWriterAlive(fileSystem: fs, directory: directory))
        try writer.publish(durableEnd: 0x3_0000_0018, checkpointTransaction: 9)
        let reader = try ReaderTable.open(fileSystem: fs, directory: directory, role: .reader)
        defer { try? reader.close() }
        #expect(try reader.claimSlot(snapshot: snapshot(9)) == 0)
        #expect(try writer.oldestReader()?.transactionID == 9)
        #expect(try reader.readPublished().durableLogEnd == 0x3_0000_0018)
        #expect(storageError { _ = try StoreLock.acquire(fileSystem: fs, directory: directory) } != nil)
    }

    static func freshFileSystem(seed: UInt64) throws -> CrashSimulatingFileSystem {
        let fs = CrashSimulatingFileSystem(seed: seed)
        try fs.createDirectory(directory)
        return fs
    }

    @Test func theWorkloadRunsCleanly() throws {
        let fs = try Self.freshFileSystem(seed: 1)
        try Self.workload(fs, Actors())
        #expect(fs.stepCount > 12)
        #expect(fs.heldLockCount == 0)
        try Self.checkWriterOpens(fs)
    }

    @Test(arguments: CrashMode.allCases)
    func crashAtEveryStep(mode: CrashMode) throws {
        let total = try {
            let fs = try Self.freshFileSystem(seed: 1)
            let before = fs.stepCount
            try Self.workload(fs, Actors())
            return fs.stepCount - before
        }()
        var cases = 0
        for point in 0...total {
            for namespace in NamespaceCrashMode.allCases {
                let seed = UInt64(point * 31 + 7)
                let fs = try Self.freshFileSystem(seed: seed)
                let actors = Actors()
                fs.scheduleCrash(afterSteps: point)
                do {
                    try Self.workload(fs, actors)
                } catch StorageError.io(_, _, let code) where code == 5 {   // EIO: the power is gone
                }
                fs.crash(mode: mode, namespace: namespace)
                #expect(fs.heldLockCount == 0)
                let replay = "point \(point) of \(total), mode \(mode), namespace \(namespace), seed \(seed)"
                do {
                    try Self.checkWriterOpens(fs)
                } catch {
                    Issue.record("writer open after the crash failed: \(error) — \(replay)")
                }
                withExtendedLifetime(actors) {}
                cases += 1
            }
        }
        #expect(cases == (total + 1) * NamespaceCrashMode.allCases.count)
    }

    /// A crash during the writer's open after a crash (recovery crashing) changes nothing.
    @Test func crashDuringTheReopen() throws {
        for point in stride(from: 0, through: 20, by: 2) {
            for second in 0..<6 {
                let fs = try Self.freshFileSystem(seed: UInt64(point * 100 + second))
                let actors = Actors()
                fs.scheduleCrash(afterSteps: point)
                do { try Self.workload(fs, actors) } catch StorageError.io(_, _, let code) where code == 5 {}
                fs.crash(mode: .mixed, namespace: .keepPrefix)
                fs.scheduleCrash(afterSteps: second)
                do { try Self.checkWriterOpens(fs) } catch StorageError.io(_, _, let code) where code == 5 {}
                fs.crash(mode: .mixed, namespace: .keepPrefix)
                do {
                    try Self.checkWriterOpens(fs)
                } catch {
                    Issue.record("writer open after two crashes failed: \(error) — first at \(point), second at \(second)")
                }
                withExtendedLifetime(actors) {}
            }
        }
    }
}
