import ScrollbackBTree
import ScrollbackStorage

// The search index's posting blocks (spec/message-records.md, "Posting blocks"): the
// postings tree (slot 13) keys a block by its first posting and packs the postings that
// follow it, in order, into a fixed-size value as a bit stream of small deltas.

/// One posting unpacked: a term id and a message key. Ordered as the postings are stored: by
/// term, then as the messages tree orders messages (conversation, createdAt, seq).
package struct Posting: Comparable, Hashable, Sendable, CustomStringConvertible {
    package var term: UInt64
    package var conversation: UInt64
    package var createdAt: UInt64
    package var seq: UInt64

    @inline(__always)
    package init(term: UInt64, conversation: UInt64, createdAt: UInt64, seq: UInt64) {
        self.term = term
        self.conversation = conversation
        self.createdAt = createdAt
        self.seq = seq
    }

    @inline(__always)
    init(term: UInt64, _ key: MessageKey) {
        self.init(term: term, conversation: key.conversation, createdAt: key.createdAt, seq: key.seq)
    }

    /// The block key of a block that starts with this posting: (term, packed message key).
    @inline(__always)
    package var blockKey: BTreeKey {
        let packed = message.treeKey
        return BTreeKey(term, packed.w0, packed.w1)
    }

    @inline(__always)
    init(blockKey key: BTreeKey) { self.init(term: key.w0, MessageKey(BTreeKey(key.w1, key.w2))) }

    @inline(__always)
    package var message: MessageKey { MessageKey(conversation: conversation, createdAt: createdAt, seq: seq) }

    @inline(__always)
    package static func < (a: Posting, b: Posting) -> Bool {
        if a.term != b.term { return a.term < b.term }
        if a.conversation != b.conversation { return a.conversation < b.conversation }
        if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
        return a.seq < b.seq
    }

    package var description: String { "(term \(term), \(message))" }
}

