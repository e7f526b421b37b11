#if canImport(Glibc)
import Glibc
#endif
import ScrollbackFormat
import ScrollbackIO
import Testing

/// The byte-range lock contract of `FileHandle` ("Byte-range locks": open-file-description
/// semantics), run against all three file systems, so the simulated ones cannot drift from
/// what Linux does.
@Suite struct FileLockTests {
    enum Kind: String, CaseIterable, CustomStringConvertible {
        case posix, memory, crashSimulating
        var description: String { rawValue }
    }

    /// A file system of `kind` and a directory in it (kept alive by `keep`).
    struct Setup {
        let fs: any FileSystem
        let directory: String
        let keep: AnyObject?

        init(_ kind: Kind) throws {
            switch kind {
            case .posix:
                let temporary = try TemporaryDirectory()
                fs = PosixFileSystem()
                directory = temporary.path
                keep = temporary
            case .memory:
                fs = MemoryFileSystem()
                directory = "/db"
                keep = nil
            case .crashSimulating:
                fs = CrashSimulatingFileSystem(seed: 1)
                directory = "/db"
                keep = nil
            }
            try fs.createDirectory(directory)
        }

        func open(_ name: String = "lock", _ mode: OpenMode = .createIfMissing) throws -> any FileHandle {
            try fs.open(directory + "/" + name, mode: mode)
        }
    }

    let byte0: Range<UInt64> = 0..<1

    @Test(arguments: Kind.allCases)
    func twoHandlesInOneProcessConflict(kind: Kind) throws {
        let setup = try Setup(kind)
        let first = try setup.open()
        let second = try setup.open()
        defer { try? first.close(); try? second.close() }

        #expect(try first.tryLock(byte0, exclusive: true))
        #expect(try second.tryLock(byte0, exclusive: true) == false)
        #expect(try second.tryLock(byte0, exclusive: false) == false)
        #expect(try second.isLockedByOthers(byte0, exclusive: true))
        #expect(try second.isLockedByOthers(byte0, exclusive: false))
        // A handle never conflicts with itself.
        #expect(try first.isLockedByOthers(byte0, exclusive: true) == false)
        #expect(try first.tryLock(byte0, exclusive: true))

        // Converting to shared lets another handle share, not take it exclusively.
        #expect(try first.tryLock(byte0, exclusive: false))
        #expect(try second.tryLock(byte0, exclusive: false))
        #expect(try second.isLockedByOthers(byte0, exclusive: false) == false)
        #expect(try second.isLockedByOthers(byte0, exclusive: true))
        #expect(try first.tryLock(byte0, exclusive: true) == false)

        // Once the first lets go, the second converts its shared lock to exclusive.
        try first.unlock(byte0)
        #expect(try second.tryLock(byte0, exclusive: true))
        #expect(try first.tryLock(byte0, exclusive: false) == false)
    }

    @Test(arguments: Kind.allCases)
    func rangesConflictOnlyWhereTheyOverlap(kind: Kind) throws {
        let setup = try Setup(kind)
        let first = try setup.open()
        let second = try setup.open()
        defer { try? first.close(); try? second.close() }

        #expect(try first.tryLock(0..<10, exclusive: true))
        #expect(try second.tryLock(10..<11, exclusive: true))
        #expect(try second.tryLock(9..<10, exclusive: false) == false)
        // Unlocking the middle splits the held range.
        try first.unlock(3..<5)
        #expect(try second.tryLock(3..<5, exclusive: true))
        #expect(try second.tryLock(2..<3, exclusive: true) == false)
        #expect(try second.tryLock(5..<6, exclusive: true) == false)
        // Far past the end of the file is lockable too.
        #expect(try first.tryLock(1 << 40..<(1 << 40) + 1, exclusive: true))
        #expect(try second.isLockedByOthers(1 << 40..<(1 << 40) + 1, exclusive: false))
        // Unlocking what is not held is no error.
        try second.unlock(100..<200)
    }

    @Test(arguments: Kind.allCases)
    func closingReleasesOnlyThatHandlesLocks(kind: Kind) throws {
        let setup = try Setup(kind)
        let holder = try setup.open()
        let other = try setup.open()
        defer { try? other.close() }
        #expect(try holder.tryLock(byte0, exclusive: true))

        // Closing a third handle of the same file drops nothing (the classic fcntl trap).
        let third = try setup.open()
        try third.close()
        #expect(try other.tryLock(byte0, exclusive: true) == false)

        try holder.close()
        #expect(try other.isLockedByOthers(byte0, exclusive: true) == false)
        #expect(try other.tryLock(byte0, exclusive: true))
    }

    @Test(arguments: [Kind.memory, .crashSimulating])
    func deinitReleasesLocks(kind: Kind) throws {
        let setup = try Setup(kind)
        let other = try setup.open()
        defer { try? other.close() }
        do {
            let holder = try setup.open()
            #expect(try holder.tryLock(byte0, exclusive: true))
            #expect(try other.tryLock(byte0, exclusive: true) == false)
        }
        #expect(try other.tryLock(byte0, exclusive: true))
    }

