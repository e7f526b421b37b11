// TEMPORARY: an in-memory stand-in for the Pager layer, implementing exactly the "Pager layer"
// and "Page accounting" sections of the internal API contract so the B+tree can be built and
// tested before the real pager exists. It is dropped at merge and replaced by the real pager.
//
// What it models: copy-on-write page ownership, snapshot isolation (a page freed by a commit is
// reused only once no live snapshot can see it), rollback, page accounting.
// What it does not model: files, checksums, the page cache, checkpoints, reopen.
import ScrollbackFormat
import ScrollbackIO
import Synchronization

package typealias PageNumber = UInt64

/// Shape + root of one tree (kept in the meta page catalog; 8 slots).
package struct TreeRoot: Sendable, Equatable {
    package var rootPage: PageNumber
    package var entryCount: UInt64
    package var height: UInt8
    package var keyWords: UInt8
    package var valueSize: UInt16

    package init(rootPage: PageNumber = 0, entryCount: UInt64 = 0, height: UInt8 = 0, keyWords: UInt8 = 0, valueSize: UInt16 = 0) {
        self.rootPage = rootPage
        self.entryCount = entryCount
        self.height = height
        self.keyWords = keyWords
        self.valueSize = valueSize
    }
}

/// What a snapshot sees. Value type, cheap to copy.
package struct CommittedState: Sendable, Equatable {
    package var transactionID: UInt64
    package var trees: [TreeRoot]
    package var logPosition: UInt64
    package var counters: [UInt64]

    package init(transactionID: UInt64 = 0, trees: [TreeRoot] = Array(repeating: TreeRoot(), count: Pager.treeSlotCount),
                 logPosition: UInt64 = 0, counters: [UInt64] = Array(repeating: 0, count: 8)) {
        self.transactionID = transactionID
        self.trees = trees
        self.logPosition = logPosition
        self.counters = counters
    }
}

package struct PagerStatistics: Sendable, Equatable {
    package var hits: UInt64 = 0
    package var misses: UInt64 = 0
    package var evictions: UInt64 = 0
    package var dirtyBytes: UInt64 = 0
    package var cachedBytes: UInt64 = 0
    package var pageCount: UInt64 = 0
    package var freePages: UInt64 = 0
    package var checkpoints: UInt64 = 0
}

package struct PageAccounting: Sendable {
    package var pageCount: UInt64
    package var freePages: [PageNumber]
    package var freeListPages: [PageNumber]
}

/// Page memory: fixed table of chunks, each holding `pagesPerChunk` pages. The table never
/// moves, so page addresses stay valid without a lock once a page number has been published.
final class ShimPageArena: @unchecked Sendable {
    static let pagesPerChunk = 1024
    static let maxChunks = 1 << 16
    let pageSize: Int
    let chunks: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    init(pageSize: Int) {
        self.pageSize = pageSize
        chunks = .allocate(capacity: Self.maxChunks)
        chunks.initialize(repeating: nil, count: Self.maxChunks)
    }

    deinit {
        for i in 0..<Self.maxChunks { chunks[i]?.deallocate() }
        chunks.deallocate()
    }

    /// REQUIRES: called under the pager lock.
    func ensure(_ number: PageNumber) throws {
        let chunk = Int(number) / Self.pagesPerChunk
        guard chunk < Self.maxChunks else { throw StorageError.limitExceeded("temporary pager shim is full") }
        if chunks[chunk] == nil {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: pageSize * Self.pagesPerChunk, alignment: 16)
            raw.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize * Self.pagesPerChunk)
            chunks[chunk] = raw
        }
    }

    func bytes(_ number: PageNumber) -> UnsafeMutableRawBufferPointer {
        let n = Int(number)
        let base = chunks[n / Self.pagesPerChunk]! + (n % Self.pagesPerChunk) * pageSize
        return UnsafeMutableRawBufferPointer(start: base, count: pageSize)
    }
}

