import ScrollbackIO
import ScrollbackFormat
import Synchronization

/// What a cache frame holds.
enum FrameKind: UInt8 {
    /// No memory allocated for this slot.
    case vacant
    /// Memory allocated, holds nothing, on the free-frame list.
    case free
    /// Reserved by a cache miss that is reading the page file into it (not in the map).
    case reading
    /// Holds a page whose bytes equal the page file: evictable when unpinned.
    case clean
    /// Holds bytes not on disk (a page allocated since the last checkpoint, or such a page
    /// freed but still visible to a snapshot): never evicted.
    case dirty
    /// Dropped from the map while pinned; becomes reusable once unpinned.
    case orphan
}

struct Frame {
    var base: UnsafeMutableRawPointer?
    var page: PageNumber = 0
    var kind: FrameKind = .vacant
    /// CLOCK reference bit: set on every hit under the lock, cleared by the sweeping hand
    /// (lock-free hits set the bit in frame memory instead: `FrameMemory.markReferenced`).
    var referenced = false
}

struct CacheState {
    var map = PageMap<Int32>()
    var frames: [Frame] = []
    var freeFrames: [Int32] = []
    var vacantFrames: [Int32] = []
    var allocatedFrames = 0
    var dirtyFrames = 0
    var clockHand = 0
    /// Every pin-slot block ever handed to a transaction (checked before evicting a frame).
    var slotBlocks: [PinSlots] = []
    var hits: UInt64 = 0
    var misses: UInt64 = 0
    var evictions: UInt64 = 0
    /// Frames the CLOCK hand has passed, over the cache's life (statistics and tests).
    var sweptFrames: UInt64 = 0
}

/// The page cache: frames of page memory, a map page number → frame, CLOCK eviction of
/// clean unpinned frames, and pin counts stored next to each frame's bytes.
///
/// Invariants (under the mutex): a page is in the map at most once; a mapped frame is
/// `clean` or `dirty`; `dirty` frames are never evicted; a frame whose pin count is non-zero
/// is never evicted or reused. The capacity is a soft bound: when every frame is dirty or
/// pinned the cache grows, and `trim()` shrinks it back once frames become clean.
///
/// Thread-safety: every method is safe from any thread; one `Lock` guards the map and the
/// frame table. Lock order: the pager's core lock may be held while calling in here, never
/// the other way round.
///
/// **Lock-free hits.** Beside the map, a direct-mapped *hint table* of atomic words
/// `page << 32 | (frame index + 1)` (0 = empty; one slot per page number hash, a newer hint
/// replaces an older one) and a table of frame addresses by index let a hit skip the lock:
/// the reader loads the hint, stores the frame's address into one of its transaction's pin
/// slots (sequentially consistent), then loads the hint and the frame address again and
/// uses the frame only if both are unchanged; otherwise it empties the slot and takes the
/// locked path. Every change that could give a mapped frame other bytes (eviction, `release`
/// for `drop`/`installNewPage`/a lost load race, `trim`) first removes the frame's hint with a
/// sequentially consistent compare-exchange and only then checks the pins (also sequentially
/// consistent). Either the reader sees the hint gone, or the evictor sees the pin: a frame
/// is never reused under a reader that validated it (the store-load order of both sides is
/// the point; relaxed or acquire-release ordering would allow both to miss). Hints are
/// installed (release store) only under the lock, for a mapped frame a transaction asked for
/// through the cache (a committed page, or a page the writer freed and reads again; a
/// writer's own new pages are reached through its own map and never get one — a freed page
/// it allocates again is filled in place, hint or not, but no reader can ask for it). The hit sets the frame's reference bit in frame memory (`FrameMemory.markReferenced`)
/// and counts itself in the transaction's pin-slot block (`hits` sums them), so it writes
/// no shared cache line when the bit is already set.
final class PageCache: @unchecked Sendable {
    let pageSize: Int
    let capacityFrames: Int
    let state = Lock(CacheState())
    /// Hint table (see "Lock-free hits"): `hintMask + 1` words, a power of two.
    private let hints: UnsafeMutablePointer<Atomic<UInt64>>
    private let hintMask: Int
    /// Frame address by frame index (0 while the index has no memory), for indexes below
    /// `hintedFrameLimit`; frames above it (a cache grown far past its capacity) get no hints.
    private let frameAddresses: UnsafeMutablePointer<Atomic<UInt>>
    private let hintedFrameLimit: Int

