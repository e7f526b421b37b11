/// A fixed-size B+tree key: up to four unsigned 64-bit words compared lexicographically
/// (word 0 first). A tree uses the first `keyWords` words; the unused words must be zero.
/// On a page each used word is stored little-endian (spec/btree-page.md, "Keys").
///
/// For the messages tree the words are (conversation, createdAt biased to unsigned, seq).
///
/// Public (the module is not a product) only so that its small members are inlined in the
/// other modules of the package: the members of a package type are not, and a scan compares
/// keys per entry.
public struct BTreeKey: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var w0: UInt64
    public var w1: UInt64
    public var w2: UInt64
    public var w3: UInt64

    @inlinable @inline(__always)
    package init(_ w0: UInt64, _ w1: UInt64 = 0, _ w2: UInt64 = 0, _ w3: UInt64 = 0) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
    }

    /// The smallest key (all words zero).
    package static let min = BTreeKey(0)

    /// The largest key of a tree with `keyWords` words (used words all ones, the rest zero).
    package static func max(keyWords: Int) -> BTreeKey {
        BTreeKey(.max, keyWords > 1 ? .max : 0, keyWords > 2 ? .max : 0, keyWords > 3 ? .max : 0)
    }

    /// Word `i` (0...3).
    package subscript(word i: Int) -> UInt64 {
        get {
            switch i {
            case 0: return w0
            case 1: return w1
            case 2: return w2
            default: return w3
            }
        }
        set {
            switch i {
            case 0: w0 = newValue
            case 1: w1 = newValue
            case 2: w2 = newValue
            default: w3 = newValue
            }
        }
    }

    @inlinable @inline(__always)
    public static func < (a: BTreeKey, b: BTreeKey) -> Bool {
        if a.w0 != b.w0 { return a.w0 < b.w0 }
        if a.w1 != b.w1 { return a.w1 < b.w1 }
        if a.w2 != b.w2 { return a.w2 < b.w2 }
        return a.w3 < b.w3
    }

    /// True iff the words past `keyWords` are zero, i.e. the key belongs to a tree of that shape.
    package func fits(keyWords: Int) -> Bool {
        switch keyWords {
        case 1: return w1 == 0 && w2 == 0 && w3 == 0
        case 2: return w2 == 0 && w3 == 0
        case 3: return w3 == 0
        default: return true
        }
    }

    @inlinable @inline(__always)
    public static func == (a: BTreeKey, b: BTreeKey) -> Bool {
        a.w0 == b.w0 && a.w1 == b.w1 && a.w2 == b.w2 && a.w3 == b.w3
    }

    public var description: String { "(\(w0), \(w1), \(w2), \(w3))" }
}
