import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    /// Visits the message with this id; returns false (without visiting) when there is none.
    @discardableResult
    package func message(id: String, _ visit: MessageVisitor) throws -> Bool {
        try engine.read { snapshot in
            guard let located = try locate(id: id, in: snapshot) else { return false }
            let name = try conversationName(located.key.conversation, in: snapshot, for: "message \(id) names a missing conversation")
            var reader = engine.recordReader(for: snapshot)
            try visitMessage(at: located.pointer.position, key: located.key, conversation: name, &reader, visit)
            return true
        }
    }

    package func message(id: String) throws -> StoredMessage? {
        var result: StoredMessage? = nil
        try message(id: id) { result = $0.stored }
        return result
    }

    /// A scan asked to say how many messages it will visit (`expecting`) says so once it has
    /// visited this many and goes on. Shorter scans (nearly all) do not count: the count is a
    /// second walk down the tree, worth it only where it spares the caller's result several
    /// regrowths (a day of a busy room: hundreds of messages).
    static let remainingCountAfter = 64

    /// Walks the messages of `conversationID` from `start` in one direction, visiting up to
    /// `limit` messages whose key stays within `bound` (inclusive). Returns whether another
    /// message of the conversation (within `bound`) follows the last one visited.
    ///
    /// `expecting` is called at most once: when the walk goes on after `countingAfter`
    /// messages, with the exact number it will still visit (the counted tree's count up to
    /// `bound`, capped by `limit`), so that a caller collecting the messages sizes its result
    /// once. O(log n) for that call; `.max` (the default) never counts.
    @inline(__always)
    func scan(_ snapshot: PageTransaction, conversation conversationID: UInt64, name: String, from start: MessageKey,
              inclusive: Bool, forward: Bool, bound: MessageKey, limit: Int, lastKey: UnsafeMutablePointer<MessageKey>? = nil,
              countingAfter: Int = .max, expecting: (Int) -> Void = { _ in }, _ visit: MessageVisitor) throws -> Bool {
        let messages = try BTree(snapshot, .messages)
        var cursor = messages.scanCursor()
        let startKey = start.treeKey, boundKey = bound.treeKey
        var valid: Bool
        if forward {
            valid = try cursor.seek(atLeast: startKey)
            if valid && !inclusive, let key = try cursor.key(), key == startKey { valid = try cursor.next() }
        } else {
            valid = try cursor.seek(atMost: startKey)
            if valid && !inclusive, let key = try cursor.key(), key == startKey { valid = try cursor.previous() }
        }
        guard valid else { return false }
        var taken = 0
        var more = false
        var reader = engine.recordReader(for: snapshot)
        // One page access per leaf; the record reader reads each run block once.
        try withUnsafePointer(to: name) { name in
            _ = try cursor.walk(forward: forward) { key, value in
                guard MessageKey.conversation(of: key) == conversationID, forward ? key <= boundKey : key >= boundKey else {
                    return false
                }
                if taken == limit {
                    more = true
                    return false
                }
                let messageKey = MessageKey(key)
                try visitMessage(at: MessagePointer.position(in: value), key: messageKey, conversation: name, &reader, visit)
                lastKey?.pointee = messageKey
                taken += 1
                if taken == countingAfter, taken < limit {
                    // The messages strictly after `key` in the walk's direction, through `bound`.
                    let remaining = forward ? try messages.count(from: key, to: boundKey, inclusive: true) - 1
                                            : try messages.count(from: boundKey, to: key, inclusive: false)
                    expecting(min(limit - taken, max(0, remaining)))
                }
                return true
            }
        }
        return more
    }

    package func latest(in conversation: String, limit: Int, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return }
            _ = try scan(snapshot, conversation: id, name: conversation, from: .last(of: id), inclusive: true,
                         forward: false, bound: .first(of: id), limit: limit, visit)
        }
    }

    /// The first and last key of `from ≤ createdAt ≤ through` in conversation `id`; nil for a
    /// range that holds no possible key (empty, wholly negative, or past the largest time).
    static func rangeKeys(of id: UInt64, from: Int64, through: Int64) -> (earliest: MessageKey, latest: MessageKey)? {
        guard through >= 0, from <= through, max(from, 0) <= Int64(MessageKey.maxCreatedAt) else { return nil }
        return (MessageKey(conversation: id, createdAt: UInt64(max(from, 0)), seq: 0),
                MessageKey(conversation: id, createdAt: min(UInt64(through), MessageKey.maxCreatedAt), seq: MessageKey.maxSeq))
    }

    /// The messages of `from ≤ createdAt ≤ through`, up to `limit`, in one direction.
    package func messages(in conversation: String, from: Int64, through: Int64, forward: Bool, limit: Int,
                          _ visit: MessageVisitor) throws {
        try messages(in: conversation, from: from, through: through, forward: forward, limit: limit,
                     countingAfter: .max, expecting: { _ in }, visit)
    }

    /// `messages(in:from:through:forward:limit:_:)` for a caller that collects them: a long
    /// range calls `expecting` once with the number of messages still to come (see `scan`).
    /// Separate (not an optional argument) because an optional closure escapes: its context
    /// would be allocated on every call.
    package func messages(in conversation: String, from: Int64, through: Int64, forward: Bool, limit: Int,
                          expecting: (Int) -> Void, _ visit: MessageVisitor) throws {
        try messages(in: conversation, from: from, through: through, forward: forward, limit: limit,
                     countingAfter: Self.remainingCountAfter, expecting: expecting, visit)
    }

    @inline(__always)
    private func messages(in conversation: String, from: Int64, through: Int64, forward: Bool, limit: Int,
                          countingAfter: Int, expecting: (Int) -> Void, _ visit: MessageVisitor) throws {
        guard Self.rangeKeys(of: 0, from: from, through: through) != nil else { return }   // no snapshot for an empty range
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot),
                  let (earliest, latest) = Self.rangeKeys(of: id, from: from, through: through) else { return }
            _ = try scan(snapshot, conversation: id, name: conversation, from: forward ? earliest : latest, inclusive: true,
                         forward: forward, bound: forward ? latest : earliest, limit: limit, countingAfter: countingAfter,
                         expecting: expecting, visit)
        }
    }

    /// Keyset pagination. Returns the messages and the next cursor token (nil when none remain).
    package func page(in conversation: String, after token: String?, limit: Int, forward: Bool,
                      _ visit: MessageVisitor) throws -> String? {
        try page(in: conversation, from: 0, through: Int64(MessageKey.maxCreatedAt), after: token, limit: limit,
                 forward: forward, visit)
    }

    /// Keyset pagination over the messages with `from ≤ createdAt ≤ through`: up to `limit`
    /// of them strictly after the cursor's position in the walk's direction (from the range's
    /// start without a cursor, or when the cursor lies before the range). Returns the next
    /// token, nil exactly when no message of the range remains after the last one visited.
    /// The token must have been issued for the same direction (or by a build before tokens
    /// named it) and for this conversation, else `invalidCursor`. O(log n + limit).
    package func page(in conversation: String, from: Int64, through: Int64, after token: String?, limit: Int, forward: Bool,
                      _ visit: MessageVisitor) throws -> String? {
        try page(in: conversation, from: from, through: through, after: token, limit: limit, forward: forward,
                 countingAfter: .max, expecting: { _ in }, visit)
    }

    /// `page(in:from:through:after:limit:forward:_:)` for a caller that collects the page: a
    /// long one calls `expecting` once with the number of messages still to come (see `scan`).
    package func page(in conversation: String, from: Int64, through: Int64, after token: String?, limit: Int, forward: Bool,
                      expecting: (Int) -> Void, _ visit: MessageVisitor) throws -> String? {
        try page(in: conversation, from: from, through: through, after: token, limit: limit, forward: forward,
                 countingAfter: Self.remainingCountAfter, expecting: expecting, visit)
    }

    @inline(__always)
    private func page(in conversation: String, from: Int64, through: Int64, after token: String?, limit: Int, forward: Bool,
                      countingAfter: Int, expecting: (Int) -> Void, _ visit: MessageVisitor) throws -> String? {
        let start = try token.map { try messagePosition($0, forward: forward) }
        return try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else {
                if start != nil { throw MessagingError.invalidCursor("the cursor belongs to another conversation") }
                return nil
            }
            if let start, start.conversation != id {
                throw MessagingError.invalidCursor("the cursor belongs to another conversation")
            }
            guard let (earliest, latest) = Self.rangeKeys(of: id, from: from, through: through) else { return nil }
            var first = forward ? earliest : latest
            var inclusive = true
            if let start {
                let key = MessageKey(conversation: id, createdAt: start.createdAt, seq: start.seq)
                // A cursor before the range (in the walk's direction) starts at the range's start.
                if forward ? !earliest.isAfter(key) : !key.isAfter(latest) {
                    first = key
                    inclusive = false
                }
            }
            var last = first
            let more = try scan(snapshot, conversation: id, name: conversation, from: first, inclusive: inclusive,
                                forward: forward, bound: forward ? latest : earliest, limit: limit, lastKey: &last,
                                countingAfter: countingAfter, expecting: expecting, visit)
            guard more else { return nil }
            let position = CursorToken.Position(conversation: id, createdAt: last.createdAt, seq: last.seq)
            return CursorToken.encode(position, secret: cursorSecret, version: CursorToken.messageVersion(forward: forward))
        }
    }

    /// The position a message cursor names, checked against the walk's direction.
    func messagePosition(_ token: String, forward: Bool) throws -> CursorToken.Position {
        guard let (version, position) = CursorToken.decode(token, secret: cursorSecret) else {
            throw MessagingError.invalidCursor("the token is damaged, forged or from another store")
        }
        func order(_ forward: Bool) -> String { forward ? "oldestFirst" : "newestFirst" }
        switch version {
        case CursorToken.legacyVersion, CursorToken.messageVersion(forward: forward):
            guard position.createdAt <= MessageKey.maxCreatedAt, position.seq <= MessageKey.maxSeq else {
                throw MessagingError.invalidCursor("the token names no message position")
            }
            return position
        case CursorToken.messageVersion(forward: !forward):
            throw MessagingError.invalidCursor("the cursor was issued for \(order(!forward)) order, not \(order(forward))")
        case CursorToken.listVersion:
            throw MessagingError.invalidCursor("the token is a conversation-list cursor, not a message cursor")
        default:
            throw MessagingError.invalidCursor("the token is damaged, forged or from another store")
        }
    }

    /// Offset pagination: O(log n + limit) through the counted tree.
    package func page(in conversation: String, offset: Int, limit: Int, forward: Bool, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return }
            let messages = try BTree(snapshot, .messages)
            let low = MessageKey.first(of: id).treeKey
            let first = try messages.rank(low)
            // The room's size: one descent while its bounds share a child (a second rank would sum counts again).
            let size = try messages.count(from: low, to: MessageKey.first(of: id &+ 1).treeKey, inclusive: false)
            guard offset < size, limit > 0 else { return }
            var cursor = messages.scanCursor()
            guard try cursor.seek(toRank: first + (forward ? offset : size - 1 - offset)) else { return }
            var taken = 0
            var reader = engine.recordReader(for: snapshot)
            try withUnsafePointer(to: conversation) { conversation in
                _ = try cursor.walk(forward: forward) { key, value in
                    guard taken < limit, MessageKey.conversation(of: key) == id else { return false }
                    try visitMessage(at: MessagePointer.position(in: value), key: MessageKey(key), conversation: conversation,
                                     &reader, visit)
                    taken += 1
                    return true
                }
            }
        }
    }

    /// Messages with createdAt > after. O(log n).
    package func count(in conversation: String, after: Int64) throws -> Int {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return 0 }
            let messages = try BTree(snapshot, .messages)
            if after >= 0 && UInt64(after) >= MessageKey.maxCreatedAt { return 0 }
            let low = after < 0 ? MessageKey.first(of: id) : MessageKey(conversation: id, createdAt: UInt64(after) &+ 1, seq: 0)
            // One descent while both bounds share a child (all of an ordinary room's keys sit in one leaf).
            return try messages.count(from: low.treeKey, to: MessageKey.first(of: id &+ 1).treeKey, inclusive: false)
        }
    }

    package func unreadCount(user: String, in conversation: String) throws -> Int {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return 0 }
            return try unreadCount(conversation: id, marker: try marker(user: user, conversation: id, in: snapshot),
                                   messages: try BTree(snapshot, .messages))
        }
    }

    /// The newest `limit` messages across the conversations, merged with a binary heap.
    package func feed(_ conversations: [String], limit: Int, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            let messages = try BTree(snapshot, .messages)
            // A cursor is a few hundred bytes (its path inline): the array is reserved up
            // front (no regrowth copies), and the merge reads and moves each cursor with one
            // mutating call (`walk`) on its place in the array. A non-mutating call on an
            // element (`withCurrent`) is passed a copy of it (the caller cannot prove that
            // nothing writes the element during the call): copies of cursors were 15% of a
            // feed of 20 in `perf`.
            var cursors: [BTreeCursor] = []
            cursors.reserveCapacity(min(conversations.count, Self.feedReservedCursors))
            var names: [String] = []
            var heap = FeedHeap()
            var seen = FeedConversations()
            for name in conversations {
                guard let id = try conversationID(name, in: snapshot), seen.insert(id) else { continue }
                var cursor = messages.scanCursor()
                if try cursor.seek(atMost: MessageKey.last(of: id).treeKey), let treeKey = try cursor.key(),
                   MessageKey.conversation(of: treeKey) == id {
                    let key = MessageKey(treeKey)
                    heap.push(FeedHeap.Entry(createdAt: key.createdAt, seq: key.seq, source: cursors.count))
                    cursors.append(cursor)
                    names.append(name)
                }
            }
            var taken = 0
            var reader = engine.recordReader(for: snapshot)
            try cursors.withUnsafeMutableBufferPointer { cursors in
                while taken < limit, let top = heap.popMax() {
                    // The top's entry, then the cursor one entry back, whose key is the
                    // conversation's next head: one walk reads both (one page access, two
                    // when the step back crosses into the previous leaf).
                    var treeKey = BTreeKey.min
                    var position: LogPosition = 0
                    var previous: BTreeKey? = nil
                    var atTop = true
                    try cursors[top.source].walk(forward: false) { k, v in
                        guard atTop else {
                            previous = k
                            return false
                        }
                        treeKey = k
                        position = MessagePointer.position(in: v)
                        atTop = false
                        return true
                    }
                    let key = MessageKey(treeKey)
                    try visitMessage(at: position, key: key, conversation: names[top.source], &reader, visit)
                    taken += 1
                    if let previous {
                        let previousKey = MessageKey(previous)
                        if previousKey.conversation == key.conversation {
                            heap.push(FeedHeap.Entry(createdAt: previousKey.createdAt, seq: previousKey.seq, source: top.source))
                        }
                    }
                }
            }
        }
    }

    /// Cursors a feed reserves room for up front (more conversations grow the array).
    static let feedReservedCursors = 64

    /// Calls `visit` once per conversation, in order: with its newest message, or nil.
    package func latestMessage(in conversations: [String], _ visit: (MessageView?) throws -> Void) throws {
        try engine.read { snapshot in
            let messages = try BTree(snapshot, .messages)
            var cursor = messages.scanCursor()
            var reader = engine.recordReader(for: snapshot)
            for name in conversations {
                guard let id = try conversationID(name, in: snapshot) else {
                    try visit(nil)
                    continue
                }
                var found: (MessageKey, LogPosition)? = nil
                if try cursor.seek(atMost: MessageKey.last(of: id).treeKey) {
                    try cursor.withCurrent { k, v in
                        if MessageKey.conversation(of: k) == id { found = (MessageKey(k), MessagePointer.position(in: v)) }
                    }
                }
                if let found {
                    try visitMessage(at: found.1, key: found.0, conversation: name, &reader) { try visit($0) }
                } else {
                    try visit(nil)
                }
            }
        }
    }
}