    @Test(arguments: Kind.allCases)
    func rulesOnRangesAndAccessModes(kind: Kind) throws {
        let setup = try Setup(kind)
        let writable = try setup.open()
        defer { try? writable.close() }
        let readOnly = try setup.open("lock", .readOnly)
        defer { try? readOnly.close() }
        let einval = Int32(EINVAL)
        #expect(ioErrno { _ = try writable.tryLock(5..<5, exclusive: true) } == einval)
        #expect(ioErrno { _ = try writable.tryLock(0..<UInt64.max, exclusive: true) } == einval)
        #expect(ioErrno { try writable.unlock(3..<3) } == einval)
        #expect(ioErrno { _ = try writable.isLockedByOthers(0..<0, exclusive: true) } == einval)
        // Exclusive needs write access; shared locks and lock tests work read-only.
        #expect(ioErrno { _ = try readOnly.tryLock(byte0, exclusive: true) } == EBADF)
        #expect(try readOnly.tryLock(byte0, exclusive: false))
        #expect(try writable.tryLock(byte0, exclusive: true) == false)
        #expect(try writable.isLockedByOthers(byte0, exclusive: true))
        try readOnly.unlock(byte0)
        #expect(try readOnly.isLockedByOthers(byte0, exclusive: true) == false)
        #expect(try writable.tryLock(byte0, exclusive: true))
        #expect(try readOnly.isLockedByOthers(byte0, exclusive: true))
        // A closed handle refuses every lock call.
        try readOnly.close()
        #expect(ioErrno { _ = try readOnly.tryLock(byte0, exclusive: false) } == EBADF)
        #expect(ioErrno { _ = try readOnly.isLockedByOthers(byte0, exclusive: false) } == EBADF)
    }

    @Test(arguments: Kind.allCases)
    func locksFollowTheFileNotTheName(kind: Kind) throws {
        let setup = try Setup(kind)
        let holder = try setup.open("a")
        defer { try? holder.close() }
        #expect(try holder.tryLock(byte0, exclusive: true))
        try setup.fs.rename(setup.directory + "/a", to: setup.directory + "/b")
        let renamed = try setup.open("b", .existing)
        defer { try? renamed.close() }
        #expect(try renamed.tryLock(byte0, exclusive: true) == false)
        // A new file under the old name is another file: no locks.
        let fresh = try setup.open("a", .createNew)
        defer { try? fresh.close() }
        #expect(try fresh.tryLock(byte0, exclusive: true))
    }

    @Test func crashReleasesEveryLockAndStalesOldHandles() throws {
        let fs = CrashSimulatingFileSystem(seed: 7)
        try fs.createDirectory("/db")
        let holder = try fs.open("/db/lock", mode: .createIfMissing)
        try fs.syncDirectory("/db")
        #expect(try holder.tryLock(byte0, exclusive: true))
        #expect(try holder.tryLock(8..<9, exclusive: false))
        #expect(fs.heldLockCount == 2)

        fs.crash(mode: .keepAll)
        #expect(fs.heldLockCount == 0)
        // The old handle belongs to a dead process: every call fails, closing still works.
        #expect(ioErrno { _ = try holder.tryLock(byte0, exclusive: true) } == EIO)
        #expect(ioErrno { try holder.unlock(byte0) } == EIO)
        #expect(ioErrno { _ = try holder.isLockedByOthers(byte0, exclusive: true) } == EIO)
        let restarted = try fs.open("/db/lock", mode: .existing)
        #expect(try restarted.tryLock(byte0, exclusive: true))
        try holder.close()
        #expect(fs.heldLockCount == 1)   // closing the stale handle did not touch the new lock
        try restarted.close()
        #expect(fs.heldLockCount == 0)
    }

    @Test func lockingIsNotAStepAndFailsWithThePowerOff() throws {
        let fs = CrashSimulatingFileSystem(seed: 8)
        try fs.createDirectory("/db")
        let file = try fs.open("/db/lock", mode: .createIfMissing)
        let steps = fs.stepCount
        #expect(try file.tryLock(byte0, exclusive: true))
        _ = try file.isLockedByOthers(byte0, exclusive: true)
        try file.unlock(byte0)
        #expect(fs.stepCount == steps)
        fs.scheduleCrash(afterSteps: 0)
        #expect(ioErrno { _ = try file.tryLock(byte0, exclusive: true) } == EIO)
        fs.crash(mode: .dropAllUnsynced)
    }

    @Test func memoryFileSystemCountsHeldLocks() throws {
        let fs = MemoryFileSystem()
        let file = try fs.open("/lock", mode: .createIfMissing)
        #expect(try file.tryLock(0..<4, exclusive: true))
        try file.unlock(1..<2)
        #expect(fs.heldLockCount == 2)
        try file.close()
        #expect(fs.heldLockCount == 0)
    }

    /// A wrapper that does not forward the lock methods gets the protocol's defaults, which
    /// refuse loudly rather than pretend to lock.
    @Test func handlesWithoutLockSupportRefuse() throws {
        final class Plain: FileHandle, @unchecked Sendable {
            let path = "/plain"
            func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int { 0 }
            func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {}
            func truncate(to size: UInt64) throws {}
            func syncData() throws {}
            func size() throws -> UInt64 { 0 }
            func close() throws {}
        }
        let plain = Plain()
        #expect(ioErrno { _ = try plain.tryLock(byte0, exclusive: true) } == EOPNOTSUPP)
        #expect(ioErrno { try plain.unlock(byte0) } == EOPNOTSUPP)
        #expect(ioErrno { _ = try plain.isLockedByOthers(byte0, exclusive: true) } == EOPNOTSUPP)
    }
}
