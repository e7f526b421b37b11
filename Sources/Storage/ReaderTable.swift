#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ScrollbackFormat
import ScrollbackIO

/// The reader table (`<store>/readers`, spec/reader-table.md): LMDB's reader table done
/// through the `FileSystem` protocol. Readers in other processes (and read-only opens in
/// this one) record the snapshot they read in a slot; the writer consults the slots before it
/// reuses a page or removes a log segment, and publishes in the header how far readers may
/// read the log.
///
/// Locks (all open-file-description locks, `FileHandle.tryLock`; the kernel releases them
/// when a process dies, so a dead reader's slot becomes stale by itself):
/// - the **guard** (byte 0): held shared by every open `ReaderTable`; exclusively only while
///   one of them builds or resets the table, which is possible only when no other process
///   has the table open;
/// - a **slot lock** (the slot's first byte): held exclusively by the reader using the slot
///   for as long as it uses it. A slot with content whose lock nobody holds is stale.
///
/// Readers (`role: .reader`): `publishSnapshot(readingNewest:)` (or `claimSlot`/`update`
/// plus the re-check it performs), `release()`, `readPublished()`.
/// Writer (`role: .writer`, opened while holding the `StoreLock`): `publish(durableEnd:
/// checkpointTransaction:)`, `oldestReader()`, `clearStaleSlots()`.
///
/// The file is volatile coordination state: never synced, and after a crash every slot is
/// stale. A missing, truncated, torn or garbage table is rebuilt by the first process that
/// opens it while nobody else has it open (the writer at open, normally).
///
/// Thread-safety: safe from any thread; calls on one table are serialized by its mutex. The
/// writer never waits for a reader: it only tests locks.
package final class ReaderTable: @unchecked Sendable {
    package enum Role: Sendable, Equatable {
        /// The store's writer: publishes, may rebuild the table at open with its slot count.
        case writer
        /// A read-only opener: claims one slot.
        case reader
    }

    /// How long `open` waits for another process that is building the table, and how often a
    /// torn header read is retried before it counts as damage.
    package struct Patience: Sendable {
        package var guardWaitMicroseconds: Int
        package var headerReadAttempts: Int
        package var slotReadAttempts: Int
        package var snapshotAttempts: Int

        package init(guardWaitMicroseconds: Int = 2_000_000, headerReadAttempts: Int = 8, slotReadAttempts: Int = 4,
                     snapshotAttempts: Int = 64) {
            self.guardWaitMicroseconds = guardWaitMicroseconds
            self.headerReadAttempts = headerReadAttempts
            self.slotReadAttempts = slotReadAttempts
            self.snapshotAttempts = snapshotAttempts
        }
    }

    /// `<store>/readers`.
    package let path: String
    package let role: Role
    /// Number of slots of the table in use (fixed while it is open).
    package let slotCount: Int
    let file: any FileHandle
    let identity: ProcessIdentity
    let patience: Patience
    let core: Lock<Core>

    struct Core {
        var closed = false
        /// The claimed slot (readers).
        var slot: Int?
        var generation: UInt64 = 0
        var snapshot: ReaderSnapshot?
        /// What this writer last published (starts from the header found at open).
        var published: PublishedState
        var hasPublished = false
        /// Scratch for scans: every slot, `slotCount * slotSize` bytes, allocated once.
        var slots: [UInt8]
    }

    private init(path: String, role: Role, slotCount: Int, file: any FileHandle, published: PublishedState,
                 patience: Patience) {
        self.path = path
        self.role = role
        self.slotCount = slotCount
        self.file = file
        self.identity = .current
        self.patience = patience
        self.core = Lock(Core(
            published: published, slots: [UInt8](repeating: 0, count: slotCount * ReaderTableLayout.slotSize)))
    }

    deinit {
        core.withLock { core in
            if !core.closed { try? file.close() }
        }
    }

    // MARK: Open and close

    /// Opens (creating if needed) the reader table of `directory` and takes the shared guard.
    ///
    /// If no other process has the table open (the guard can be taken exclusively), the table
    /// is checked and, when invalid, rebuilt with `slotCount` slots (a writer also rebuilds a
    /// valid table whose slot count differs from `slotCount`), and every stale slot is
    /// cleared. Otherwise the header must validate (re-read up to
    /// `patience.headerReadAttempts` times, since a concurrent publish can tear a read);
    /// a table that stays invalid while others use it (for `patience.guardWaitMicroseconds`,
    /// trying again meanwhile to be alone) throws `.corrupted` (it is rebuilt once they have
    /// closed), a newer format throws `.unsupportedVersion`.
    /// If another process is building the table, waits up to `patience.guardWaitMicroseconds`,
    /// then throws `.io(errno: EAGAIN)`.
    ///
    /// A reader needs write access to the file (it writes its slot). REQUIRES for `.writer`:
    /// the caller holds the store's `StoreLock`.
    package static func open(
        fileSystem: any FileSystem, directory: String, role: Role,
        slotCount: Int = ReaderTableLayout.defaultSlotCount, patience: Patience = Patience()
    ) throws -> ReaderTable {
        guard (1...ReaderTableLayout.maximumSlotCount).contains(slotCount) else {
            throw StorageError.invalidArgument(
                "reader table slot count \(slotCount) is outside 1...\(ReaderTableLayout.maximumSlotCount)")
        }
        let path = Path.join(directory, ReaderTableLayout.fileName)
        let file = try fileSystem.open(path, mode: .createIfMissing)
        do {
            let header = try takeGuard(file, path: path, role: role, slotCount: slotCount, patience: patience)
            return ReaderTable(
                path: path, role: role, slotCount: header.slotCount, file: file, published: header.published,
                patience: patience)
        } catch {
            try? file.close()
            throw error
        }
    }

    private static let guardRange = ReaderTableLayout.guardLockOffset..<ReaderTableLayout.guardLockOffset + 1

    /// Takes the guard (shared in the end) and returns the valid header in force.
    private static func takeGuard(
        _ file: any FileHandle, path: String, role: Role, slotCount: Int, patience: Patience
    ) throws -> ReaderTableHeader {
        var waited = 0
        while true {
            if try file.tryLock(guardRange, exclusive: true) {
                let header = try prepareAlone(file, path: path, role: role, slotCount: slotCount)
                // Converting our own exclusive lock to shared cannot conflict.
                guard try file.tryLock(guardRange, exclusive: false) else {
                    throw StorageError.io(path: path, operation: "lock (reader table guard, shared)", errno: EAGAIN)
                }
                return header
            }
            if try file.tryLock(guardRange, exclusive: false) {
                do {
                    return try readValidHeader(file, path: path, attempts: patience.headerReadAttempts)
                } catch StorageError.corrupted where waited < patience.guardWaitMicroseconds {
                    // Invalid while shared: the other holders may have closed since, or may be
                    // a child this process forked on its way to exec (it shares this process's
                    // open file descriptions, and so their guard locks, until exec closes
                    // them). Let go and try again to be alone, within the same patience.
                    try file.unlock(guardRange)
                    usleep(1000)
                    waited += 1000
                    continue
                }
            }
            // Another process holds the guard exclusively: it is building the table.
            guard waited < patience.guardWaitMicroseconds else {
                throw StorageError.io(path: path, operation: "lock (reader table guard: another process keeps building the table)", errno: EAGAIN)
            }
            usleep(1000)
            waited += 1000
        }
    }

    /// With the guard held exclusively (nobody else has the table open): keeps a valid table
    /// and clears its stale slots, or rebuilds it.
    private static func prepareAlone(_ file: any FileHandle, path: String, role: Role, slotCount: Int) throws -> ReaderTableHeader {
        let found = try readHeader(file)
        if case .valid(let header) = found, role == .reader || header.slotCount == slotCount {
            _ = try clearStale(file, slotCount: header.slotCount, buffer: nil)
            return header
        }
        return try rebuild(file, slotCount: slotCount)
    }

    /// Writes an empty table: zero slots first, then the header (no bound, nothing published),
    /// then cuts the file to its size. Never synced.
    private static func rebuild(_ file: any FileHandle, slotCount: Int) throws -> ReaderTableHeader {
        let header = ReaderTableHeader(
            slotCount: slotCount,
            published: PublishedState(durableLogEnd: ReaderTableLayout.noBound, checkpointTransaction: 0, publishCount: 0))
        let slots = [UInt8](repeating: 0, count: slotCount * ReaderTableLayout.slotSize)
        try file.write(slots, at: ReaderTableLayout.slotOffset(0))
        try withUnsafeTemporaryAllocation(byteCount: ReaderTableLayout.headerSize, alignment: 8) { raw in
            header.encode(into: raw)
            try file.write(UnsafeRawBufferPointer(raw), at: 0)
        }
        if try file.size() > ReaderTableLayout.fileSize(slotCount: slotCount) {
            try file.truncate(to: ReaderTableLayout.fileSize(slotCount: slotCount))
        }
        return header
    }

    private static func readHeader(_ file: any FileHandle) throws -> ReaderTableHeader.Decoded {
        try withUnsafeTemporaryAllocation(byteCount: ReaderTableLayout.headerSize, alignment: 8) { raw in
            let count = try file.read(into: raw, at: 0)
            let size = try file.size()
            return ReaderTableHeader.decode(UnsafeRawBufferPointer(rebasing: raw[..<count]), fileSize: size)
        }
    }

    /// The header, re-read up to `attempts` times while it does not validate (a concurrent
    /// publish can tear a read); then `.corrupted` or `.unsupportedVersion`.
    private static func readValidHeader(_ file: any FileHandle, path: String, attempts: Int) throws -> ReaderTableHeader {
        var last = ReaderTableHeader.Decoded.invalid("not read")
        for attempt in 0..<max(1, attempts) {
            if attempt > 0 { usleep(UInt32(min(1000, 50 << min(attempt, 5)))) }
            last = try readHeader(file)
            if case .valid(let header) = last { return header }
        }
        switch last {
        case .newerVersion(let version):
            throw StorageError.unsupportedVersion(file: path, found: version, supported: ReaderTableLayout.formatVersion)
        case .invalid(let reason):
            throw StorageError.corrupted(
                file: path, offset: 0,
                reason: "reader table header invalid (\(reason)) while other processes have it open; "
                    + "it is rebuilt when they have closed the store")
        case .valid(let header):
            return header
        }
    }

    /// Releases the slot (if any), the guard and the file. Later calls throw `.closed`.
    package func close() throws {
        let slot: Int? = core.withLock { core in
            if core.closed { return nil }
            defer { core.closed = true }
            return core.slot
        }
        if let slot { try? zeroSlot(slot) }
        try file.close()
    }

    // MARK: Reader side

    /// The reader's claimed slot, if any.
    package var claimedSlot: Int? { core.withLock { $0.slot } }

    /// The snapshot this reader's slot holds, if any.
    package var currentSnapshot: ReaderSnapshot? { core.withLock { $0.snapshot } }

    /// Claims a free or stale slot for `snapshot` and returns its index: tries each slot's
    /// lock in order; the first one taken is written (pid, start time, snapshot, generation 1).
    /// Re-validates the header first. REQUIRES: role `.reader`, no slot claimed yet.
    ///
    /// The caller must then re-check that `snapshot` is still the newest checkpoint (see
    /// `publishSnapshot(readingNewest:)`, which does both). Throws `.limitExceeded` when every
    /// slot belongs to a live reader.
    @discardableResult
    package func claimSlot(snapshot: ReaderSnapshot) throws -> Int {
        try core.withLock { core in
            try checkUsable(core, reader: true)
            if let slot = core.slot {
                throw StorageError.invalidArgument("reader table: slot \(slot) is already claimed; update it instead")
            }
            _ = try Self.readValidHeader(file, path: path, attempts: patience.headerReadAttempts)
            for index in 0..<slotCount {
                let lock = slotLockRange(index)
                guard try file.tryLock(lock, exclusive: true) else { continue }
                do {
                    try writeSlot(index, ReaderSlot(process: identity, snapshot: snapshot, generation: 1))
                } catch {
                    try? file.unlock(lock)
                    throw error
                }
                core.slot = index
                core.generation = 1
                core.snapshot = snapshot
                return index
            }
            throw StorageError.limitExceeded(
                "the reader table \(path) is full: all \(slotCount) slots belong to live readers; close a reader and retry")
        }
    }

    /// Rewrites the claimed slot with `snapshot` (one 64-byte write; the generation grows).
    /// The same re-check as after `claimSlot` applies. REQUIRES: a claimed slot.
    package func update(snapshot: ReaderSnapshot) throws {
        try core.withLock { core in
            try checkUsable(core, reader: true)
            guard let slot = core.slot else {
                throw StorageError.invalidArgument("reader table: no slot claimed; claim one first")
            }
            let generation = core.generation &+ 1 == 0 ? 1 : core.generation &+ 1
            try writeSlot(slot, ReaderSlot(process: identity, snapshot: snapshot, generation: generation))
            core.generation = generation
            core.snapshot = snapshot
        }
    }

    /// Zeroes the claimed slot, then unlocks it. No-op without a slot. If the write fails the
    /// slot is unlocked anyway (it is then stale, which is harmless) and the error rethrown.
    package func release() throws {
        let slot: Int? = try core.withLock { core in
            if core.closed { throw StorageError.closed }
            defer {
                core.slot = nil
                core.snapshot = nil
            }
            return core.slot
        }
        guard let slot else { return }
        try zeroSlot(slot)
    }

    /// Makes this reader's slot hold the newest checkpoint, following the LMDB rule
    /// (spec/reader-table.md, "The race rule"): read the newest snapshot, publish it in the
    /// slot (claim or update), read the newest snapshot again; if it changed, a checkpoint
    /// completed in between and the writer may already have decided page reuse without
    /// seeing the slot, so start over. Returns the snapshot the reader may now read.
    ///
    /// `readingNewest` must read the meta pages of the page file (the pager's newest valid
    /// meta page: its transaction id and log position); it is called at least twice. Gives up
    /// after `patience.snapshotAttempts` rounds with `.limitExceeded` (checkpoints completing
    /// faster than a slot write: delay, never an inconsistent snapshot).
    package func publishSnapshot(readingNewest: () throws -> ReaderSnapshot) throws -> ReaderSnapshot {
        for _ in 0..<max(1, patience.snapshotAttempts) {
            let snapshot = try readingNewest()
            if claimedSlot == nil { try claimSlot(snapshot: snapshot) } else { try update(snapshot: snapshot) }
            if try readingNewest() == snapshot { return snapshot }
        }
        throw StorageError.limitExceeded(
            "reader table \(path): the newest checkpoint changed on each of \(patience.snapshotAttempts) attempts to register a snapshot")
    }

    /// What the writer published (re-read while a concurrent publish tears the read).
    package func readPublished() throws -> PublishedState {
        try core.withLock { core in try checkUsable(core, reader: false) }
        return try Self.readValidHeader(file, path: path, attempts: patience.headerReadAttempts).published
    }

    // MARK: Writer side

    /// Publishes the durable log end (readers must not read the log past it) and the newest
    /// checkpoint's transaction id: one 64-byte `pwrite` of the header from stack memory, no
    /// allocation. Values never go backwards (each is the maximum of what this table published).
    /// Never synced. A failure is harmless to correctness (readers keep an older, lower bound)
    /// and need not poison anything. REQUIRES: role `.writer`.
    package func publish(durableEnd: UInt64, checkpointTransaction: UInt64) throws {
        guard role == .writer else { throw StorageError.invalidArgument("reader table: only the writer publishes") }
        try core.withLock { core in
            if core.closed { throw StorageError.closed }
            var next = core.published
            if core.hasPublished {
                next.durableLogEnd = max(next.durableLogEnd, durableEnd)
                next.checkpointTransaction = max(next.checkpointTransaction, checkpointTransaction)
            } else {
                next.durableLogEnd = durableEnd
                next.checkpointTransaction = checkpointTransaction
            }
            next.publishCount &+= 1
            let header = ReaderTableHeader(slotCount: slotCount, published: next)
            try withUnsafeTemporaryAllocation(byteCount: ReaderTableLayout.headerSize, alignment: 8) { raw in
                header.encode(into: raw)
                try file.write(UnsafeRawBufferPointer(raw), at: 0)
            }
            core.published = next
            core.hasPublished = true
        }
    }

    /// The oldest snapshot any live reader (of another handle) may read, or nil if there is
    /// none. One `pread` of the slot area plus one `F_OFD_GETLK` per non-free slot; free slots
    /// cost nothing, stale ones are skipped (see `clearStaleSlots`). A live slot that fails its
    /// checksum is re-read up to `patience.slotReadAttempts` times (it may be mid-write) and
    /// then counts as the oldest possible reader (transaction 0, position 0). No allocation.
    ///
    /// REQUIRES of the caller (spec/reader-table.md, "The race rule"): a result may only be
    /// applied to pages and segments that the newest durable checkpoint already did not need
    /// when this call began; so scan again after every checkpoint.
    package func oldestReader() throws -> OldestReader? {
        try core.withLock { core in
            try checkUsable(core, reader: false)
            return try core.slots.withUnsafeMutableBytes { slots in
                let count = try file.read(into: slots, at: ReaderTableLayout.slotOffset(0))
                if count < slots.count { slots.baseAddress!.advanced(by: count).initializeMemory(as: UInt8.self, repeating: 0, count: slots.count - count) }
                var oldest: OldestReader? = nil
                for index in 0..<slotCount {
                    let bytes = UnsafeMutableRawBufferPointer(rebasing: slots[index * ReaderTableLayout.slotSize..<(index + 1) * ReaderTableLayout.slotSize])
                    if isZero(UnsafeRawBufferPointer(bytes)) { continue }
                    guard try file.isLockedByOthers(slotLockRange(index), exclusive: true) else { continue }
                    var decoded = ReaderSlot.decode(UnsafeRawBufferPointer(bytes))
                    var attempts = 1
                    while case .damaged = decoded, attempts < patience.slotReadAttempts {
                        sched_yield()
                        _ = try file.read(into: bytes, at: ReaderTableLayout.slotOffset(index))
                        decoded = ReaderSlot.decode(UnsafeRawBufferPointer(bytes))
                        attempts += 1
                    }
                    let candidate: (ReaderSnapshot, UInt64?, Bool)
                    switch decoded {
                    case .free: continue   // released while we looked
                    case .valid(let slot): candidate = (slot.snapshot, slot.process.pid, false)
                    case .damaged: candidate = (ReaderSnapshot(transactionID: 0, logPosition: 0), nil, true)
                    }
                    merge(&oldest, candidate.0, pid: candidate.1, unreadable: candidate.2)
                }
                return oldest
            }
        }
    }

    private func merge(_ oldest: inout OldestReader?, _ snapshot: ReaderSnapshot, pid: UInt64?, unreadable: Bool) {
        guard var current = oldest else {
            oldest = OldestReader(
                transactionID: snapshot.transactionID, logPosition: snapshot.logPosition, liveReaders: 1, pid: pid,
                unreadableSlots: unreadable ? 1 : 0)
            return
        }
        current.liveReaders += 1
        if unreadable { current.unreadableSlots += 1 }
        if snapshot.transactionID < current.transactionID {
            current.transactionID = snapshot.transactionID
            current.pid = pid
        }
        current.logPosition = min(current.logPosition, snapshot.logPosition)
        oldest = current
    }

    /// Zeroes every slot that holds bytes but whose lock nobody holds (its reader died or
    /// released it without zeroing): takes the slot's lock, re-reads, zeroes, unlocks — so it
    /// never races a reader claiming the slot. Returns the number of slots cleared. Any role.
    @discardableResult
    package func clearStaleSlots() throws -> Int {
        try core.withLock { core in
            try checkUsable(core, reader: false)
            return try core.slots.withUnsafeMutableBytes { slots in
                try Self.clearStale(file, slotCount: slotCount, buffer: slots)
            }
        }
    }

    /// The stale-slot sweep behind `clearStaleSlots` and the reset at open. `buffer` (at least
    /// `slotCount * slotSize` bytes) avoids an allocation; nil allocates.
    private static func clearStale(_ file: any FileHandle, slotCount: Int, buffer: UnsafeMutableRawBufferPointer?) throws -> Int {
        let size = slotCount * ReaderTableLayout.slotSize
        let scratch = buffer ?? UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { if buffer == nil { scratch.deallocate() } }
        let slots = UnsafeMutableRawBufferPointer(rebasing: scratch[..<size])
        let count = try file.read(into: slots, at: ReaderTableLayout.slotOffset(0))
        var cleared = 0
        for index in 0..<slotCount {
            let start = index * ReaderTableLayout.slotSize
            guard start < count else { break }   // past the end of the file: zero
            let end = min(count, start + ReaderTableLayout.slotSize)
            if isZero(UnsafeRawBufferPointer(rebasing: slots[start..<end])) { continue }
            let lock = ReaderTableLayout.slotOffset(index)..<ReaderTableLayout.slotOffset(index) + 1
            guard try file.tryLock(lock, exclusive: true) else { continue }   // live
            defer { try? file.unlock(lock) }
            let current = UnsafeMutableRawBufferPointer(rebasing: slots[start..<start + ReaderTableLayout.slotSize])
            let n = try file.read(into: current, at: ReaderTableLayout.slotOffset(index))
            if isZero(UnsafeRawBufferPointer(rebasing: current[..<n])) { continue }
            try writeZeroSlot(file, index)
            cleared += 1
        }
        return cleared
    }

    /// Every slot as the writer would judge it now (diagnostics, `dump`, tests). Allocates.
    package func inspectSlots() throws -> [ReaderSlotState] {
        try core.withLock { core in try checkUsable(core, reader: false) }
        let bytes = try file.readBytes(count: slotCount * ReaderTableLayout.slotSize, at: ReaderTableLayout.slotOffset(0))
        var result: [ReaderSlotState] = []
        result.reserveCapacity(slotCount)
        for index in 0..<slotCount {
            var slot = [UInt8](repeating: 0, count: ReaderTableLayout.slotSize)
            let start = index * ReaderTableLayout.slotSize
            if start < bytes.count {
                let available = bytes[start..<min(bytes.count, start + ReaderTableLayout.slotSize)]
                slot.replaceSubrange(0..<available.count, with: available)
            }
            let decoded = slot.withUnsafeBytes { ReaderSlot.decode($0) }
            if decoded == .free {
                result.append(.free)
                continue
            }
            let live = try file.isLockedByOthers(slotLockRange(index), exclusive: true)
            switch decoded {
            case .free: result.append(.free)
            case .valid(let content): result.append(live ? .live(content) : .stale(content))
            case .damaged: result.append(live ? .liveUnreadable : .stale(nil))
            }
        }
        return result
    }

    // MARK: Slot I/O

    @inline(__always)
    private func slotLockRange(_ index: Int) -> Range<UInt64> {
        let offset = ReaderTableLayout.slotOffset(index)
        return offset..<offset + 1
    }

    /// One 64-byte write from stack memory.
    private func writeSlot(_ index: Int, _ slot: ReaderSlot) throws {
        try withUnsafeTemporaryAllocation(byteCount: ReaderTableLayout.slotSize, alignment: 8) { raw in
            slot.encode(into: raw)
            try file.write(UnsafeRawBufferPointer(raw), at: ReaderTableLayout.slotOffset(index))
        }
    }

    private static func writeZeroSlot(_ file: any FileHandle, _ index: Int) throws {
        try withUnsafeTemporaryAllocation(byteCount: ReaderTableLayout.slotSize, alignment: 8) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            try file.write(UnsafeRawBufferPointer(raw), at: ReaderTableLayout.slotOffset(index))
        }
    }

    /// Zeroes the slot, then unlocks it (unlocking even if the write fails).
    private func zeroSlot(_ index: Int) throws {
        defer { try? file.unlock(slotLockRange(index)) }
        try Self.writeZeroSlot(file, index)
    }

    private func checkUsable(_ core: Core, reader: Bool) throws {
        if core.closed { throw StorageError.closed }
        if reader && role != .reader { throw StorageError.invalidArgument("reader table: only a reader claims a slot") }
    }
}