/// The conversations a feed has taken, by id (a conversation named twice is read once): the
/// first 32 in a scan of an inline array, any more in a set. No hashing of names: a
/// `Set` of the names (SipHash over their bytes, and its table) was 6% of a feed of 20.
struct FeedConversations {
    static let inlineCount = 32
    private var first = InlineArray<32, UInt64>(repeating: 0)
    private var firstCount = 0
    private var more = Set<UInt64>()

    /// Adds `id`; false if it was there already.
    mutating func insert(_ id: UInt64) -> Bool {
        for i in 0..<firstCount where first[i] == id { return false }
        if firstCount < Self.inlineCount {
            first[firstCount] = id
            firstCount += 1
            return true
        }
        return more.insert(id).inserted
    }
}

/// A binary max-heap of feed heads keyed by (createdAt, seq), without generics or existentials.
struct FeedHeap {
    struct Entry {
        var createdAt: UInt64
        var seq: UInt64
        var source: Int

        @inline(__always)
        func isAbove(_ other: Entry) -> Bool {
            createdAt != other.createdAt ? createdAt > other.createdAt : seq > other.seq
        }
    }

    var items: [Entry] = []

    mutating func push(_ entry: Entry) {
        items.append(entry)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].isAbove(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMax() -> Entry? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        let count = items.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var best = left
            if left + 1 < count && items[left + 1].isAbove(items[left]) { best = left + 1 }
            guard items[best].isAbove(items[parent]) else { break }
            items.swapAt(best, parent)
            parent = best
        }
        return top
    }
}