struct ShimPagerState {
    var committed: CommittedState
    var pageCount: UInt64 = 2
    var free: [PageNumber] = []
    /// Pages freed by the commit that produced transaction id `freedBy`; visible to snapshots with id < freedBy.
    var pending: [(freedBy: UInt64, pages: [PageNumber])] = []
    var readers: [UInt64: Int] = [:]
    var writerOpen = false
    var writerAllocated: Set<PageNumber> = []
    var closed = false

    mutating func reclaim() {
        let oldest = readers.keys.min() ?? UInt64.max
        while let first = pending.first, first.freedBy <= oldest {
            free.append(contentsOf: first.pages)
            pending.removeFirst()
        }
    }
}

package final class Pager: @unchecked Sendable {
    package static let treeSlotCount = 8
    package let pageSize: Int
    let path: String
    let arena: ShimPageArena
    let lock: Mutex<ShimPagerState>
    /// Mirror of the page count for lock-free bounds checks in `page(_:)`.
    let publishedPageCount = Atomic<UInt64>(2)

    init(path: String, pageSize: Int) {
        self.path = path
        self.pageSize = pageSize
        arena = ShimPageArena(pageSize: pageSize)
        lock = Mutex(ShimPagerState(committed: CommittedState()))
    }

    package static func create(fileSystem: any FileSystem, path: String, pageSize: Int, cacheBytes: Int) throws -> Pager {
        guard pageSize >= 4096, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            throw StorageError.invalidArgument("page size \(pageSize) must be a power of two in 4096...65536")
        }
        return Pager(path: path, pageSize: pageSize)
    }

    package static func open(fileSystem: any FileSystem, path: String, cacheBytes: Int) throws -> Pager {
        throw StorageError.invalidArgument("the temporary in-memory pager shim cannot reopen \(path)")
    }

    package var committedState: CommittedState { lock.withLock { $0.committed } }

    package func beginRead() -> PageTransaction {
        let state = lock.withLock { s -> CommittedState in
            s.readers[s.committed.transactionID, default: 0] += 1
            return s.committed
        }
        return PageTransaction(pager: self, writable: false, state: state)
    }

    package func beginWrite() throws -> PageTransaction {
        let state = try lock.withLock { s -> CommittedState in
            guard !s.closed else { throw StorageError.closed }
            guard !s.writerOpen else { throw StorageError.invalidArgument("another write transaction is open") }
            s.writerOpen = true
            s.reclaim()
            return s.committed
        }
        return PageTransaction(pager: self, writable: true, state: state)
    }

    package func checkpoint() throws {
        try lock.withLock { s in
            guard !s.writerOpen else { throw StorageError.invalidArgument("checkpoint with an open write transaction") }
        }
    }

    package var statistics: PagerStatistics {
        lock.withLock { s in
            var st = PagerStatistics()
            st.pageCount = s.pageCount
            st.freePages = UInt64(s.free.count + s.pending.reduce(0) { $0 + $1.pages.count })
            return st
        }
    }

    package func close() throws { lock.withLock { $0.closed = true } }

    package func pageAccounting() -> PageAccounting {
        lock.withLock { s in
            var free = s.free
            for p in s.pending { free.append(contentsOf: p.pages) }
            free.append(contentsOf: s.writerAllocated)
            return PageAccounting(pageCount: s.pageCount, freePages: free.sorted(), freeListPages: [])
        }
    }

    // MARK: internal, used by PageTransaction

    func allocate() throws -> PageNumber {
        let number = try lock.withLock { s -> PageNumber in
            let n: PageNumber
            if let reused = s.free.popLast() {
                n = reused
            } else {
                n = s.pageCount
                try arena.ensure(n)
                s.pageCount += 1
                publishedPageCount.store(s.pageCount, ordering: .releasing)
            }
            s.writerAllocated.insert(n)
            return n
        }
        let bytes = arena.bytes(number)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        bytes.storeLE(number, at: 8)
        return number
    }

    func releaseOwned(_ number: PageNumber) {
        lock.withLock { s in
            s.writerAllocated.remove(number)
            s.free.append(number)
        }
    }

    func finishWrite(commit: Bool, state: CommittedState, freed: [PageNumber]) {
        lock.withLock { s in
            if commit {
                var next = state
                next.transactionID = s.committed.transactionID + 1
                s.committed = next
                if !freed.isEmpty { s.pending.append((next.transactionID, freed)) }
            } else {
                s.free.append(contentsOf: s.writerAllocated)
            }
            s.writerAllocated.removeAll(keepingCapacity: true)
            s.writerOpen = false
            s.reclaim()
        }
    }

    func endRead(_ id: UInt64) {
        lock.withLock { s in
            if let c = s.readers[id] {
                if c <= 1 { s.readers[id] = nil } else { s.readers[id] = c - 1 }
            }
            s.reclaim()
        }
    }
}