    init(pageSize: Int, capacityFrames: Int) {
        self.pageSize = pageSize
        self.capacityFrames = capacityFrames
        var hintCount = 64
        while hintCount < capacityFrames && hintCount < 1 << 16 { hintCount <<= 1 }
        hints = .allocate(capacity: hintCount)
        for i in 0..<hintCount { (hints + i).initialize(to: Atomic(0)) }
        hintMask = hintCount - 1
        hintedFrameLimit = min(max(2 * capacityFrames, 64), 1 << 20)
        frameAddresses = .allocate(capacity: hintedFrameLimit)
        for i in 0..<hintedFrameLimit { (frameAddresses + i).initialize(to: Atomic(0)) }
    }

    deinit {
        let pageSize = self.pageSize
        defer {
            hints.deinitialize(count: hintMask + 1)
            hints.deallocate()
            frameAddresses.deinitialize(count: hintedFrameLimit)
            frameAddresses.deallocate()
        }
        state.withLock { state in
            for frame in state.frames {
                // A frame still pinned here is a PageRef that outlived its pager: leak it
                // rather than free memory a caller can still read.
                if let base = frame.base, !isPinned(state, base) {
                    FrameMemory.deallocate(base, pageSize: pageSize)
                }
            }
            // Likewise a block with a slot still set belongs to a live PageRef: leak it.
            for block in state.slotBlocks where !block.anySlotSet { block.deallocate() }
        }
    }

    // MARK: Pin slots

    /// A new pin-slot block, known to the cache from now on (`isPinned` checks every block).
    /// The pager keeps the blocks of ended transactions and hands them out again; this is
    /// called only when it has none free.
    func makePinSlots() -> PinSlots {
        let block = PinSlots.allocate()
        state.withLock { $0.slotBlocks.append(block) }
        return block
    }

    /// True if a reference pins the frame at `base`: its pin count or any pin slot.
    /// Complexity: O(transactions · PinSlots.count); called only when evicting or dropping.
    private func isPinned(_ state: borrowing CacheState, _ base: UnsafeMutableRawPointer) -> Bool {
        if FrameMemory.isPinned(base, pageSize: pageSize) { return true }
        for block in state.slotBlocks where block.contains(base) { return true }
        return false
    }

    // MARK: Hot path

    /// Pins and returns the frame of `page` if it is cached. With a hint for it (see
    /// "Lock-free hits"): no lock — a few atomic loads (hint, frame address, a free pin slot,
    /// then hint and address again), a sequentially consistent store into the pin slot, the
    /// reference bit and the transaction's hit count. Otherwise one lock, one hash lookup, one store into a pin slot of `slots`
    /// (or an atomic increment if they are all in use), and the page gets a hint.
    @inline(__always)
    func pinCached(_ page: PageNumber, slots: PinSlots) -> (UnsafeMutableRawPointer, PinToken)? {
        if let hit = pinHinted(page, slots: slots) { return hit }
        return pinLocked(page, slots: slots)
    }

    @inline(__always)
    private func hintSlot(_ page: PageNumber) -> UnsafeMutablePointer<Atomic<UInt64>> {
        hints + Int(truncatingIfNeeded: (page &* 0x9E37_79B9_7F4A_7C15) >> 32) & hintMask
    }

