import ScrollbackFormat
import Synchronization

/// A transaction over the pager: a read snapshot or the single write transaction.
///
/// Readers see the committed state of the moment they began until they end: pages their
/// state references are not reused while they live. (A reader ended with `Pager.endRead`
/// may be handed out again as a new snapshot; its state is changed only by the pager.) Writers see the latest committed state plus
/// their own changes; they copy pages on write (`allocatePage`, fill, `freePage(old)`).
///
/// Thread-safety: not safe to use from two threads at once; may be handed between threads
/// (which is why its stored properties skip the run-time exclusivity check).
/// `PageRef`s it returns are valid only while the transaction is open.
package final class PageTransaction: @unchecked Sendable {
    package let isWritable: Bool
    /// Readers: the snapshot. Writer: starts as the latest committed state (with
    /// `transactionID` already set to this transaction's id); the layer above updates the
    /// trees, counters and log position; `commit()` publishes it. (Exclusivity is not checked
    /// at run time: one thread at a time uses a transaction, and every read of a tree root
    /// would otherwise pay a dynamic access check.) Readers never change it: a pooled reader
    /// keeps its state for a later snapshot of the same transaction id (`Pager.beginRead`).
    @exclusivity(unchecked) package var state: CommittedState
    /// Reader: the snapshot's id (its state's transaction id). Writer: this transaction's id.
    /// (Set again when the pager hands out a recycled reader: `reopen`.) Read through an
    /// accessor from the layers above: `@exclusivity(unchecked)` holds only inside this module,
    /// and a read of the stored property from another module would pay a dynamic access check.
    package var id: UInt64 { storedID }
    @exclusivity(unchecked) private var storedID: UInt64
    /// The pager, without reference counting on the hot path; `pagerLifetime` keeps it alive
    /// while the transaction is open (a finished reader waiting in the pager's pool of readers
    /// holds no strong reference, so the pool makes no cycle).
    unowned(unsafe) let pager: Pager
    /// `pager` for the page lookup, used at +0 (`_withUnsafeGuaranteedRef`): reading an
    /// `unowned(unsafe)` reference retains and releases it around the call.
    private let pagerHandle: Unmanaged<Pager>
    @exclusivity(unchecked) private var pagerLifetime: Pager?
    package let pageSize: Int
    @exclusivity(unchecked) private var finished = false
    /// This transaction's pin slots: a reader's go back to the pager when it ends, a writer's
    /// on deinit; a pooled reader keeps its own (they go back when it deinits).
    let pinSlots: PinSlots
    /// Readers from `Pager.beginRead` may go to the pager's pool (`Pager.endRead`).
    let isPoolable: Bool
    /// A pooled reader's registration word in the pager's `ReaderRegistry` (its snapshot is
    /// registered there, not in the pager's `SnapshotCounts`); -1 for other transactions.
    @exclusivity(unchecked) var registryIndex = -1
    /// Writer: pages allocated by this transaction and not freed again → their frames.
    @exclusivity(unchecked) private var owned = PageMap<UnsafeMutableRawPointer>()
    /// Writer: pages it allocated and freed again (reused first by `allocatePage`).
    @exclusivity(unchecked) private var localFree: [(page: PageNumber, base: UnsafeMutableRawPointer)] = []
    /// Writer: committed pages it freed.
    @exclusivity(unchecked) private var freed: [PageNumber] = []
    @exclusivity(unchecked) private var freedSet = Set<PageNumber>()

    init(pager: Pager, reading state: CommittedState, pinSlots: PinSlots, poolable: Bool = false) {
        self.pager = pager
        self.pagerHandle = Unmanaged.passUnretained(pager)
        self.pagerLifetime = pager
        self.isPoolable = poolable
        self.pageSize = pager.pageSize
        self.isWritable = false
        self.state = state
        self.storedID = state.transactionID
        self.pinSlots = pinSlots
    }

    init(pager: Pager, writing state: CommittedState, pinSlots: PinSlots) {
        self.pager = pager
        self.pagerHandle = Unmanaged.passUnretained(pager)
        self.pagerLifetime = pager
        self.isPoolable = false
        self.pageSize = pager.pageSize
        self.isWritable = true
        self.state = state
        self.storedID = state.transactionID
        self.pinSlots = pinSlots
    }

    deinit {
        // A pooled reader (finished, `pagerLifetime` nil) touches nothing: its pager may be
        // gone (the pool is released with the pager).
        if !finished { rollback() }
        if isWritable {
            pager.returnPinSlots(pinSlots)
        } else if registryIndex >= 0, let pager = pagerLifetime {
            pager.retireRegisteredReader(registryIndex, pinSlots: pinSlots)
        }
    }

    /// A finished reader from the pager's pool starts a new snapshot (`Pager.beginRead`, which
    /// registered `state`'s id). REQUIRES: a finished read transaction no one else references.
    func reopen(pager: Pager, state: CommittedState) {
        self.state = state
        self.storedID = state.transactionID
        self.pagerLifetime = pager
        self.finished = false
    }

    /// A finished reader from the pager's pool starts a new snapshot of the state it holds
    /// (`Pager.beginRead` registered that state's id, still the committed one).
    func reopen(pager: Pager) {
        self.pagerLifetime = pager
        self.finished = false
    }

    /// Ends a reader for the pool (`Pager.endRead`): finished, no strong reference to the
    /// pager. The caller ends the snapshot's registration.
    func finishForPool() {
        finished = true
        pagerLifetime = nil
    }

    /// True once `commit()` or `rollback()` ended the transaction.
    package var isFinished: Bool { finished }

    // MARK: Reading

    /// The catalog entry of tree `slot` in `state` (nil for a slot out of range). For the
    /// layers above: their reads of `state` pay a dynamic exclusivity check each (the
    /// `@exclusivity(unchecked)` above holds only inside this module), this call does not.
    package func treeRoot(_ slot: Int) -> TreeRoot? {
        slot >= 0 && slot < state.trees.count ? state.trees[slot] : nil
    }

    /// Read view of page `number`, pinned while the `PageRef` lives. A writer sees its own new
    /// pages. On a cache miss the page is read and its checksum, page number and write
    /// sequence verified; damage throws `.corrupted(file:, offset: number * pageSize, reason:)`,
    /// as does a page number outside the page space.
    /// Cost on a hit: for a page the cache has hinted (any committed page read before while
    /// its frame stayed), no lock: three atomic loads and one store into a pin slot; else
    /// one lock, one hash lookup, one store into a pin slot (no atomic read-modify-write
    /// while fewer than 16 references of this transaction are alive). A writer's own pages
    /// need neither lock nor pin.
    @inline(__always)
    package func page(_ number: PageNumber) throws -> PageRef {
        if isWritable, let base = owned.find(number) {
            return PageRef(frame: base, pageSize: pageSize, pin: .none)
        }
        if finished { throw StorageError.invalidArgument("page(\(number)) on a finished transaction") }
        let slots = pinSlots
        let (base, pin) = try pagerHandle._withUnsafeGuaranteedRef { try $0.pinPage(number, slots: slots) }
        return PageRef(frame: base, pageSize: pageSize, pin: pin)
    }

    /// True if `number` was allocated by this (write) transaction, i.e. may be modified in place.
    package func isOwned(_ number: PageNumber) -> Bool {
        isWritable && owned.find(number) != nil
    }

    // MARK: Writing

    /// A new page owned by this transaction: zero-filled except the page number (header +8).
    /// Reuses a page freed earlier (see the reuse rule on `Pager`) or extends the page space.
    /// REQUIRES: a write transaction that is open.
    package func allocatePage() throws -> PageNumber {
        try checkWritable("allocatePage")
        if let (page, base) = localFree.popLast() {
            base.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
            UnsafeMutableRawBufferPointer(start: base, count: pageSize).storeLE(page, at: PageHeader.pageNumber)
            owned.insert(page, base)
            return page
        }
        let page = try pager.allocatePageNumber(writer: id)
        let base = pager.cache.installNewPage(page)
        owned.insert(page, base)
        return page
    }

    /// Writable view of a page this transaction allocated.
    /// REQUIRES: `isOwned(number)` (throws `.invalidArgument` otherwise).
    package func mutablePage(_ number: PageNumber) throws -> MutablePageRef {
        guard isWritable, !finished, let base = owned.find(number) else {
            throw StorageError.invalidArgument("mutablePage(\(number)): page is not owned by an open write transaction")
        }
        return MutablePageRef(frame: base, pageSize: pageSize)
    }

    /// `number` is no longer referenced by this transaction's state. A page this transaction
    /// allocated is reusable at once (no one else ever saw it); a committed page is reused
    /// only after no snapshot can see it (and, if it is on disk, after the next checkpoint).
    /// REQUIRES: an open write transaction; `number` is a page of the state, freed once
    /// (a second free of the same page throws `.invalidArgument`).
    package func freePage(_ number: PageNumber) throws {
        try checkWritable("freePage")
        if let base = owned.remove(number) {
            localFree.append((number, base))
            return
        }
        guard number >= PageFileLayout.metaPageCount, number < pager.pageCountBound.load(ordering: .relaxed) else {
            throw StorageError.invalidArgument("freePage(\(number)): outside the page space")
        }
        guard freedSet.insert(number).inserted else {
            throw StorageError.invalidArgument("freePage(\(number)): freed twice in one transaction")
        }
        freed.append(number)
    }

    /// Publishes `state` to new snapshots (in memory; durability is the log's and the next
    /// checkpoint's job). REQUIRES: an open write transaction; `state` has 8 trees and 8
    /// counters (throws `.invalidArgument`).
    package func commit() throws {
        try checkWritable("commit")
        guard state.trees.count == PageFileLayout.treeSlotCount, state.counters.count == PageFileLayout.counterCount else {
            throw StorageError.invalidArgument(
                "commit: state needs \(PageFileLayout.treeSlotCount) trees and \(PageFileLayout.counterCount) counters")
        }
        for (slot, tree) in state.trees.enumerated() {
            guard tree.rootPage == 0 || (tree.rootPage >= PageFileLayout.metaPageCount && tree.rootPage < pager.pageCountBound.load(ordering: .relaxed)),
                  (tree.rootPage == 0) == (tree.height == 0), tree.keyWords <= 4, tree.valueSize <= 1024
            else { throw StorageError.invalidArgument("commit: tree slot \(slot) is invalid: \(tree)") }
        }
        state.transactionID = id
        try pager.commitWriter(id: id, state: state, freed: freed, localFree: localFree.map(\.page))
        finished = true
        owned.removeAll()
        localFree.removeAll()
    }

    /// Writers: discards every change. Readers: ends the snapshot. Idempotent.
    package func rollback() {
        guard !finished else { return }
        finished = true
        if isWritable {
            pager.rollbackWriter(id: id)
            owned.removeAll()
            localFree.removeAll()
        } else if registryIndex >= 0 {
            pager.registry.unregister(registryIndex)
        } else {
            pager.endSnapshot(id, pinSlots: pinSlots)
        }
    }

    private func checkWritable(_ operation: String) throws {
        guard isWritable else { throw StorageError.invalidArgument("\(operation) on a read transaction") }
        guard !finished else { throw StorageError.invalidArgument("\(operation) on a finished transaction") }
    }
}
