import class Foundation.Thread
import ScrollbackFormat
import ScrollbackIO
import ScrollbackStorage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The writer's store lock (spec/reader-table.md, "The lock file") within one process, on
/// all three file systems. Other processes: `MultiProcessLockTests`.
@Suite struct StoreLockTests {
    @Test(arguments: FileSystemKind.allCases)
    func secondAcquireInTheSameProcessIsRefusedNamingTheHolder(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let first = try StoreLock.acquire(fileSystem: store.fs, directory: store.path, label: "first opener")
        defer { try? first.release() }
        let error = storageError { _ = try StoreLock.acquire(fileSystem: store.fs, directory: store.path, label: "second") }
        guard case let .storeLocked(path, holder)? = error else {
            Issue.record("expected storeLocked, got \(String(describing: error))")
            return
        }
        #expect(path == store.path)
        let text = "\(error!)"
        #expect(text.hasPrefix("store \(store.path) is in use by another writer (pid \(getpid()), this process, first opener, since "))
        #expect(text.hasSuffix("Z); close it first or open read-only"), "\(text)")
        #expect(holder?.contains("pid \(getpid())") == true)
        #expect(first.isHeld)
    }

    /// A child forked by this process holds its open file descriptions, and so the store lock,
    /// until its exec: a store closed and reopened meanwhile waits for it instead of failing.
    /// (The child is played by a second descriptor of the lock's description, closed 100 ms
    /// after the release.)
    @Test func aLockLeftWithAForkedChildIsWaitedFor() throws {
        let store = try StoreDirectory(.posix)
        let first = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        let descriptor = try #require(openDescriptor(of: store.lockPath), "the lock file's descriptor")
        let child = dup(descriptor)
        #expect(child >= 0)
        try first.release()
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path), "the copy holds the lock")
        Thread.detachNewThread {
            usleep(100_000)
            close(child)
        }
        let second = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        // Held by a handle of this process: refused at once, no wait.
        let error = storageError { _ = try StoreLock.acquire(fileSystem: store.fs, directory: store.path) }
        if case .storeLocked? = error {} else { Issue.record("expected storeLocked, got \(String(describing: error))") }
        try second.release()
    }

    /// The descriptor of this process open on `path` (from /proc/self/fd), if any.
    private func openDescriptor(of path: String) -> Int32? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name) else { continue }
            var target = [CChar](repeating: 0, count: 4096)
            let count = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
            guard count > 0 else { continue }
            if String(decoding: target[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) == path { return fd }
        }
        return nil
    }

    @Test(arguments: [FileSystemKind.memory, .crashSimulating])
    func aRefusedAcquireWritesNothing(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let first = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        defer { try? first.release() }
        let before = store.contents(store.lockPath)
        let steps = (store.fs as? CrashSimulatingFileSystem)?.stepCount
        for _ in 0..<3 {
            #expect(storageError { _ = try StoreLock.acquire(fileSystem: store.fs, directory: store.path) } != nil)
        }
        #expect(store.contents(store.lockPath) == before)
        #expect((store.fs as? CrashSimulatingFileSystem)?.stepCount == steps, "a refused acquire made I/O steps")
        #expect(try store.fs.listDirectory(store.path) == [StoreLockLayout.fileName])
    }

    @Test(arguments: FileSystemKind.allCases)
    func releaseAndDeinitFreeTheLock(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path) == false)
        #expect(store.fs.fileExists(store.lockPath) == false, "isWriterAlive must not create the lock file")

        let first = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path))
        try first.release()
        try first.release()   // idempotent
        #expect(first.isHeld == false)
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path) == false)

        do {
            let second = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
            #expect(second.isHeld)
        }
        // `second` went away without release(): its deinit closed the handle.
        let third = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        try third.release()
    }

    @Test(arguments: FileSystemKind.allCases)
    func theHolderRecordRoundTrips(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let lock = try StoreLock.acquire(fileSystem: store.fs, directory: store.path, label: "scrollback exec")
        defer { try? lock.release() }
        let record = try #require(StoreLock.lastHolder(fileSystem: store.fs, directory: store.path))
        #expect(record == lock.holder)
        #expect(record.process == ProcessIdentity.current)
        #expect(record.label == "scrollback exec")
        #expect(abs(record.acquiredAt - ProcessIdentity.wallClockSeconds()) < 60)
        #expect(store.contents(store.lockPath)?.count == StoreLockLayout.recordSize(labelBytes: 15))
    }

    /// Whatever the lock file holds, a free lock is acquired; a held one is refused, and its
    /// holder is named only when the record is valid and names a running process.
    @Test(arguments: FileSystemKind.allCases)
    func missingEmptyTruncatedOrGarbageLockFilesNeverPreventAcquiring(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let valid = StoreLockHolder(process: .current, acquiredAt: 1_795_990_203, label: "old holder").encoded()
        var rng = SystemRandomNumberGenerator()
        let contents: [[UInt8]] = [
            [], [0], Array(valid.prefix(20)), Array(valid.dropLast()), valid + [1, 2, 3],
            (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) },
            [UInt8](repeating: 0xFF, count: 4096),
        ]
        for bytes in contents {
            try store.setContents(store.lockPath, bytes)
            let lock = try StoreLock.acquire(fileSystem: store.fs, directory: store.path, label: "new holder")
            #expect(StoreLock.lastHolder(fileSystem: store.fs, directory: store.path)?.label == "new holder")
            try lock.release()
        }
        try store.fs.removeFile(store.lockPath)
        let lock = try StoreLock.acquire(fileSystem: store.fs, directory: store.path)
        try lock.release()
    }

    /// A record left by an earlier holder whose process is gone does not name the current
    /// holder (who has not written its record yet, say): the message says only "in use".
    @Test(arguments: FileSystemKind.allCases)
    func aRecordOfAProcessThatIsGoneIsNotNamed(kind: FileSystemKind) throws {
        let store = try StoreDirectory(kind)
        let gone = StoreLockHolder(
            process: ProcessIdentity(pid: UInt64(Int32.max), startTime: 12345), acquiredAt: 0, label: "ghost")
        try store.setContents(store.lockPath, gone.encoded())
        let holder = try store.fs.open(store.lockPath, mode: .existing)
        defer { try? holder.close() }
        #expect(try holder.tryLock(0..<1, exclusive: true))
        let error = storageError { _ = try StoreLock.acquire(fileSystem: store.fs, directory: store.path) }
        #expect(error == .storeLocked(path: store.path, holder: nil))
        #expect("\(error!)" == "store \(store.path) is in use by another writer; close it first or open read-only")
        #expect(store.contents(store.lockPath) == gone.encoded())
        #expect(try StoreLock.isWriterAlive(fileSystem: store.fs, directory: store.path))
    }

    @Test func recordDecodingNeverTrapsOnGarbage() {
        var rng = SystemRandomNumberGenerator()
        let valid = StoreLockHolder(process: .current, acquiredAt: -5, label: "x").encoded()
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = valid
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            #expect(StoreLockHolder.decode(bytes) == nil || bytes == valid)
        }
        #expect(StoreLockHolder.decode(valid)?.acquiredAt == -5)
    }

    @Test func longLabelsAreCutAtACharacterBoundary() {
        let label = String(repeating: "é", count: 150)   // 300 bytes of UTF-8
        let record = StoreLockHolder(process: .current, acquiredAt: 0, label: label).encoded()
        #expect(record.count == StoreLockLayout.recordSize(labelBytes: 200))
        #expect(StoreLockHolder.decode(record)?.label == String(repeating: "é", count: 100))
        let odd = "a" + String(repeating: "é", count: 150)   // 199 bytes fit, the next "é" does not
        #expect(StoreLockHolder.decode(StoreLockHolder(process: .current, acquiredAt: 0, label: odd).encoded())?.label
            == "a" + String(repeating: "é", count: 99))
    }

    @Test func utcTimes() {
        #expect(UTCTime.iso8601(secondsSinceEpoch: 0) == "1970-01-01T00:00:00Z")
        #expect(UTCTime.iso8601(secondsSinceEpoch: 1_795_990_203) == "2026-11-29T22:10:03Z")
        #expect(UTCTime.iso8601(secondsSinceEpoch: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(UTCTime.iso8601(secondsSinceEpoch: -1) == "1969-12-31T23:59:59Z")
        #expect(UTCTime.iso8601(secondsSinceEpoch: 253_402_300_799) == "9999-12-31T23:59:59Z")
        #expect(UTCTime.iso8601(secondsSinceEpoch: .min) == "\(Int64.min) s after 1970")
        #expect(UTCTime.iso8601(secondsSinceEpoch: .max) == "\(Int64.max) s after 1970")
    }

    @Test func processIdentity() {
        let me = ProcessIdentity.current
        #expect(me.pid == UInt64(getpid()))
        #expect(me.startTime > 0)
        #expect(me.isRunning)
        #expect(ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isRunning == false)
        #expect(ProcessIdentity(pid: UInt64(Int32.max), startTime: 0).isRunning == false)
        #expect(ProcessIdentity(pid: 0, startTime: 0).isRunning == false)
        let line = Array("4242 (odd) name) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 987654 1000 ".utf8)
        #expect(ProcessIdentity.parseStartTime(line) == 987654)
        #expect(ProcessIdentity.parseStartTime(Array("4242 (x) S 1 2".utf8)) == nil)
        #expect(ProcessIdentity.parseStartTime(Array("no parenthesis".utf8)) == nil)
        #expect(ProcessIdentity.parseStartTime(Array("1 (x) S 1 4 4 0 -1 4 1 2 3 4 5 6 7 8 20 0 1 0 99999999999999999999999 1".utf8)) == nil)
    }
}