/// The value of a posting block (`valueSize` bytes): a 8-byte header, then a bit stream.
///
///     +0  u16 followers: postings after the block's first (the key), 0 … `maxFollowers`
///     +2  u8  kSeq: Rice parameter of seq deltas within a (term, conversation), 0 … 63
///     +3  u8  kTime: Rice parameter of time residuals within a (term, conversation), 0 … 63
///     +4  u32 q: the block's milliseconds per seq step (the time predictor)
///     +8  the followers' bits, least significant bit of each byte first; bits after the last
///         follower are zero
///
/// A follower `c` after posting `p` (the key for the first) starts with one bit:
/// - 0: same term and conversation. `ds = c.seq − p.seq` and `r = (c.createdAt − p.createdAt)
///   − q·ds` (64-bit two's complement, wrapping), as Rice(zigzag(ds), kSeq) then
///   Rice(zigzag(r), kTime).
/// - 1, then 0: same term, a later conversation: L(c.conversation − p.conversation − 1),
///   L(zigzag(ds)), L(zigzag(r)).
/// - 1, then 1: a later term: L(c.term − p.term − 1), L(c.conversation), L(zigzag(ds)),
///   L(zigzag(r)).
///
/// Rice(x, k): `x >> k` ones and a zero, then the low k bits of x; when `x >> k` is 32 or
/// more, 32 ones then L(x). L(x): the bit length n of x (0 … 64) in 7 bits, then the low
/// n − 1 bits of x (its top bit is implied). Multi-bit fields are written least significant
/// bit first.
package enum PostingBlock {
    /// Bytes of a block value: with the 24-byte key, 15 entries fill a 4 KiB page's 4,064
    /// bytes of entries to within 14 bytes.
    package static let valueSize = 246
    static let headerSize = 8
    static let streamBits = (valueSize - headerSize) * 8
    /// The most followers a block holds (each takes at least 3 bits).
    static let maxFollowers = streamBits / 3
    static let escapeQuotient: UInt64 = 32

    @inline(__always) static func zigzag(_ x: UInt64) -> UInt64 {
        let signed = Int64(bitPattern: x)
        return UInt64(bitPattern: (signed << 1) ^ (signed >> 63))
    }

    @inline(__always) static func unzigzag(_ x: UInt64) -> UInt64 { (x >> 1) ^ (0 &- (x & 1)) }

    @inline(__always) static func bitLength(_ x: UInt64) -> Int { 64 - x.leadingZeroBitCount }

    /// The bits of `stream` from bit `at` on, least significant first: at least 57 valid bits
    /// (bits past the stream's end read as 0, at any offset).
    @inline(__always)
    static func peek(_ stream: UnsafeRawBufferPointer, at: Int) -> UInt64 {
        let byte = at >> 3
        var word: UInt64 = 0
        if byte + 8 <= stream.count {
            word = UInt64(littleEndian: stream.loadUnaligned(fromByteOffset: byte, as: UInt64.self))
        } else {
            var i = 0
            while byte + i < stream.count { word |= UInt64(stream[byte + i]) << UInt64(8 * i); i += 1 }
        }
        return word >> UInt64(at & 7)
    }

    @inline(__always) static func lengthCost(_ x: UInt64) -> Int { 7 + max(0, bitLength(x) - 1) }

    @inline(__always) static func riceCost(_ x: UInt64, _ k: Int) -> Int {
        let quotient = x >> UInt64(k)
        return quotient < escapeQuotient ? Int(quotient) + 1 + k : Int(escapeQuotient) + lengthCost(x)
    }

    /// The fields of a follower relative to its predecessor.
    private struct Step {
        var kind: UInt8          // 0 same (term, conversation), 1 later conversation, 2 later term
        var termGap: UInt64
        var conversation: UInt64 // the gap (kind 1) or the conversation (kind 2)
        var seq: UInt64          // zigzag(ds)
        var residual: UInt64     // zigzag(r)
    }

    /// The coding parameters of a block (header bytes 2…7).
    struct Parameters {
        var q: UInt64
        var kSeq: Int
        var kTime: Int
    }

    /// The block's time predictor: total time over total seq steps of its same-conversation
    /// neighbours moving forward in both (0 when there are none), at most UInt32.max.
    private static func predictor(_ postings: UnsafeBufferPointer<Posting>) -> UInt64 {
        var time: UInt64 = 0
        var steps: UInt64 = 0
        for i in 1..<postings.count {
            let p = postings[i - 1], c = postings[i]
            guard c.term == p.term, c.conversation == p.conversation, c.seq > p.seq, c.createdAt >= p.createdAt else { continue }
            let (t, o1) = time.addingReportingOverflow(c.createdAt - p.createdAt)
            let (s, o2) = steps.addingReportingOverflow(c.seq - p.seq)
            if o1 || o2 { break }
            time = t
            steps = s
        }
        guard steps > 0 else { return 0 }
        return min(time / steps, UInt64(UInt32.max))
    }

    @inline(__always)
    private static func step(_ p: Posting, _ c: Posting, q: UInt64) -> Step {
        let ds = c.seq &- p.seq
        let r = (c.createdAt &- p.createdAt) &- q &* ds
        if c.term != p.term {
            return Step(kind: 2, termGap: c.term &- p.term &- 1, conversation: c.conversation, seq: zigzag(ds), residual: zigzag(r))
        }
        if c.conversation != p.conversation {
            return Step(kind: 1, termGap: 0, conversation: c.conversation &- p.conversation &- 1, seq: zigzag(ds),
                        residual: zigzag(r))
        }
        return Step(kind: 0, termGap: 0, conversation: 0, seq: zigzag(ds), residual: zigzag(r))
    }

    /// Bits of one follower under `parameters`.
    @inline(__always)
    private static func cost(_ s: Step, _ parameters: Parameters) -> Int {
        switch s.kind {
        case 0: return 1 + riceCost(s.seq, parameters.kSeq) + riceCost(s.residual, parameters.kTime)
        case 1: return 2 + lengthCost(s.conversation) + lengthCost(s.seq) + lengthCost(s.residual)
        default: return 2 + lengthCost(s.termGap) + lengthCost(s.conversation) + lengthCost(s.seq) + lengthCost(s.residual)
        }
    }

    /// The parameters of `postings` (at least two): the predictor, then for each Rice
    /// parameter the cheapest of four values around the bit length of the mean.
    static func parameters(_ postings: UnsafeBufferPointer<Posting>) -> Parameters {
        let q = predictor(postings)
        var sumSeq: UInt64 = 0, sumTime: UInt64 = 0, same: UInt64 = 0
        for i in 1..<postings.count {
            let s = step(postings[i - 1], postings[i], q: q)
            guard s.kind == 0 else { continue }
            sumSeq = sumSeq &+ min(s.seq, 1 << 48)
            sumTime = sumTime &+ min(s.residual, 1 << 48)
            same += 1
        }
        guard same > 0 else { return Parameters(q: q, kSeq: 0, kTime: 0) }
        let seqBase = max(0, bitLength(sumSeq / same) - 3), timeBase = max(0, bitLength(sumTime / same) - 3)
        var seqCosts = (0, 0, 0, 0), timeCosts = (0, 0, 0, 0)
        for i in 1..<postings.count {
            let s = step(postings[i - 1], postings[i], q: q)
            guard s.kind == 0 else { continue }
            seqCosts.0 += riceCost(s.seq, seqBase); seqCosts.1 += riceCost(s.seq, seqBase + 1)
            seqCosts.2 += riceCost(s.seq, seqBase + 2); seqCosts.3 += riceCost(s.seq, seqBase + 3)
            timeCosts.0 += riceCost(s.residual, timeBase); timeCosts.1 += riceCost(s.residual, timeBase + 1)
            timeCosts.2 += riceCost(s.residual, timeBase + 2); timeCosts.3 += riceCost(s.residual, timeBase + 3)
        }
        func best(_ c: (Int, Int, Int, Int), _ base: Int) -> Int {
            let list = [c.0, c.1, c.2, c.3]
            var k = 0
            for i in 1..<4 where list[i] < list[k] { k = i }
            return min(63, base + k)
        }
        return Parameters(q: q, kSeq: best(seqCosts, seqBase), kTime: best(timeCosts, timeBase))
    }

    /// How many of `postings` (from the first) one block holds under `parameters`: the
    /// longest prefix whose followers fit in `limit` bits of the stream (at least 1).
    static func prefixThatFits(_ postings: UnsafeBufferPointer<Posting>, _ parameters: Parameters, bits limit: Int = streamBits)
        -> Int {
        var bits = 0
        var i = 1
        while i < postings.count && i <= maxFollowers {
            bits += cost(step(postings[i - 1], postings[i], q: parameters.q), parameters)
            if bits > limit { break }
            i += 1
        }
        return i
    }

    /// The encoded form of `postings` (sorted, distinct, at least one) as a block, or nil when
    /// they do not fit in one.
    static func encode(_ postings: UnsafeBufferPointer<Posting>) -> [UInt8]? {
        let followers = postings.count - 1
        guard followers <= maxFollowers else { return nil }
        if followers == 0 { return [UInt8](repeating: 0, count: valueSize) }
        let parameters = parameters(postings)
        var bits = 0
        for i in 1...followers {
            bits += cost(step(postings[i - 1], postings[i], q: parameters.q), parameters)
            if bits > streamBits { return nil }
        }
        var out = [UInt8](repeating: 0, count: valueSize)
        out.withUnsafeMutableBytes { raw in
            raw.storeLE(UInt16(followers), at: 0)
            raw[2] = UInt8(parameters.kSeq)
            raw[3] = UInt8(parameters.kTime)
            raw.storeLE(UInt32(parameters.q), at: 4)
            var writer = BitWriter(UnsafeMutableRawBufferPointer(rebasing: raw[headerSize...]))
            for i in 1...followers {
                write(step(postings[i - 1], postings[i], q: parameters.q), parameters, &writer)
            }
            writer.flush()
        }
        return out
    }

    @inline(__always)
    private static func write(_ s: Step, _ parameters: Parameters, _ writer: inout BitWriter) {
        switch s.kind {
        case 0:
            writer.write(0, 1)
            writer.rice(s.seq, parameters.kSeq)
            writer.rice(s.residual, parameters.kTime)
        case 1:
            writer.write(0b01, 2)
            writer.length(s.conversation)
            writer.length(s.seq)
            writer.length(s.residual)
        default:
            writer.write(0b11, 2)
            writer.length(s.termGap)
            writer.length(s.conversation)
            writer.length(s.seq)
            writer.length(s.residual)
        }
    }

    /// What `inserting` made of a block.
    package enum Splice {
        /// The block holds the posting already.
        case present
        /// The block's new value is written (its key is unchanged).
        case inserted
        /// The posting is below the block's first, or it does not fit under the block's
        /// parameters: the caller re-encodes the block's list (new parameters, or a split).
        case doesNotFit
    }

    /// The block `key` → `value` with `posting` added, without re-encoding the block: under
    /// the block's own parameters the followers before the posting keep their bits, the
    /// posting and the follower after it (now coded relative to it) are written, and the
    /// followers after those keep their bits, moved. The result is the block `encode` would
    /// give for the same list with these parameters, so it decodes as that list; it goes to
    /// `out` (`valueSize` bytes), written only for `.inserted`. Cost: one decoding of the block
    /// (it is checked as it is read) and a copy of its bits; no allocation.
    package static func inserting(_ posting: Posting, key: BTreeKey, value: UnsafeRawBufferPointer,
                          into out: UnsafeMutableRawBufferPointer, file: String) throws -> Splice {
        var reader = try PostingBlockReader(key: key, value: value, file: file)
        guard let first = try reader.next() else { return .doesNotFit }
        if first == posting { return .present }
        if posting < first { return .doesNotFit }
        var previous = first
        var cut = 0             // where the follower after `previous` starts
        var next: Posting? = nil
        var nextEnd = 0         // where that follower ends
        while let p = try reader.next() {
            if p < posting {
                previous = p
                cut = reader.end
                continue
            }
            if p == posting { return .present }
            next = p
            nextEnd = reader.end
            break
        }
        while try reader.next() != nil {}
        let used = reader.end
        if next == nil { nextEnd = cut }
        let followers = Int(value.loadLE(UInt16.self, at: 0)) + 1
        guard followers <= maxFollowers else { return .doesNotFit }
        let parameters = Parameters(q: UInt64(value.loadLE(UInt32.self, at: 4)), kSeq: Int(value[2]), kTime: Int(value[3]))
        let added = step(previous, posting, q: parameters.q)
        let after = next.map { step(posting, $0, q: parameters.q) }
        let bits = used - (nextEnd - cut) + cost(added, parameters) + (after.map { cost($0, parameters) } ?? 0)
        guard bits <= streamBits else { return .doesNotFit }
        guard out.count == valueSize else { throw StorageError.invalidArgument("a posting block is \(valueSize) bytes, not \(out.count)") }
        let stream = UnsafeRawBufferPointer(rebasing: value[headerSize...])
        out.initializeMemory(as: UInt8.self, repeating: 0)
        out.copyMemory(from: UnsafeRawBufferPointer(rebasing: value[..<headerSize]))
        out.storeLE(UInt16(followers), at: 0)
        var writer = BitWriter(UnsafeMutableRawBufferPointer(rebasing: out[headerSize...]))
        writer.copy(stream, from: 0, to: cut)
        write(added, parameters, &writer)
        if let after { write(after, parameters, &writer) }
        writer.copy(stream, from: nextEnd, to: used)
        writer.flush()
        return .inserted
    }

    package static func encode(_ postings: ArraySlice<Posting>) -> [UInt8]? {
        postings.withUnsafeBufferPointer { encode($0) }
    }

    /// A corrupted block: names the tree's file and the block's key.
    static func corrupted(_ key: BTreeKey, _ reason: String, file: String) -> StorageError {
        .corrupted(file: file, offset: 0, reason: "search posting block \(Posting(blockKey: key)): \(reason)")
    }
}

