/// A map from 64-bit integer keys to values: open addressing with linear probing, at most
/// half full, a key's first slot chosen by Fibonacci hashing (the key times 2⁶⁴/φ, the top
/// bits). For the engine's small tables keyed by numbers it makes itself (run ids, segment
/// ids, block numbers), looked up on every read.
///
/// Why not `Dictionary`: it hashes every key with seeded SipHash (a hasher set up, fed and
/// finalized per lookup). The block cache's and the run tables' lookups, one each per read,
/// spent about 2.5% of the borrowing latest-20 read in `Hasher` and the dictionary's probe
/// (`perf`). The keys here are not chosen by users, so a hash that an adversary could flood
/// is not a concern.
///
/// Lookup, insert and removal are O(1) expected (removal shifts the following run of the
/// cluster back: no tombstones); growth doubles and reinserts. Memory: 8 bytes per slot plus
/// an optional value per slot. Iteration order is unspecified.
///
/// Not thread-safe: a value type; callers that share one guard it (e.g. with `Lock`).
///
/// The type is public (its members are not, but its iteration is) only so that the modules
/// above get its `@inlinable` code specialized and inlined: Swift 6.3 emits the inlinable
/// bodies of a package type's members into no client module, and the unspecialized generic
/// code, passed the value type's metadata on every lookup, made a read slower than with
/// `Dictionary`.
public struct IntegerMap<Value> {
    @usableFromInline var slotKeys: [UInt64] = []
    /// nil: the slot is empty (then its key is meaningless).
    @usableFromInline var slotValues: [Value?] = []
    /// 64 − log₂(slot count); the top bits of the product pick a key's first slot.
    @usableFromInline var shift: UInt64 = 64
    @usableFromInline var storedCount = 0

    @inlinable package var count: Int { storedCount }

    @inlinable package init() {}

    @inlinable package var isEmpty: Bool { count == 0 }

    @inlinable @inline(__always)
    func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The slot holding `key`, or nil.
    @inlinable @inline(__always)
    func slot(of key: UInt64) -> Int? {
        guard storedCount > 0 else { return nil }
        let mask = slotValues.count - 1
        var i = home(key)
        while slotValues[i] != nil {
            if slotKeys[i] == key { return i }
            i = (i + 1) & mask
        }
        return nil
    }

    /// The value of `key`; setting nil removes it.
    @inlinable package subscript(key: UInt64) -> Value? {
        @inline(__always) get {
            guard let i = slot(of: key) else { return nil }
            return slotValues[i]
        }
        set {
            if let newValue {
                insert(key, newValue)
            } else {
                remove(key)
            }
        }
    }

    /// `key`'s value, or `defaultValue` when it has none.
    @inlinable package subscript(key: UInt64, default defaultValue: @autoclosure () -> Value) -> Value {
        self[key] ?? defaultValue()
    }

    @inlinable package func contains(_ key: UInt64) -> Bool { slot(of: key) != nil }

    /// Sets `key`'s value (adding the key if it is new).
    @inlinable package mutating func insert(_ key: UInt64, _ value: Value) {
        if let i = slot(of: key) {
            slotValues[i] = value
            return
        }
        if (storedCount + 1) * 2 > slotValues.count { grow() }
        place(key, value)
        storedCount += 1
    }

    /// Removes `key` and returns its value (nil if absent).
    @inlinable @discardableResult
    package mutating func remove(_ key: UInt64) -> Value? {
        guard var hole = slot(of: key) else { return nil }
        let removed = slotValues[hole]
        let mask = slotValues.count - 1
        // Backward shift: each later key of the cluster whose first slot does not lie
        // cyclically in (hole, i] moves into the hole, which then moves to where it was.
        var i = (hole + 1) & mask
        while slotValues[i] != nil {
            if (i &- home(slotKeys[i])) & mask >= (i &- hole) & mask {
                slotKeys[hole] = slotKeys[i]
                slotValues[hole] = slotValues[i]
                hole = i
            }
            i = (i + 1) & mask
        }
        slotValues[hole] = nil
        storedCount -= 1
        return removed
    }

    /// Removes every key; keeps the slots.
    @inlinable package mutating func removeAll() {
        for i in slotValues.indices { slotValues[i] = nil }
        storedCount = 0
    }

    /// Every key, in unspecified order.
    package var keys: [UInt64] { map { $0.key } }

    /// Every value, in unspecified order.
    package var values: [Value] { map { $0.value } }

    /// REQUIRES: `key` absent and a free slot.
    @inlinable
    mutating func place(_ key: UInt64, _ value: Value) {
        let mask = slotValues.count - 1
        var i = home(key)
        while slotValues[i] != nil { i = (i + 1) & mask }
        slotKeys[i] = key
        slotValues[i] = value
    }

    @usableFromInline
    mutating func grow() {
        let oldKeys = slotKeys, oldValues = slotValues
        let slots = Swift.max(16, slotValues.count * 2)
        slotKeys = Array(repeating: 0, count: slots)
        slotValues = Array(repeating: nil, count: slots)
        shift = UInt64(64 - slots.trailingZeroBitCount)
        for (i, value) in oldValues.enumerated() {
            if let value { place(oldKeys[i], value) }
        }
    }
}

extension IntegerMap: Sequence {
    public struct Iterator: IteratorProtocol {
        fileprivate let slotKeys: [UInt64]
        fileprivate let slotValues: [Value?]
        fileprivate var position = 0

        public mutating func next() -> (key: UInt64, value: Value)? {
            while position < slotValues.count {
                defer { position += 1 }
                if let value = slotValues[position] { return (slotKeys[position], value) }
            }
            return nil
        }
    }

    /// Iterates over a snapshot: the map may be changed meanwhile (value semantics).
    public func makeIterator() -> Iterator { Iterator(slotKeys: slotKeys, slotValues: slotValues) }

    public var underestimatedCount: Int { count }
}

extension IntegerMap: Sendable where Value: Sendable {}
