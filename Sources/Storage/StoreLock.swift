#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import ScrollbackIO

/// The writer's exclusive lock on a store: an exclusive byte-range lock (open-file-description
/// semantics, `FileHandle.tryLock`) on byte 0 of `<store>/lock` (spec/reader-table.md, "The
/// lock file").
///
/// - It excludes a second writer in another process *and* a second open in this process (two
///   handles conflict), and the kernel releases it when the holder dies, so a crashed writer
///   never blocks a restart.
/// - A refused `acquire` throws `StorageError.storeLocked(path:holder:)` and writes nothing
///   (it may create an empty `lock` file only when none exists, in which case nobody holds it
///   and the acquire does not fail). When the holder can only be a child this process forked
///   on its way to `exec`, it first waits up to `forkedChildWaitMicroseconds`.
/// - After acquiring, the holder writes an informational record (pid, process start time,
///   when, a label such as the program name) so a refused opener can say who holds the store.
///   The record is never synced and never trusted for anything but that message: a missing,
///   empty, truncated or garbage `lock` file never prevents acquiring.
/// - Readers test for a live writer with `isWriterAlive`, which takes no lock.
/// - The `lock` file is never removed (removing a lock file while another process has it open
///   would let two processes lock two different files under one name).
///
/// Thread-safety: safe from any thread; `release()` is idempotent.
package final class StoreLock: Sendable {
    /// The store directory.
    package let directory: String
    /// `<directory>/lock`.
    package let path: String
    /// What this holder wrote into the lock file.
    package let holder: StoreLockHolder
    private let file: Lock<(any FileHandle)?>

    private init(directory: String, path: String, holder: StoreLockHolder, file: any FileHandle) {
        self.directory = directory
        self.path = path
        self.holder = holder
        self.file = Lock(file)
    }

    deinit {
        if let file = file.withLock({ $0 }) {
            try? file.close()
            Self.noteReleased(path)
        }
    }

    /// How many `StoreLock`s of this process hold each lock file, by path (tests run several
    /// memory file systems whose paths coincide, hence a count).
    private static let heldHere = Lock<[String: Int]>([:])

    private static func noteReleased(_ path: String) {
        heldHere.withLock { held in
            if let count = held[path], count > 1 { held[path] = count - 1 } else { held[path] = nil }
        }
    }

    /// How long a refused `acquire` waits when the lock file's record says this process took
    /// the lock last and no `StoreLock` of this process holds it now. The holder is then a
    /// child this process forked: it shares the process's open file descriptions, and with
    /// them the lock, until its `exec` closes them (the files are opened `O_CLOEXEC`) — for
    /// example while a thread spawns a program just as another closes and reopens the store.
    static let forkedChildWaitMicroseconds = 1_000_000

    /// Takes the store lock of `directory` (which must exist) or throws
    /// `.storeLocked(path: directory, holder:)` if another handle holds it. `label` names the
    /// holder in other processes' error messages (e.g. "scrollback exec").
    ///
    /// Cost: one open, one `fcntl`, and on success one `pwrite` and one `ftruncate` of the
    /// record (the record's failure is ignored: it is informational).
    package static func acquire(
        fileSystem: any FileSystem, directory: String, label: String = ProcessIdentity.programName
    ) throws -> StoreLock {
        let path = Path.join(directory, StoreLockLayout.fileName)
        let file = try fileSystem.open(path, mode: .createIfMissing)
        let lockRange = StoreLockLayout.lockOffset..<StoreLockLayout.lockOffset + 1
        var acquired: Bool
        do {
            acquired = try file.tryLock(lockRange, exclusive: true)
            if !acquired, heldHere.withLock({ $0[path] == nil }), readHolder(file)?.process == .current {
                var waited = 0
                while !acquired && waited < forkedChildWaitMicroseconds {
                    usleep(1000)
                    waited += 1000
                    acquired = try file.tryLock(lockRange, exclusive: true)
                }
            }
        } catch {
            try? file.close()
            throw error
        }
        guard acquired else {
            let holder = readHolder(file).flatMap(describe)
            try? file.close()
            throw StorageError.storeLocked(path: directory, holder: holder)
        }
        let holder = StoreLockHolder(
            process: .current, acquiredAt: ProcessIdentity.wallClockSeconds(), label: label)
        let record = holder.encoded()
        // Informational only (see the type's documentation): a failure to write it changes
        // nothing about the lock, which is already held.
        try? file.write(record, at: 0)
        try? file.truncate(to: UInt64(record.count))
        heldHere.withLock { $0[path, default: 0] += 1 }
        return StoreLock(directory: directory, path: path, holder: holder, file: file)
    }

    /// True if some handle (in any process, this one included) holds the store lock of
    /// `directory`. Takes no lock and creates nothing: a missing lock file means no writer.
    /// The answer may be stale by the time it returns.
    package static func isWriterAlive(fileSystem: any FileSystem, directory: String) throws -> Bool {
        let path = Path.join(directory, StoreLockLayout.fileName)
        guard fileSystem.fileExists(path) else { return false }
        let file: any FileHandle
        do {
            file = try fileSystem.open(path, mode: .readOnly)
        } catch StorageError.io(_, _, let code) where code == ENOENT {
            return false   // removed between the two calls
        }
        defer { try? file.close() }
        let range = StoreLockLayout.lockOffset..<StoreLockLayout.lockOffset + 1
        return try file.isLockedByOthers(range, exclusive: true)
    }

    /// The record of the current (or last) holder of the store lock of `directory`, if the lock
    /// file holds a valid one. Informational: it may name a process that has exited.
    package static func lastHolder(fileSystem: any FileSystem, directory: String) -> StoreLockHolder? {
        let path = Path.join(directory, StoreLockLayout.fileName)
        guard let file = try? fileSystem.open(path, mode: .readOnly) else { return nil }
        defer { try? file.close() }
        return readHolder(file)
    }

    /// True until `release()`.
    package var isHeld: Bool { file.withLock { $0 != nil } }

    /// Releases the lock (closes the lock file's handle). The record stays in the file; it
    /// names a process that no longer holds the lock, which `describe` detects.
    package func release() throws {
        guard let handle = file.withLock({ file -> (any FileHandle)? in
            defer { file = nil }
            return file
        }) else { return }
        Self.noteReleased(path)
        try handle.close()
    }

    // MARK: The holder record

    static func readHolder(_ file: any FileHandle) -> StoreLockHolder? {
        let maximum = StoreLockLayout.recordSize(labelBytes: StoreLockLayout.maximumLabelBytes)
        guard let bytes = try? file.readBytes(count: maximum, at: 0) else { return nil }
        return StoreLockHolder.decode(bytes)
    }

    /// "pid 4242, scrollback exec, since 2026-11-29T22:10:03Z"; nil if the recorded process is
    /// not running (the record is left over from an earlier holder, so the holder is unknown).
    static func describe(_ holder: StoreLockHolder) -> String? {
        let current = ProcessIdentity.current
        let isThisProcess = holder.process.pid == current.pid
            && (holder.process.startTime == 0 || holder.process.startTime == current.startTime)
        guard isThisProcess || holder.process.isRunning else { return nil }
        let who = isThisProcess ? "pid \(holder.process.pid), this process" : "pid \(holder.process.pid)"
        return "\(who), \(holder.label), since \(UTCTime.iso8601(secondsSinceEpoch: holder.acquiredAt))"
    }
}

