/// An open-addressing hash map from page number to a small value, used by the page cache
/// (page → frame index) and by the write transaction (page → frame memory).
///
/// Linear probing with a Fibonacci hash of the page number, load factor at most 1/2,
/// backward-shift deletion (no tombstones). `UInt64.max` marks an empty slot, so it is not a
/// valid key (page numbers are far below it).
///
/// Complexity: expected O(1) per operation. Not thread-safe: guarded by its owner. An empty
/// map allocates nothing (every read snapshot holds one it never fills); the first insert
/// allocates 16 slots.
package struct PageMap<Value> {
    private static var emptyKey: UInt64 { .max }
    private var keys: [UInt64] = []
    private var values: [Value?] = []
    private var shift: UInt64 = 64 - 4
    package private(set) var count = 0

    package init() {}

    private var mask: Int { keys.count - 1 }

    @inline(__always)
    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// The value stored for `key`, or nil.
    @inline(__always)
    package func find(_ key: UInt64) -> Value? {
        if count == 0 { return nil }
        return keys.withUnsafeBufferPointer { keys -> Value? in
            let mask = keys.count - 1
            var i = home(key)
            while true {
                let k = keys[i]
                if k == key { return values[i] }
                if k == Self.emptyKey { return nil }
                i = (i + 1) & mask
            }
        }
    }

    package func contains(_ key: UInt64) -> Bool { find(key) != nil }

    /// Inserts or replaces the value for `key`.
    package mutating func insert(_ key: UInt64, _ value: Value) {
        assert(key != Self.emptyKey)
        if keys.isEmpty {
            keys = Array(repeating: Self.emptyKey, count: 16)
            values = Array(repeating: nil, count: 16)
            shift = 64 - 4
        }
        if (count + 1) * 2 > keys.count { grow() }
        var i = home(key)
        while true {
            let k = keys[i]
            if k == key { values[i] = value; return }
            if k == Self.emptyKey {
                keys[i] = key
                values[i] = value
                count += 1
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Removes `key`; returns its value, or nil if it was absent.
    @discardableResult
    package mutating func remove(_ key: UInt64) -> Value? {
        if count == 0 { return nil }
        var i = home(key)
        while true {
            let k = keys[i]
            if k == Self.emptyKey { return nil }
            if k == key { break }
            i = (i + 1) & mask
        }
        let removed = values[i]
        // Backward-shift: pull later entries of the probe run into the hole when their home
        // slot does not lie cyclically in (hole, position].
        var hole = i
        var j = i
        while true {
            j = (j + 1) & mask
            let k = keys[j]
            if k == Self.emptyKey { break }
            let h = home(k)
            let inRange = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j)
            if !inRange {
                keys[hole] = k
                values[hole] = values[j]
                hole = j
            }
        }
        keys[hole] = Self.emptyKey
        values[hole] = nil
        count -= 1
        return removed
    }

    /// Every key (unordered).
    package var allKeys: [UInt64] { keys.filter { $0 != Self.emptyKey } }

    /// Every (key, value) pair (unordered).
    package var allEntries: [(key: UInt64, value: Value)] {
        var result: [(key: UInt64, value: Value)] = []
        result.reserveCapacity(count)
        for i in keys.indices where keys[i] != Self.emptyKey {
            if let value = values[i] { result.append((keys[i], value)) }
        }
        return result
    }

    package mutating func removeAll() { self = PageMap() }

    private mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        let newCapacity = keys.count * 2
        keys = Array(repeating: Self.emptyKey, count: newCapacity)
        values = Array(repeating: nil, count: newCapacity)
        shift -= 1
        count = 0
        for i in oldKeys.indices where oldKeys[i] != Self.emptyKey {
            if let value = oldValues[i] { insert(oldKeys[i], value) }
        }
    }
}

/// A binary min-heap of page numbers: the pool of reusable pages. Allocation takes the lowest
/// page so the page file stays compact. Complexity: O(log n) push/pop.
package struct FreePageHeap {
    package private(set) var items: [PageNumber] = []

    package init() {}

    package var count: Int { items.count }
    package var isEmpty: Bool { items.isEmpty }

    package mutating func push(_ page: PageNumber) {
        items.append(page)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if items[parent] <= items[child] { break }
            items.swapAt(parent, child)
            child = parent
        }
    }

    package mutating func popMin() -> PageNumber? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= items.count { break }
            var smallest = left
            if left + 1 < items.count, items[left + 1] < items[left] { smallest = left + 1 }
            if items[parent] <= items[smallest] { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
