#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat

/// The one place where `PosixFileSystem` calls the raw POSIX I/O functions that can be
/// interrupted or transfer less than asked: every call goes through `retrying`, which
/// retries `EINTR` and turns `-1` into `StorageError.io` carrying the real errno, and
/// `preadFully` / `pwriteFully` loop over short transfers.
///
/// Thread-safety: stateless; `errno` is thread-local.
enum Syscall {
    /// Calls `body` until it returns something other than `-1` with `errno == EINTR`.
    /// Returns the non-negative result; throws `.io(path:operation:errno:)` on any other
    /// failure.
    @inline(__always)
    static func retrying<T: FixedWidthInteger & SignedInteger>(
        _ operation: String, path: String, _ body: () -> T
    ) throws -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = errno
            if error == EINTR { continue }
            throw StorageError.io(path: path, operation: operation, errno: error)
        }
    }

    /// Checks that `[offset, offset + count)` is addressable with `off_t`.
    @inline(__always)
    static func fileOffset(_ offset: UInt64, count: Int, operation: String, path: String) throws -> off_t {
        guard offset <= UInt64(Int64.max), UInt64(count) <= UInt64(Int64.max) - offset else {
            throw StorageError.io(path: path, operation: operation, errno: EINVAL)
        }
        return off_t(offset)
    }

    /// Reads until `buffer` is full or end of file. Returns the number of bytes read
    /// (less than `buffer.count` only at end of file).
    static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, path: String) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let start = try fileOffset(offset, count: buffer.count, operation: "pread", path: path)
        var done = 0
        while done < buffer.count {
            let n = try retrying("pread", path: path) {
                pread(fd, base + done, buffer.count - done, start + off_t(done))
            }
            if n == 0 { break }  // end of file
            done += n
        }
        return done
    }

    /// Linux open-file-description lock commands (`<fcntl.h>` defines them only under
    /// `_GNU_SOURCE`, which the Glibc module does not see). Their values are the same on every
    /// Linux architecture (asm-generic/fcntl.h) and part of the kernel ABI.
    static let ofdGetLock: Int32 = 36
    static let ofdSetLock: Int32 = 37

    /// `fcntl(F_OFD_SETLK)` for `range`: `type` is `F_WRLCK`, `F_RDLCK` or `F_UNLCK`. Returns
    /// false when another open file description holds a conflicting lock (EAGAIN/EACCES);
    /// retries EINTR; throws `.io` on any other failure.
    static func setLock(_ fd: Int32, type: Int32, _ range: Range<UInt64>, operation: String, path: String) throws -> Bool {
        var request = try lockRequest(type: type, range, operation: operation, path: path)
        while true {
            if fcntl(fd, ofdSetLock, &request) == 0 { return true }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EACCES { return false }
            throw StorageError.io(path: path, operation: operation, errno: error)
        }
    }

    /// `fcntl(F_OFD_GETLK)` for `range` and lock `type`: true if a lock of another open file
    /// description conflicts with it.
    static func testLock(_ fd: Int32, type: Int32, _ range: Range<UInt64>, operation: String, path: String) throws -> Bool {
        var request = try lockRequest(type: type, range, operation: operation, path: path)
        _ = try retrying(operation, path: path) { fcntl(fd, ofdGetLock, &request) }
        return Int32(request.l_type) != F_UNLCK
    }

    private static func lockRequest(type: Int32, _ range: Range<UInt64>, operation: String, path: String) throws -> flock {
        guard !range.isEmpty, range.upperBound <= UInt64(Int64.max) else {
            throw StorageError.io(path: path, operation: operation, errno: EINVAL)
        }
        var request = flock()
        request.l_type = Int16(type)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = off_t(range.lowerBound)
        request.l_len = off_t(range.count)
        request.l_pid = 0   // required by F_OFD_* commands
        return request
    }

    /// Writes all of `bytes` at `offset`, looping over short writes.
    static func pwriteFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let start = try fileOffset(offset, count: bytes.count, operation: "pwrite", path: path)
        var done = 0
        while done < bytes.count {
            let n = try retrying("pwrite", path: path) {
                pwrite(fd, base + done, bytes.count - done, start + off_t(done))
            }
            // A zero-byte write for a non-empty request makes no progress; never spin on it.
            if n == 0 { throw StorageError.io(path: path, operation: "pwrite", errno: EIO) }
            done += n
        }
    }
}