/// The informational record in the lock file (spec/reader-table.md, "The lock file").
package struct StoreLockHolder: Sendable, Equatable {
    package var process: ProcessIdentity
    /// When the lock was taken, in seconds since the Unix epoch (wall clock).
    package var acquiredAt: Int64
    /// What the holder is, e.g. "scrollback exec"; at most `StoreLockLayout.maximumLabelBytes`
    /// bytes of UTF-8 (a longer label is cut at a character boundary when encoded).
    package var label: String

    package init(process: ProcessIdentity, acquiredAt: Int64, label: String) {
        self.process = process
        self.acquiredAt = acquiredAt
        self.label = label
    }

    /// The record's bytes: the fixed fields, the label, and the CRC-32C of everything before it.
    package func encoded() -> [UInt8] {
        let label = Self.truncatedUTF8(label, maximumBytes: StoreLockLayout.maximumLabelBytes)
        var bytes = [UInt8](repeating: 0, count: StoreLockLayout.recordSize(labelBytes: label.count))
        bytes.withUnsafeMutableBytes { raw in
            raw.storeLE(StoreLockLayout.magic, at: StoreLockLayout.magicOffset)
            raw.storeLE(StoreLockLayout.formatVersion, at: StoreLockLayout.formatVersionOffset)
            raw.storeLE(UInt32(label.count), at: StoreLockLayout.labelLengthOffset)
            raw.storeLE(process.pid, at: StoreLockLayout.pidOffset)
            raw.storeLE(process.startTime, at: StoreLockLayout.processStartTimeOffset)
            raw.storeLE(acquiredAt, at: StoreLockLayout.acquiredAtOffset)
            for (index, byte) in label.enumerated() { raw[StoreLockLayout.labelOffset + index] = byte }
            let end = StoreLockLayout.labelOffset + label.count
            raw.storeLE(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<end])), at: end)
        }
        return bytes
    }

    /// Decodes a record from the start of `bytes` (trailing bytes are ignored). Returns nil for
    /// anything that is not a complete, valid version-1 record; never traps.
    package static func decode(_ bytes: [UInt8]) -> StoreLockHolder? {
        bytes.withUnsafeBytes { raw -> StoreLockHolder? in
            guard raw.count >= StoreLockLayout.recordSize(labelBytes: 0),
                raw.loadLE(UInt64.self, at: StoreLockLayout.magicOffset) == StoreLockLayout.magic,
                raw.loadLE(UInt32.self, at: StoreLockLayout.formatVersionOffset) == StoreLockLayout.formatVersion
            else { return nil }
            let labelLength = Int(raw.loadLE(UInt32.self, at: StoreLockLayout.labelLengthOffset))
            guard labelLength <= StoreLockLayout.maximumLabelBytes,
                raw.count >= StoreLockLayout.recordSize(labelBytes: labelLength)
            else { return nil }
            let end = StoreLockLayout.labelOffset + labelLength
            guard raw.loadLE(UInt32.self, at: end) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<end]))
            else { return nil }
            let label = String(decoding: UnsafeRawBufferPointer(rebasing: raw[StoreLockLayout.labelOffset..<end]), as: UTF8.self)
            return StoreLockHolder(
                process: ProcessIdentity(
                    pid: raw.loadLE(UInt64.self, at: StoreLockLayout.pidOffset),
                    startTime: raw.loadLE(UInt64.self, at: StoreLockLayout.processStartTimeOffset)),
                acquiredAt: raw.loadLE(Int64.self, at: StoreLockLayout.acquiredAtOffset),
                label: label)
        }
    }

    /// The UTF-8 bytes of `text`, cut to at most `maximumBytes` at a character boundary.
    static func truncatedUTF8(_ text: String, maximumBytes: Int) -> [UInt8] {
        var result: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if result.count + bytes.count > maximumBytes { break }
            result.append(contentsOf: bytes)
        }
        return result
    }
}

/// UTC calendar time for messages (no Foundation in the engine).
package enum UTCTime {
    /// `2026-11-29T22:10:03Z` for seconds since the Unix epoch (proleptic Gregorian calendar;
    /// Howard Hinnant's `civil_from_days`).
    package static func iso8601(secondsSinceEpoch seconds: Int64) -> String {
        // Years 0000…9999 only (a record's time is informational and may be anything).
        guard (-62_167_219_200...253_402_300_799).contains(seconds) else { return "\(seconds) s after 1970" }
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }
}