/// A transaction over the pager: a read snapshot or the write transaction.
/// Not safe to use from two threads at once; may be handed between threads.
package final class PageTransaction: @unchecked Sendable {
    package let isWritable: Bool
    package var state: CommittedState
    let pager: Pager
    let snapshotID: UInt64
    var finished = false
    var owned: Set<PageNumber> = []
    var freedCommitted: [PageNumber] = []

    init(pager: Pager, writable: Bool, state: CommittedState) {
        self.pager = pager
        self.isWritable = writable
        self.state = state
        self.snapshotID = state.transactionID
    }

    deinit { if !finished { rollback() } }

    package func page(_ number: PageNumber) throws -> PageRef {
        let count = pager.publishedPageCount.load(ordering: .acquiring)
        guard number >= 2, number < count else {
            throw StorageError.corrupted(file: pager.path, offset: number &* UInt64(pager.pageSize), reason: "page number \(number) out of range")
        }
        let bytes = pager.arena.bytes(number)
        guard bytes.loadLE(UInt64.self, at: 8) == number else {
            throw StorageError.corrupted(file: pager.path, offset: number * UInt64(pager.pageSize), reason: "page header names another page")
        }
        return PageRef(bytes: UnsafeRawBufferPointer(bytes))
    }

    package func isOwned(_ number: PageNumber) -> Bool { owned.contains(number) }

    package func allocatePage() throws -> PageNumber {
        guard isWritable, !finished else { throw StorageError.invalidArgument("allocatePage outside a write transaction") }
        let n = try pager.allocate()
        owned.insert(n)
        return n
    }

    package func mutablePage(_ number: PageNumber) throws -> MutablePageRef {
        guard isWritable, !finished, owned.contains(number) else {
            throw StorageError.invalidArgument("mutablePage(\(number)) of a page this transaction does not own")
        }
        return MutablePageRef(bytes: pager.arena.bytes(number))
    }

    package func freePage(_ number: PageNumber) throws {
        guard isWritable, !finished else { throw StorageError.invalidArgument("freePage outside a write transaction") }
        if owned.remove(number) != nil {
            pager.releaseOwned(number)
        } else {
            freedCommitted.append(number)
        }
    }

    package func commit() throws {
        guard isWritable, !finished else { throw StorageError.invalidArgument("commit of a read or finished transaction") }
        finished = true
        pager.finishWrite(commit: true, state: state, freed: freedCommitted)
    }

    package func rollback() {
        guard !finished else { return }
        finished = true
        if isWritable {
            pager.finishWrite(commit: false, state: state, freed: [])
        } else {
            pager.endRead(snapshotID)
        }
    }
}

/// A pinned, read-only view of one page.
package struct PageRef: ~Copyable {
    package let bytes: UnsafeRawBufferPointer
    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    deinit {}
}

/// A mutable view of a page owned by the write transaction.
package struct MutablePageRef: ~Copyable {
    package let bytes: UnsafeMutableRawBufferPointer
    init(bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
    deinit {}
}