/// Writes bits least significant first into a zeroed buffer. REQUIRES: the caller checked the
/// total fits.
private struct BitWriter {
    let out: UnsafeMutableRawBufferPointer
    var accumulator: UInt64 = 0
    var count = 0
    var byte = 0

    init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

    @inline(__always)
    mutating func write(_ value: UInt64, _ bits: Int) {
        guard bits > 0 else { return }
        let masked = bits == 64 ? value : value & ((1 << UInt64(bits)) - 1)
        if count + bits <= 64 {
            accumulator |= masked << UInt64(count)
            count += bits
            if count == 64 { drain() }
        } else {
            let first = 64 - count
            accumulator |= masked << UInt64(count)
            count = 64
            drain()
            accumulator = masked >> UInt64(first)
            count = bits - first
        }
    }

    @inline(__always)
    private mutating func drain() {
        while count >= 8 {
            out[byte] = UInt8(truncatingIfNeeded: accumulator)
            byte += 1
            accumulator = count == 8 ? 0 : accumulator >> 8
            count -= 8
        }
    }

    mutating func ones(_ n: Int) {
        var left = n
        while left > 0 {
            let chunk = min(left, 32)
            write((1 << UInt64(chunk)) - 1, chunk)
            left -= chunk
        }
    }

    mutating func rice(_ x: UInt64, _ k: Int) {
        let quotient = x >> UInt64(k)
        if quotient < PostingBlock.escapeQuotient {
            ones(Int(quotient))
            write(0, 1)
            write(x, k)
        } else {
            ones(Int(PostingBlock.escapeQuotient))
            length(x)
        }
    }

