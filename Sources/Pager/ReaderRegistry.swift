import Synchronization

/// Lock-free begin and end of read snapshots for the pager's pooled readers (LMDB's reader
/// table, in memory): a fixed number of registration words, one per pooled `PageTransaction`
/// (`registryIndex`), each holding the id + 1 of the snapshot its reader has open (0: none),
/// and a pool of the readers not in use.
///
/// The protocol (`Pager.beginRead`): a reader whose cached state is the committed one stores
/// its id in its word, then loads the committed id again and keeps the snapshot only if it
/// is unchanged (else it registers under the pager's lock). Page reuse computes the oldest
/// snapshot from these words after a commit has published its id. All of these are
/// sequentially consistent: either the reader sees the newer commit (and does not use its old
/// state) or the scan that decides reuse sees the reader's word. Ending a snapshot is a
/// release store of 0 (every read of its pages happens before).
///
/// Thread-safety: every method is safe from any thread. A registration word is written only
/// by the reader that owns its index; the pool's words hold retained readers (0 = empty).
final class ReaderRegistry: @unchecked Sendable {
    /// Pooled readers at most (and registration words).
    static let capacity = 16
    private let words: UnsafeMutablePointer<Atomic<UInt64>>
    private let pool: UnsafeMutablePointer<Atomic<UInt>>

    init() {
        words = .allocate(capacity: Self.capacity)
        pool = .allocate(capacity: Self.capacity)
        for i in 0..<Self.capacity {
            (words + i).initialize(to: Atomic(0))
            (pool + i).initialize(to: Atomic(0))
        }
    }

    deinit {
        for i in 0..<Self.capacity {
            let raw = pool[i].exchange(0, ordering: .acquiring)
            if raw != 0, let pointer = UnsafeRawPointer(bitPattern: raw) {
                Unmanaged<PageTransaction>.fromOpaque(pointer).release()
            }
        }
        words.deinitialize(count: Self.capacity)
        words.deallocate()
        pool.deinitialize(count: Self.capacity)
        pool.deallocate()
    }

    /// Marks snapshot `id` open for the reader owning `index`.
    @inline(__always)
    func register(_ index: Int, _ id: UInt64) {
        words[index].store(id &+ 1, ordering: .sequentiallyConsistent)
    }

    /// Marks the reader owning `index` as having no snapshot open.
    @inline(__always)
    func unregister(_ index: Int) {
        words[index].store(0, ordering: .releasing)
    }

    /// The oldest snapshot id registered, or nil. O(capacity).
    var oldest: UInt64? {
        var oldest: UInt64? = nil
        for i in 0..<Self.capacity {
            let word = words[i].load(ordering: .sequentiallyConsistent)
            if word != 0 { oldest = min(oldest ?? .max, word &- 1) }
        }
        return oldest
    }

    /// A pooled reader, or nil when the pool is empty.
    @inline(__always)
    func pop() -> PageTransaction? {
        for i in 0..<Self.capacity where pool[i].load(ordering: .relaxed) != 0 {
            let raw = pool[i].exchange(0, ordering: .acquiring)
            if raw != 0, let pointer = UnsafeRawPointer(bitPattern: raw) {
                return Unmanaged<PageTransaction>.fromOpaque(pointer).takeRetainedValue()
            }
        }
        return nil
    }

    /// Puts a finished reader (with a registration index) into the pool; false if the pool
    /// is full (it never is: it has a place per index).
    @inline(__always)
    func push(_ reader: PageTransaction) -> Bool {
        let raw = UInt(bitPattern: Unmanaged.passRetained(reader).toOpaque())
        for i in 0..<Self.capacity where pool[i].load(ordering: .relaxed) == 0 {
            if pool[i].compareExchange(expected: 0, desired: raw, ordering: .releasing).exchanged { return true }
        }
        Unmanaged<PageTransaction>.fromOpaque(UnsafeRawPointer(bitPattern: raw).unsafelyUnwrapped).release()
        return false
    }
}
