#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat

/// How `FileSystem.open` treats an existing or missing file.
package enum OpenMode: Sendable, Equatable {
    /// Open an existing file; throw `.io(errno: ENOENT)` if it is missing.
    case existing
    /// Create the file if missing, open it if present.
    case createIfMissing
    /// Create the file; throw `.io(errno: EEXIST)` if it already exists.
    case createNew
    /// Open an existing file for reading only; writes throw `.io(errno: EBADF)`.
    case readOnly
}

/// All file-system access of the engine goes through this protocol (as LevelDB's `Env`),
/// so the in-memory and crash-simulating implementations can replace the real one.
///
/// Durability contract (spec/README.md, "What we assume of the disk"):
/// - `FileHandle.write` is durable only after a later `FileHandle.syncData()` on that file
///   returns; before that it may be lost, torn at 512-byte sectors, or reordered with
///   other unsynced writes.
/// - Creating, renaming and unlinking a file is durable only after `syncDirectory` on the
///   directory that holds it.
///
/// Errors: the engine throws only `StorageError`; every failure here throws `StorageError.io(path:operation:errno:)` with the POSIX
/// errno (the simulated file systems use the same errno values).
///
/// Thread-safety: implementations are safe to call from many threads at once. A single
/// `FileHandle` may be used concurrently for positional reads and writes.
package protocol FileSystem: AnyObject, Sendable {
    func open(_ path: String, mode: OpenMode) throws -> any FileHandle
    func fileExists(_ path: String) -> Bool
    /// Names (not paths) of the entries of a directory, sorted.
    func listDirectory(_ path: String) throws -> [String]
    /// Creates a directory (and its missing parents); no error if it exists.
    func createDirectory(_ path: String) throws
    /// Atomically replaces `destination` with `source` (POSIX rename semantics).
    func rename(_ source: String, to destination: String) throws
    func removeFile(_ path: String) throws
    /// Makes creations, renames and removals in `directory` durable.
    func syncDirectory(_ directory: String) throws
    /// Whether the engine may do I/O from its own background threads (`BackgroundWorker`).
    /// File systems that number their I/O steps for crash and fault sweeps say no: a
    /// background thread would make the numbering depend on scheduling, and a sweep could not
    /// replay a case. The engine then leaves that work to the commit path (or to an explicit
    /// call of the same step, which is how the sweeps cover it). Default: yes.
    var allowsBackgroundIO: Bool { get }
}

extension FileSystem {
    package var allowsBackgroundIO: Bool { true }
}