    mutating func length(_ x: UInt64) {
        let n = PostingBlock.bitLength(x)
        write(UInt64(n), 7)
        if n > 1 { write(x, n - 1) }
    }

    /// Appends bits `start ..< end` of `stream` (least significant first, as written here).
    mutating func copy(_ stream: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        var at = start
        while at < end {
            let n = min(56, end - at)
            write(PostingBlock.peek(stream, at: at), n)
            at += n
        }
    }

    mutating func flush() {
        while count > 0 {
            out[byte] = UInt8(truncatingIfNeeded: accumulator)
            byte += 1
            accumulator >>= 8
            count = max(0, count - 8)
        }
    }
}

/// Reads a block's postings in order, one at a time, without allocating: the first is the
/// key's. Checks what it reads (bounds, order, field limits, zero padding) and throws
/// `StorageError.corrupted` naming the block.
package struct PostingBlockReader {
    private let stream: UnsafeRawBufferPointer
    private let key: BTreeKey
    private let file: String
    private var position = 0          // bits consumed
    private let totalBits: Int
    private var remaining: Int        // followers left
    private let kSeq: Int
    private let kTime: Int
    private let q: UInt64
    private var previous: Posting?
    private let first: Posting
    /// The bit offset in the stream just after the posting `next()` returned last (0 after
    /// the first, the key's), before any padding.
    private(set) var end = 0

    /// A reader of the block `key` → `value` (`PostingBlock.valueSize` bytes).
    package init(key: BTreeKey, value: UnsafeRawBufferPointer, file: String) throws {
        guard value.count == PostingBlock.valueSize else {
            throw PostingBlock.corrupted(key, "value of \(value.count) bytes, expected \(PostingBlock.valueSize)", file: file)
        }
        self.key = key
        self.file = file
        first = Posting(blockKey: key)
        guard first.seq != 0, first.seq <= MessageKey.maxSeq, first.conversation <= MessageLimits.maxConversationID,
              first.term != 0 else {
            throw PostingBlock.corrupted(key, "its key is not a posting", file: file)
        }
        remaining = Int(value.loadLE(UInt16.self, at: 0))
        kSeq = Int(value[2])
        kTime = Int(value[3])
        q = UInt64(value.loadLE(UInt32.self, at: 4))
        guard remaining <= PostingBlock.maxFollowers, kSeq < 64, kTime < 64 else {
            throw PostingBlock.corrupted(key, "header (followers \(remaining), kSeq \(kSeq), kTime \(kTime)) out of range", file: file)
        }
        stream = UnsafeRawBufferPointer(rebasing: value[PostingBlock.headerSize...])
        totalBits = stream.count * 8
    }

    /// The next posting, or nil after the last (then the rest of the stream was checked zero).
    @inline(__always)
    package mutating func next() throws -> Posting? {
        guard let p = previous else {
            previous = first
            if remaining == 0 { try checkPadding() }
            return first
        }
        guard remaining > 0 else { return nil }
        remaining -= 1
        var c = p
        // Fields are read at a local bit offset; bits past the stream read as 0, and one check
        // at the end rejects a follower that runs past it.
        var at = position
        let w = peek(at)
        let seqDelta: UInt64, residual: UInt64
        if w & 1 == 0 {
            // Same term and conversation. Both Rice codes in this window: the common case.
            let seqOnes = (~(w >> 1)).trailingZeroBitCount
            let seqEnd = 2 + seqOnes + kSeq
            let timeOnes = seqEnd <= 57 ? (~(w >> UInt64(seqEnd))).trailingZeroBitCount : 64
            let total = seqEnd + timeOnes + 1 + kTime
            if seqOnes < Int(PostingBlock.escapeQuotient) && timeOnes < Int(PostingBlock.escapeQuotient) && total <= 57 {
                seqDelta = UInt64(seqOnes) << UInt64(kSeq) | (w >> UInt64(2 + seqOnes)) & ((1 << UInt64(kSeq)) - 1)
                residual = UInt64(timeOnes) << UInt64(kTime) | (w >> UInt64(seqEnd + timeOnes + 1)) & ((1 << UInt64(kTime)) - 1)
                at += total
            } else {
                at += 1
                guard let s = Self.rice(stream, &at, kSeq), let t = Self.rice(stream, &at, kTime) else { throw badLength() }
                seqDelta = s
                residual = t
            }
        } else if w & 2 == 0 {
            at += 2
            guard let gap = Self.length(stream, &at), let s = Self.length(stream, &at), let t = Self.length(stream, &at) else {
                throw badLength()
            }
            let (conversation, overflow) = p.conversation.addingReportingOverflow(gap &+ 1)
            guard !overflow, gap != .max else { throw corrupt("conversation gap overflows") }
            c.conversation = conversation
            seqDelta = s
            residual = t
        } else {
            at += 2
            guard let gap = Self.length(stream, &at), let conversation = Self.length(stream, &at), let s = Self.length(stream, &at),
                  let t = Self.length(stream, &at) else { throw badLength() }
            let (term, overflow) = p.term.addingReportingOverflow(gap &+ 1)
            guard !overflow, gap != .max else { throw corrupt("term gap overflows") }
            c.term = term
            c.conversation = conversation
            seqDelta = s
            residual = t
        }
        guard at <= totalBits else { throw corrupt("bit stream ends inside a posting") }
        position = at
        return try finish(p, c, seqDelta: seqDelta, residual: residual)
    }

    /// `c` (`p` with its term and conversation changed as the follower says) with the seq and
    /// time fields applied, checked, made the previous posting.
    @inline(__always)
    private mutating func finish(_ p: Posting, _ c: Posting, seqDelta: UInt64, residual: UInt64) throws -> Posting {
        var c = c
        let ds = PostingBlock.unzigzag(seqDelta)
        c.seq = p.seq &+ ds
        c.createdAt = p.createdAt &+ (PostingBlock.unzigzag(residual) &+ q &* ds)
        guard c.seq != 0, c.seq <= MessageKey.maxSeq, c.createdAt <= MessageKey.maxCreatedAt,
              c.conversation <= MessageLimits.maxConversationID, p < c else {
            throw corrupt("posting \(c) after \(p) is out of order or out of range")
        }
        previous = c
        end = position
        if remaining == 0 { try checkPadding() }
        return c
    }

    private func corrupt(_ reason: String) -> StorageError { PostingBlock.corrupted(key, reason, file: file) }

    private func badLength() -> StorageError { corrupt("a field's bit length exceeds 64") }

    @inline(__always)
    private func peek(_ at: Int) -> UInt64 { PostingBlock.peek(stream, at: at) }

    // The field readers are static over the stream alone: a method of the reader would pass
    // the whole reader (a copy of it, as `next` mutates it) to each call.

    /// The `n` bits (0 … 64) of `stream` at bit `at`.
    @inline(__always)
    private static func field(_ stream: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> UInt64 {
        if n <= 57 { return PostingBlock.peek(stream, at: at) & ((1 << UInt64(n)) - 1) }
        return PostingBlock.peek(stream, at: at) & 0xFFFF_FFFF | (PostingBlock.peek(stream, at: at + 32) & ((1 << UInt64(n - 32)) - 1)) << 32
    }

    /// Rice(x, k) at `at`, which moves past it; nil for an escape whose length exceeds 64.
    /// One load when the code fits in the 57 bits of a `peek` (the common case).
    @inline(__always)
    private static func rice(_ stream: UnsafeRawBufferPointer, _ at: inout Int, _ k: Int) -> UInt64? {
        let w = PostingBlock.peek(stream, at: at)
        let ones = (~w).trailingZeroBitCount
        if ones >= Int(PostingBlock.escapeQuotient) {
            at += Int(PostingBlock.escapeQuotient)
            return length(stream, &at)
        }
        let low = ones + 1 + k <= 57 ? (w >> UInt64(ones + 1)) & ((1 << UInt64(k)) - 1) : field(stream, at + ones + 1, k)
        at += ones + 1 + k
        return UInt64(ones) << UInt64(k) | low
    }

    /// L(x) at `at`, which moves past it; nil when its length exceeds 64. One load when the
    /// code fits in the 57 bits of a `peek` (x below 2^51).
    @inline(__always)
    private static func length(_ stream: UnsafeRawBufferPointer, _ at: inout Int) -> UInt64? {
        let w = PostingBlock.peek(stream, at: at)
        let n = Int(w & 0x7F)
        if n <= 1 {
            at += 7
            return UInt64(n)
        }
        guard n <= 64 else { return nil }
        let bits = n - 1
        let low = 7 + bits <= 57 ? (w >> 7) & ((1 << UInt64(bits)) - 1) : field(stream, at + 7, bits)
        at += 7 + bits
        return (1 << UInt64(bits)) | low
    }

    private mutating func checkPadding() throws {
        let total = totalBits
        while position < total {
            if position & 7 == 0 {
                guard stream[position >> 3] == 0 else { throw corrupt("nonzero bits after the last posting") }
                position += 8
            } else {
                guard peek(position) & 1 == 0 else { throw corrupt("nonzero bits after the last posting") }
                position += 1
            }
        }
    }
}