    /// The lock-free hit (see "Lock-free hits"); nil sends the caller to the locked path.
    @inline(__always)
    private func pinHinted(_ page: PageNumber, slots: PinSlots) -> (UnsafeMutableRawPointer, PinToken)? {
        let hint = hintSlot(page)
        let entry = hint.pointee.load(ordering: .acquiring)
        guard entry >> 32 == page, entry != 0 else { return nil }
        let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) &- 1
        guard index >= 0, index < hintedFrameLimit else { return nil }
        let address = frameAddresses[index].load(ordering: .acquiring)
        guard address != 0, let slot = slots.emptySlot() else { return nil }
        slot.pointee.store(address, ordering: .sequentiallyConsistent)
        guard hint.pointee.load(ordering: .sequentiallyConsistent) == entry,
              frameAddresses[index].load(ordering: .sequentiallyConsistent) == address
        else {
            slot.pointee.store(0, ordering: .releasing)
            return nil
        }
        let base = UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped
        FrameMemory.markReferenced(base, pageSize: pageSize)
        slots.countHit()
        return (base, .slot(slot))
    }

    @inline(never)
    private func pinLocked(_ page: PageNumber, slots: PinSlots) -> (UnsafeMutableRawPointer, PinToken)? {
        let pageSize = self.pageSize
        return state.withLock { state -> (UnsafeMutableRawPointer, PinToken)? in
            guard let index = state.map.find(page) else { return nil }
            let i = Int(index)
            state.frames[i].referenced = true
            state.hits &+= 1
            let base = state.frames[i].base.unsafelyUnwrapped
            setHint(page, i)
            if let token = slots.claim(for: base) { return (base, token) }
            FrameMemory.pin(base, pageSize: pageSize)
            return (base, .counter(base, pageSize: pageSize))
        }
    }

    /// Hints `page` at frame `i`. REQUIRES: the lock; the frame is mapped to `page` and its
    /// bytes are complete (a committed page).
    @inline(__always)
    private func setHint(_ page: PageNumber, _ i: Int) {
        guard page < 1 << 32, i < hintedFrameLimit else { return }
        let entry = page << 32 | UInt64(i + 1)
        let hint = hintSlot(page)
        if hint.pointee.load(ordering: .relaxed) != entry { hint.pointee.store(entry, ordering: .releasing) }
    }

    /// Removes the hint of frame `i` (holding `page`) if it has one, before the caller checks
    /// the frame's pins. REQUIRES: the lock.
    private func clearHint(_ page: PageNumber, _ i: Int) {
        guard page < 1 << 32, i < hintedFrameLimit else { return }
        _ = hintSlot(page).pointee.compareExchange(
            expected: page << 32 | UInt64(i + 1), desired: 0,
            successOrdering: .sequentiallyConsistent, failureOrdering: .sequentiallyConsistent)
    }

    // MARK: Misses

    /// Returns `page` pinned, reading it with `fill` on a miss. `fill` runs without the lock
    /// into a reserved frame and must verify the bytes (throwing leaves nothing cached).
    func load(_ page: PageNumber, fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws -> UnsafeMutableRawPointer {
        let pageSize = self.pageSize
        let reserved: (base: UnsafeMutableRawPointer, index: Int, hit: Bool) = state.withLock { state in
            if let index = state.map.find(page) {
                let base = state.frames[Int(index)].base.unsafelyUnwrapped
                state.frames[Int(index)].referenced = true
                state.hits &+= 1
                FrameMemory.pin(base, pageSize: pageSize)
                return (base, Int(index), true)
            }
            state.misses &+= 1
            let i = acquireFrame(&state)
            state.frames[i].kind = .reading
            state.frames[i].page = page
            let base = state.frames[i].base.unsafelyUnwrapped
            FrameMemory.pin(base, pageSize: pageSize)
            return (base, i, false)
        }
        if reserved.hit { return reserved.base }
        do {
            try fill(UnsafeMutableRawBufferPointer(start: reserved.base, count: pageSize))
        } catch {
            let reservedIndex = reserved.index
            state.withLock { state in
                FrameMemory.unpin(state.frames[reservedIndex].base.unsafelyUnwrapped, pageSize: pageSize)
                release(&state, reservedIndex)
            }
            throw error
        }
        let reservedIndex = reserved.index
        let other = state.withLock { state -> UnsafeMutableRawPointer? in
            if let index = state.map.find(page) {
                // Another thread loaded the page meanwhile: use its frame, give ours back.
                let ours = state.frames[reservedIndex].base.unsafelyUnwrapped
                FrameMemory.unpin(ours, pageSize: pageSize)
                release(&state, reservedIndex)
                let base = state.frames[Int(index)].base.unsafelyUnwrapped
                FrameMemory.pin(base, pageSize: pageSize)
                return base
            }
            state.frames[reservedIndex].kind = .clean
            state.frames[reservedIndex].referenced = true
            state.map.insert(page, Int32(reservedIndex))
            setHint(page, reservedIndex)
            return nil
        }
        return other ?? reserved.base
    }

    // MARK: Writer and checkpoint

    /// A dirty frame for a newly allocated `page`: zero-filled, page number set in the header,
    /// mapped (replacing any stale clean frame of the same page). Not pinned.
    func installNewPage(_ page: PageNumber) -> UnsafeMutableRawPointer {
        let base: UnsafeMutableRawPointer = state.withLock { state in
            if let index = state.map.remove(page) { release(&state, Int(index)) }
            let i = acquireFrame(&state)
            state.frames[i].page = page
            state.frames[i].referenced = false
            setKind(&state, i, .dirty)
            state.map.insert(page, Int32(i))
            return state.frames[i].base.unsafelyUnwrapped
        }
        // The frame is dirty (never evicted) and no reader can reach `page`: fill it unlocked.
        base.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
        UnsafeMutableRawBufferPointer(start: base, count: pageSize).storeLE(page, at: PageHeader.pageNumber)
        return base
    }

    /// Drops the frames of `pages` (no longer readable by anyone). Pinned frames are orphaned
    /// and reused once unpinned.
    func drop(_ pages: some Sequence<PageNumber>) {
        state.withLock { state in
            for page in pages {
                if let index = state.map.remove(page) { release(&state, Int(index)) }
            }
        }
    }

    /// The memory of a mapped dirty page (checkpoint writes it). Dirty frames are never
    /// evicted, so the pointer stays valid until `markClean`.
    func dirtyFrame(_ page: PageNumber) -> UnsafeMutableRawPointer? {
        state.withLock { state in
            guard let index = state.map.find(page), state.frames[Int(index)].kind == .dirty else { return nil }
            return state.frames[Int(index)].base
        }
    }

    /// Marks the frames of `pages` clean (their bytes are now in the page file).
    func markClean(_ pages: some Sequence<PageNumber>) {
        state.withLock { state in
            for page in pages {
                if let index = state.map.find(page), state.frames[Int(index)].kind == .dirty {
                    setKind(&state, Int(index), .clean)
                }
            }
        }
    }

    /// Shrinks the cache to its capacity by freeing unused frames and evicting clean ones.
    func trim() {
        let pageSize = self.pageSize
        state.withLock { state in
            while state.allocatedFrames > capacityFrames {
                let index: Int
                if let free = state.freeFrames.popLast() {
                    index = Int(free)
                } else if let evicted = evictOne(&state, skipLimit: .max) {
                    index = evicted
                } else {
                    break
                }
                if index < hintedFrameLimit { frameAddresses[index].store(0, ordering: .sequentiallyConsistent) }
                if let base = state.frames[index].base { FrameMemory.deallocate(base, pageSize: pageSize) }
                state.frames[index] = Frame()
                state.vacantFrames.append(Int32(index))
                state.allocatedFrames -= 1
            }
        }
    }

    struct Counters {
        var hits: UInt64, misses: UInt64, evictions: UInt64, dirtyBytes: Int, cachedBytes: Int, sweptFrames: UInt64
    }

    var counters: Counters {
        state.withLock { state in
            Counters(
                hits: state.slotBlocks.reduce(state.hits) { $0 &+ $1.hits }, misses: state.misses, evictions: state.evictions,
                dirtyBytes: state.dirtyFrames * pageSize, cachedBytes: state.allocatedFrames * pageSize,
                sweptFrames: state.sweptFrames)
        }
    }

    /// Pages currently mapped (tests).
    var cachedPages: [PageNumber] { state.withLock { $0.map.allKeys.sorted() } }

    // MARK: Frame table (call with the lock held)

    private func setKind(_ state: inout CacheState, _ i: Int, _ kind: FrameKind) {
        if state.frames[i].kind == .dirty { state.dirtyFrames -= 1 }
        if kind == .dirty { state.dirtyFrames += 1 }
        state.frames[i].kind = kind
    }

    /// Returns an unmapped frame with memory, for the caller to fill and set the kind of:
    /// a free frame, a new one while under capacity, an evicted clean one, or (all frames
    /// dirty or pinned) a new one over capacity.
    private func acquireFrame(_ state: inout CacheState) -> Int {
        if let i = state.freeFrames.popLast() { return Int(i) }
        if state.allocatedFrames < capacityFrames { return allocateFrame(&state) }
        if let i = evictOne(&state) { return i }
        return allocateFrame(&state)
    }

    private func allocateFrame(_ state: inout CacheState) -> Int {
        let base = FrameMemory.allocate(pageSize: pageSize)
        state.allocatedFrames += 1
        let index: Int
        if let slot = state.vacantFrames.popLast() {
            index = Int(slot)
            state.frames[index] = Frame(base: base, kind: .free)
        } else {
            state.frames.append(Frame(base: base, kind: .free))
            index = state.frames.count - 1
        }
        if index < hintedFrameLimit { frameAddresses[index].store(UInt(bitPattern: base), ordering: .releasing) }
        return index
    }

    /// CLOCK: sweeps at most two rounds for an unpinned clean (or orphaned) frame whose
    /// reference bit is clear, clearing bits on the way; unmaps it and returns its index.
    ///
    /// Bounded for caches full of dirty frames (a bulk load or a large transaction keeps every
    /// new page dirty until its checkpoint, and the cache grows past its capacity): no sweep
    /// at all when every allocated frame is dirty, and a sweep gives up (nil: the caller
    /// grows the cache by one frame) after passing `sweepSkipLimit` frames it could not
    /// evict — before, each new page swept the whole table twice, quadratic in the dirty
    /// frames (a 100M-message load spent hours there). Clean frames whose reference bit it
    /// clears do not count against the limit, so a cache of clean frames evicts as before.
    private func evictOne(_ state: inout CacheState, skipLimit: Int = PageCache.sweepSkipLimit) -> Int? {
        let n = state.frames.count
        guard n > 0, state.allocatedFrames > state.dirtyFrames else { return nil }
        var skipped = 0
        for step in 0..<(2 * n) {
            let i = state.clockHand
            state.clockHand = i + 1 == n ? 0 : i + 1
            let frame = state.frames[i]
            guard frame.kind == .clean || frame.kind == .orphan, let base = frame.base,
                  !isPinned(state, base)
            else {
                skipped += 1
                if skipped == skipLimit {
                    state.sweptFrames &+= UInt64(step + 1)
                    return nil
                }
                continue
            }
            // Either bit: the lock-free hits set the one in frame memory.
            if FrameMemory.takeReferenced(base, pageSize: pageSize) || frame.referenced {
                state.frames[i].referenced = false
                continue
            }
            if frame.kind == .clean {
                // The hint goes first, then the pins are checked again (see "Lock-free hits").
                clearHint(frame.page, i)
                if isPinned(state, base) {
                    skipped += 1
                    if skipped == skipLimit {
                        state.sweptFrames &+= UInt64(step + 1)
                        return nil
                    }
                    continue
                }
            }
            state.sweptFrames &+= UInt64(step + 1)
            if frame.kind == .clean {
                state.map.remove(frame.page)
                state.evictions &+= 1
            }
            state.frames[i].kind = .free
            return i
        }
        state.sweptFrames &+= UInt64(2 * n)
        return nil
    }

    /// How many frames that cannot be evicted (dirty, pinned, being read) one eviction sweep
    /// passes before it gives up.
    static let sweepSkipLimit = 1024

    /// Returns an unmapped frame to the free list, or orphans it while it is pinned.
    private func release(_ state: inout CacheState, _ i: Int) {
        guard let base = state.frames[i].base else { return }
        clearHint(state.frames[i].page, i)
        if isPinned(state, base) {
            setKind(&state, i, .orphan)
        } else {
            setKind(&state, i, .free)
            state.freeFrames.append(Int32(i))
        }
    }
}
