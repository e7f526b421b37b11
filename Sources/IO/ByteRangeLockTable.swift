/// The byte-range locks of the simulated file systems (`MemoryFileSystem`,
/// `CrashSimulatingFileSystem`), modelled on Linux open-file-description locks
/// (`F_OFD_SETLK`, `F_OFD_GETLK`; see `FileHandle`, "Byte-range locks"):
///
/// - a lock is held by an *owner* (one handle) on a byte range of a *file* (one inode);
/// - two owners conflict on overlapping ranges when at least one lock is exclusive;
/// - an owner never conflicts with itself: locking converts what it holds in the range,
///   unlocking cuts the range out of what it holds (splitting a held range if needed);
/// - `releaseAll(owner:)` is what closing a handle does, `removeAll()` what the death of
///   every process does.
///
/// Held ranges of one owner on one file never overlap (each lock request first cuts its
/// range out of the owner's held ranges), so a conflict check is a scan of the file's list.
///
/// Not thread-safe: the owning file system guards it with its mutex. Cost: O(locks on the
/// file) per call; the engine holds a handful per file.
struct ByteRangeLockTable {
    struct Held: Equatable {
        var owner: Int
        var range: Range<UInt64>
        var exclusive: Bool
    }

    /// File identity → every lock held on it.
    private var locks: [ObjectIdentifier: [Held]] = [:]

    /// True if an owner other than `owner` holds a lock overlapping `range` that conflicts
    /// with a lock of kind `exclusive`.
    func conflicts(file: ObjectIdentifier, owner: Int, range: Range<UInt64>, exclusive: Bool) -> Bool {
        guard let held = locks[file] else { return false }
        return held.contains { lock in
            lock.owner != owner && lock.range.overlaps(range) && (exclusive || lock.exclusive)
        }
    }

    /// Takes (or converts to) a lock of kind `exclusive` on `range` for `owner` unless another
    /// owner's lock conflicts. Returns whether it was taken.
    mutating func tryLock(file: ObjectIdentifier, owner: Int, range: Range<UInt64>, exclusive: Bool) -> Bool {
        if conflicts(file: file, owner: owner, range: range, exclusive: exclusive) { return false }
        unlock(file: file, owner: owner, range: range)
        locks[file, default: []].append(Held(owner: owner, range: range, exclusive: exclusive))
        return true
    }

    /// Cuts `range` out of `owner`'s locks on `file`.
    mutating func unlock(file: ObjectIdentifier, owner: Int, range: Range<UInt64>) {
        guard let held = locks[file] else { return }
        var kept: [Held] = []
        kept.reserveCapacity(held.count + 1)
        for lock in held {
            guard lock.owner == owner, lock.range.overlaps(range) else {
                kept.append(lock)
                continue
            }
            if lock.range.lowerBound < range.lowerBound {
                kept.append(Held(owner: owner, range: lock.range.lowerBound..<range.lowerBound, exclusive: lock.exclusive))
            }
            if range.upperBound < lock.range.upperBound {
                kept.append(Held(owner: owner, range: range.upperBound..<lock.range.upperBound, exclusive: lock.exclusive))
            }
        }
        locks[file] = kept.isEmpty ? nil : kept
    }

    /// Drops every lock of `owner` (its handle was closed).
    mutating func releaseAll(owner: Int) {
        for (file, held) in locks {
            let kept = held.filter { $0.owner != owner }
            if kept.count != held.count { locks[file] = kept.isEmpty ? nil : kept }
        }
    }

    /// Drops every lock (every process died).
    mutating func removeAll() { locks = [:] }

    /// Number of locks held on all files (tests).
    var count: Int { locks.values.reduce(0) { $0 + $1.count } }
}