/// An open file. Positional I/O only; there is no file pointer.
package protocol FileHandle: AnyObject, Sendable {
    var path: String { get }
    /// Reads up to `buffer.count` bytes at `offset`; returns the number read, which is less
    /// than requested only at end of file. Retries `EINTR` and short reads internally.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int
    /// Writes all of `bytes` at `offset`, extending the file if needed. Retries `EINTR` and
    /// short writes internally.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
    func truncate(to size: UInt64) throws
    /// Makes the file at least `size` bytes long, the new bytes zero and their disk space
    /// allocated (`posix_fallocate`), so later writes inside it change neither the file's size
    /// nor its block map and an `fdatasync` after them has no metadata to commit. A file
    /// already that long is unchanged. Like a write, not durable until `syncData`. Wrappers
    /// must forward it (the default, used by the in-memory file systems, writes zeros).
    func allocate(upTo size: UInt64) throws
    /// Writes back what was written to `offset ..< offset + count` and waits for it to reach
    /// the device (`sync_file_range`), to pace a large write: the `syncData` after it then has
    /// little left to flush, and other files' syncs do not queue behind one burst. NOT a
    /// durability point (no metadata, no device cache flush): callers still `syncData`. The
    /// default does nothing, which is correct for every file system (simulated ones, wrappers).
    func writeBack(offset: UInt64, count: UInt64) throws
    /// `fdatasync`: makes every completed write of this file durable.
    func syncData() throws
    func size() throws -> UInt64
    /// Closes the handle; further calls throw. Closing does not sync. Closing releases every
    /// byte-range lock the handle holds (see "Byte-range locks" below).
    func close() throws

    // MARK: Byte-range locks
    //
    // Advisory, non-blocking byte-range locks with *open-file-description* semantics (Linux
    // `F_OFD_SETLK` / `F_OFD_GETLK`):
    // - A lock belongs to the handle that took it. Locks of two different handles conflict
    //   when their ranges overlap and at least one is exclusive — whether the handles are in
    //   two processes or in one (unlike classic `fcntl` locks, which never conflict within a
    //   process).
    // - A handle never conflicts with itself: locking a range it already holds converts the
    //   held range to the requested kind (atomically), and unlocking releases only its own.
    // - The locks of a handle are released when the handle is closed (or deinitialized) and,
    //   by the kernel, when the process dies — never by closing *another* handle of the same
    //   file (the classic `fcntl` trap). A crash of `CrashSimulatingFileSystem` releases every
    //   lock of the handles opened before it, as process death would.
    // - Locks concern files (inodes), not names: a lock survives a rename of its file, and a
    //   new file created under a removed file's name has no locks.
    // - Locks are advisory: they never stop a read or a write. They are not I/O steps (no
    //   durable state changes) and are never written to disk.
    // - Exclusive locks need a handle opened for writing, shared locks one opened for reading
    //   (otherwise EBADF). The range must be non-empty and end at or below `Int64.max`
    //   (otherwise EINVAL); it may lie past the end of the file.
    //
    // Wrappers of `FileHandle` must forward these three methods. The protocol's default
    // implementations throw `.io(errno: EOPNOTSUPP)`, so a wrapper that forgets to forward
    // fails loudly instead of silently granting a lock.

    /// Takes a lock on `range` without waiting: exclusive (a write lock) or shared (a read
    /// lock). Returns false, changing nothing, if a lock of another handle conflicts.
    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool
    /// Releases this handle's locks inside `range` (parts of held ranges outside it stay
    /// locked). Releasing a range that is not locked is not an error.
    func unlock(_ range: Range<UInt64>) throws
    /// True if another handle (in this process or another) holds a lock on part of `range`
    /// that would conflict with an `exclusive` (or, if false, a shared) lock taken through this
    /// handle — `F_OFD_GETLK`. Takes no lock. The answer can be stale by the time it returns.
    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool
}

extension FileHandle {
    package func writeBack(offset: UInt64, count: UInt64) throws {}

    package func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        throw StorageError.io(path: path, operation: "lock", errno: EOPNOTSUPP)
    }

    package func unlock(_ range: Range<UInt64>) throws {
        throw StorageError.io(path: path, operation: "unlock", errno: EOPNOTSUPP)
    }

    package func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        throw StorageError.io(path: path, operation: "lock test", errno: EOPNOTSUPP)
    }

    /// Checks a lock range against the rules above; throws `.io(errno: EINVAL)` if it breaks them.
    func validateLockRange(_ range: Range<UInt64>, operation: String) throws {
        if range.isEmpty || range.upperBound > UInt64(Int64.max) {
            throw StorageError.io(path: path, operation: operation, errno: EINVAL)
        }
    }
}

extension FileHandle {
    /// Reads exactly `buffer.count` bytes at `offset` or throws `.corrupted` describing the
    /// short read (the file ends early: a truncated file is damage, not an I/O error).
    package func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let n = try read(into: buffer, at: offset)
        if n != buffer.count {
            throw StorageError.corrupted(
                file: path, offset: offset + UInt64(n),
                reason: "file ends early: wanted \(buffer.count) bytes at \(offset), got \(n)")
        }
    }

    /// Reads `count` bytes at `offset` into a new array; shorter at end of file.
    package func readBytes(count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { (buffer) throws -> Int in
            try read(into: buffer, at: offset)
        }
        bytes.removeLast(count - n)
        return bytes
    }

    package func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { (buffer) throws in try write(buffer, at: offset) }
    }

    /// `allocate(upTo:)` as zeros written after the current end, in 64 KiB writes.
    package func allocate(upTo size: UInt64) throws {
        var end = try self.size()
        guard end < size else { return }
        let zeros = [UInt8](repeating: 0, count: 64 << 10)
        try zeros.withUnsafeBytes { buffer in
            while end < size {
                let n = Int(min(UInt64(buffer.count), size - end))
                try write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: end)
                end += UInt64(n)
            }
        }
    }
}

/// Path helpers (the engine only builds paths as `directory + "/" + name`).
package enum Path {
    package static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    package static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[path.startIndex..<slash])
    }

    package static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
