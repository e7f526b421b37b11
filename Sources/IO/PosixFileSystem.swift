#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CWriteback
import ScrollbackFormat
import Synchronization

/// The real file system, over POSIX system calls (Glibc).
///
/// - Every descriptor is opened with `O_CLOEXEC`.
/// - `FileHandle.read`/`write` use `pread`/`pwrite` through `Syscall`, which retries `EINTR`
///   and loops over short transfers; `syncData` is `fdatasync`.
/// - Byte-range locks are Linux open-file-description locks (`F_OFD_SETLK`, `F_OFD_GETLK`):
///   each handle is its own open file description, so two handles conflict even in one
///   process, and a handle's locks go away when it is closed or the process dies.
/// - `syncDirectory` opens the directory `O_RDONLY | O_DIRECTORY`, `fsync`s it and closes it.
/// - `createDirectory` behaves like `mkdir -p`; `listDirectory` returns sorted names without
///   `.` and `..`.
/// - Every failure throws `StorageError.io(path:operation:errno:)` with the real errno.
///
/// Thread-safety: stateless; safe from any thread. Handles are safe for concurrent positional
/// reads and writes (`pread`/`pwrite` do not share a file pointer).
package final class PosixFileSystem: FileSystem {
    /// Permission bits of created files and directories (before the umask).
    static let fileMode: mode_t = 0o644
    static let directoryMode: mode_t = 0o755

    package init() {}

    package func open(_ path: String, mode: OpenMode) throws -> any FileHandle {
        var flags: Int32 = O_CLOEXEC
        switch mode {
        case .existing: flags |= O_RDWR
        case .createIfMissing: flags |= O_RDWR | O_CREAT
        case .createNew: flags |= O_RDWR | O_CREAT | O_EXCL
        case .readOnly: flags |= O_RDONLY
        }
        let fd = try Syscall.retrying("open", path: path) { Glibc.open(path, flags, Self.fileMode) }
        return PosixFileHandle(fd: fd, path: path)
    }

    package func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    package func listDirectory(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            throw StorageError.io(path: path, operation: "opendir", errno: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                let error = errno
                if error != 0 { throw StorageError.io(path: path, operation: "readdir", errno: error) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                // d_name is NUL-terminated within its fixed-size array.
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    package func createDirectory(_ path: String) throws {
        if mkdir(path, Self.directoryMode) == 0 { return }
        switch errno {
        case EEXIST:
            if isDirectory(path) { return }
            throw StorageError.io(path: path, operation: "mkdir", errno: EEXIST)
        case ENOENT:
            let parent = Path.directory(of: path)
            // "." and "/" always exist; reaching them with ENOENT means something else is wrong.
            guard parent != path, parent != ".", parent != "/" else {
                throw StorageError.io(path: path, operation: "mkdir", errno: ENOENT)
            }
            try createDirectory(parent)
            if mkdir(path, Self.directoryMode) == 0 { return }
            let error = errno
            if error == EEXIST && isDirectory(path) { return }
            throw StorageError.io(path: path, operation: "mkdir", errno: error)
        case let error:
            throw StorageError.io(path: path, operation: "mkdir", errno: error)
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    package func rename(_ source: String, to destination: String) throws {
        if Glibc.rename(source, destination) != 0 {
            throw StorageError.io(path: source, operation: "rename to \(destination)", errno: errno)
        }
    }

    package func removeFile(_ path: String) throws {
        if unlink(path) != 0 {
            throw StorageError.io(path: path, operation: "unlink", errno: errno)
        }
    }

    package func syncDirectory(_ directory: String) throws {
        let fd = try Syscall.retrying("open(dir)", path: directory) {
            Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { _ = Glibc.close(fd) }
        _ = try Syscall.retrying("fsync(dir)", path: directory) { fsync(fd) }
    }
}

/// An open POSIX file descriptor.
///
/// Thread-safety: positional reads and writes may run concurrently from many threads.
/// `close()` must not race with other calls on the same handle (the descriptor number could be
/// reused by the kernel); after `close()` every call throws `EBADF`.
final class PosixFileHandle: FileHandle {
    let path: String
    /// The descriptor, or -1 once closed.
    private let descriptor: Atomic<Int32>

    init(fd: Int32, path: String) {
        self.path = path
        self.descriptor = Atomic(fd)
    }

    deinit {
        let fd = descriptor.load(ordering: .relaxed)
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    @inline(__always)
    private func fd(_ operation: String) throws -> Int32 {
        let fd = descriptor.load(ordering: .acquiring)
        if fd < 0 { throw StorageError.io(path: path, operation: operation, errno: EBADF) }
        return fd
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try Syscall.preadFully(try fd("pread"), buffer, at: offset, path: path)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        try Syscall.pwriteFully(try fd("pwrite"), bytes, at: offset, path: path)
    }

    func allocate(upTo size: UInt64) throws {
        let fd = try fd("posix_fallocate")
        guard try self.size() < size else { return }
        let length = try Syscall.fileOffset(size, count: 0, operation: "posix_fallocate", path: path)
        // posix_fallocate returns the error number (it does not set errno); glibc writes
        // zeros itself where the file system has no fallocate.
        var code: Int32
        repeat { code = posix_fallocate(fd, 0, length) } while code == EINTR
        if code != 0 { throw StorageError.io(path: path, operation: "posix_fallocate", errno: code) }
    }

    func truncate(to size: UInt64) throws {
        let fd = try fd("ftruncate")
        let length = try Syscall.fileOffset(size, count: 0, operation: "ftruncate", path: path)
        _ = try Syscall.retrying("ftruncate", path: path) { ftruncate(fd, length) }
    }

    func writeBack(offset: UInt64, count: UInt64) throws {
        let fd = try fd("sync_file_range")
        guard count > 0, offset <= UInt64(Int.max), count <= UInt64(Int.max) - offset else { return }
        let code = scrollback_write_back(fd, Int(offset), Int(count))
        // Pacing only: where the call does not exist (ENOSYS) the later sync does the work.
        if code != 0, code != ENOSYS {
            throw StorageError.io(path: path, operation: "sync_file_range", errno: code)
        }
    }

    func syncData() throws {
        let fd = try fd("fdatasync")
        _ = try Syscall.retrying("fdatasync", path: path) { fdatasync(fd) }
    }

    func size() throws -> UInt64 {
        let fd = try fd("fstat")
        var info = stat()
        _ = try Syscall.retrying("fstat", path: path) { fstat(fd, &info) }
        return UInt64(info.st_size)
    }

    func tryLock(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        let type = exclusive ? F_WRLCK : F_RDLCK
        return try Syscall.setLock(try fd("lock"), type: Int32(type), range, operation: "lock", path: path)
    }

    func unlock(_ range: Range<UInt64>) throws {
        _ = try Syscall.setLock(try fd("unlock"), type: Int32(F_UNLCK), range, operation: "unlock", path: path)
    }

    func isLockedByOthers(_ range: Range<UInt64>, exclusive: Bool) throws -> Bool {
        let type = exclusive ? F_WRLCK : F_RDLCK
        return try Syscall.testLock(try fd("lock test"), type: Int32(type), range, operation: "lock test", path: path)
    }

    func close() throws {
        let fd = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        if fd < 0 { throw StorageError.io(path: path, operation: "close", errno: EBADF) }
        // Never retry close on EINTR: on Linux the descriptor is already released.
        if Glibc.close(fd) != 0 {
            let error = errno
            if error != EINTR { throw StorageError.io(path: path, operation: "close", errno: error) }
        }
    }
}
