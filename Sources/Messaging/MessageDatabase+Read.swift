import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    typealias V = MessageValueLayout

    /// Position of the record a slot-0 value points to.
    @inline(__always)
    static func position(_ value: UnsafeRawBufferPointer) -> UInt64 { value.loadLE(UInt64.self, at: V.positionOffset) }

    /// Visits the message with this id; returns false (without visiting) when there is none.
    @discardableResult
    package func message(id: String, _ visit: MessageVisitor) throws -> Bool {
        try engine.read { snapshot in
            guard let located = try locate(id: id, in: snapshot) else { return false }
            let conversations = try BTree(snapshot, slot: MessageTree.conversations)
            var name: String? = nil
            try conversations.withValue(for: BTreeKey(located.key.w0)) { name = Self.conversationName($0) }
            guard let name else {
                throw StorageError.corrupted(file: engine.pageFilePath, offset: 0, reason: "message \(id) names a missing conversation")
            }
            try visitMessage(at: located.position, key: located.key, conversation: name, visit)
            return true
        }
    }

    package func message(id: String) throws -> StoredMessage? {
        var result: StoredMessage? = nil
        try message(id: id) { result = $0.stored }
        return result
    }

    /// Walks the messages of `conversationID` from `start` in one direction, appending up to
    /// `limit` messages whose key stays within `bound` (inclusive). Returns whether another
    /// message of the conversation (within `bound`) follows the last one returned.
    @inline(__always)
    func scan(_ snapshot: PageTransaction, conversation conversationID: UInt64, name: String, from start: BTreeKey,
              inclusive: Bool, forward: Bool, bound: BTreeKey, limit: Int, lastKey: UnsafeMutablePointer<BTreeKey>? = nil,
              _ visit: MessageVisitor) throws -> Bool {
        let messages = try BTree(snapshot, slot: MessageTree.messages)
        var cursor = messages.cursor()
        var valid: Bool
        if forward {
            valid = try cursor.seek(atLeast: start)
            if valid && !inclusive, let key = try cursor.key(), key == start { valid = try cursor.next() }
        } else {
            valid = try cursor.seek(atMost: start)
            if valid && !inclusive, let key = try cursor.key(), key == start { valid = try cursor.previous() }
        }
        var taken = 0
        while valid {
            var key = BTreeKey.min
            var position: UInt64 = 0
            try cursor.withCurrent { k, v in
                key = k
                position = Self.position(v)
            }
            guard key.w0 == conversationID, forward ? key <= bound : key >= bound else { return false }
            if taken == limit { return true }
            try visitMessage(at: position, key: key, conversation: name, visit)
            lastKey?.pointee = key
            taken += 1
            valid = forward ? try cursor.next() : try cursor.previous()
        }
        return false
    }

    package func latest(in conversation: String, limit: Int, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return }
            _ = try scan(snapshot, conversation: id, name: conversation, from: BTreeKey(id, .max, .max), inclusive: true,
                         forward: false, bound: BTreeKey(id, 0, 0), limit: limit, visit)
        }
    }

    package func messages(in conversation: String, from: Int64, through: Int64, forward: Bool, limit: Int,
                          _ visit: MessageVisitor) throws {
        guard through >= 0, from <= through else { return }
        let low = UInt64(max(from, 0)), high = UInt64(through)
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return }
            if forward {
                _ = try scan(snapshot, conversation: id, name: conversation, from: BTreeKey(id, low, 0), inclusive: true,
                             forward: true, bound: BTreeKey(id, high, .max), limit: limit, visit)
            } else {
                _ = try scan(snapshot, conversation: id, name: conversation, from: BTreeKey(id, high, .max), inclusive: true,
                             forward: false, bound: BTreeKey(id, low, 0), limit: limit, visit)
            }
        }
    }

    /// Keyset pagination. Returns the messages and the next cursor token (nil when none remain).
    package func page(in conversation: String, after token: String?, limit: Int, forward: Bool,
                      _ visit: MessageVisitor) throws -> String? {
        var start: CursorToken.Position? = nil
        if let token {
            guard let position = CursorToken.decode(token, secret: cursorSecret) else {
                throw MessagingError.invalidCursor("the token is damaged, forged or from another store")
            }
            start = position
        }
        return try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else {
                if start != nil { throw MessagingError.invalidCursor("the cursor belongs to another conversation") }
                return nil
            }
            if let start, start.conversation != id {
                throw MessagingError.invalidCursor("the cursor belongs to another conversation")
            }
            let from = start.map { BTreeKey(id, $0.createdAt, $0.seq) } ?? (forward ? BTreeKey(id, 0, 0) : BTreeKey(id, .max, .max))
            let inclusive = start == nil
            var last = from
            let more = try scan(snapshot, conversation: id, name: conversation, from: from, inclusive: inclusive, forward: forward,
                                bound: forward ? BTreeKey(id, .max, .max) : BTreeKey(id, 0, 0), limit: limit,
                                lastKey: &last, visit)
            guard more else { return nil }
            let position = CursorToken.Position(conversation: id, createdAt: last.w1, seq: last.w2)
            return CursorToken.encode(position, secret: cursorSecret)
        }
    }

    /// Offset pagination: O(log n + limit) through the counted tree.
    package func page(in conversation: String, offset: Int, limit: Int, forward: Bool, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return }
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            let first = try messages.rank(BTreeKey(id, 0, 0))
            let end = try messages.rank(BTreeKey(id &+ 1, 0, 0))
            let total = end - first
            guard offset < total, limit > 0 else { return }
            var cursor = messages.cursor()
            var valid = try cursor.seek(toRank: forward ? first + offset : end - 1 - offset)
            var taken = 0
            while valid && taken < limit {
                var key = BTreeKey.min
                var position: UInt64 = 0
                try cursor.withCurrent { k, v in
                    key = k
                    position = Self.position(v)
                }
                guard key.w0 == id else { break }
                try visitMessage(at: position, key: key, conversation: conversation, visit)
                taken += 1
                valid = forward ? try cursor.next() : try cursor.previous()
            }
        }
    }

    /// Messages with createdAt > after. O(log n).
    package func count(in conversation: String, after: Int64) throws -> Int {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return 0 }
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            let low: BTreeKey = after < 0 ? BTreeKey(id, 0, 0) : BTreeKey(id, UInt64(after) &+ 1, 0)
            if after >= 0 && UInt64(after) >= UInt64(MessageLimits.maxCreatedAt) { return 0 }
            return try messages.rank(BTreeKey(id &+ 1, 0, 0)) - messages.rank(low)
        }
    }

    package func unreadCount(user: String, in conversation: String) throws -> Int {
        try engine.read { snapshot in
            guard let id = try conversationID(conversation, in: snapshot) else { return 0 }
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            let end = try messages.rank(BTreeKey(id &+ 1, 0, 0))
            var marker: (UInt64, UInt64)? = nil
            if let userID = try userID(user, in: snapshot) {
                let markers = try BTree(snapshot, slot: MessageTree.readMarkers)
                try markers.withValue(for: BTreeKey(userID, id)) { v in marker = (v.loadLE(UInt64.self, at: 0), v.loadLE(UInt64.self, at: 8)) }
            }
            let start: Int
            if let marker {
                start = try messages.rank(BTreeKey(id, marker.0, marker.1), inclusive: true)
            } else {
                start = try messages.rank(BTreeKey(id, 0, 0))
            }
            return end - start
        }
    }

    /// The newest `limit` messages across the conversations, merged with a binary heap.
    package func feed(_ conversations: [String], limit: Int, _ visit: MessageVisitor) throws {
        try engine.read { snapshot in
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            var seen = Set<String>()
            var cursors: [BTreeCursor] = []
            var names: [String] = []
            var heap = FeedHeap()
            for name in conversations where seen.insert(name).inserted {
                guard let id = try conversationID(name, in: snapshot) else { continue }
                var cursor = messages.cursor()
                if try cursor.seek(atMost: BTreeKey(id, .max, .max)), let key = try cursor.key(), key.w0 == id {
                    heap.push(FeedHeap.Entry(createdAt: key.w1, seq: key.w2, source: cursors.count))
                    cursors.append(cursor)
                    names.append(name)
                }
            }
            var taken = 0
            while taken < limit, let top = heap.popMax() {
                var key = BTreeKey.min
                var position: UInt64 = 0
                try cursors[top.source].withCurrent { k, v in
                    key = k
                    position = Self.position(v)
                }
                try visitMessage(at: position, key: key, conversation: names[top.source], visit)
                taken += 1
                if taken == limit { break }
                if try cursors[top.source].previous() {
                    var next = BTreeKey.min
                    try cursors[top.source].withCurrent { k, _ in next = k }
                    if next.w0 == key.w0 {
                        heap.push(FeedHeap.Entry(createdAt: next.w1, seq: next.w2, source: top.source))
                    }
                }
            }
        }
    }

    /// Calls `visit` once per conversation, in order: with its newest message, or nil.
    package func latestMessage(in conversations: [String], _ visit: (MessageView?) throws -> Void) throws {
        try engine.read { snapshot in
            let messages = try BTree(snapshot, slot: MessageTree.messages)
            var cursor = messages.cursor()
            for name in conversations {
                guard let id = try conversationID(name, in: snapshot) else {
                    try visit(nil)
                    continue
                }
                var found: (BTreeKey, UInt64)? = nil
                if try cursor.seek(atMost: BTreeKey(id, .max, .max)) {
                    try cursor.withCurrent { k, v in if k.w0 == id { found = (k, Self.position(v)) } }
                }
                if let found {
                    try visitMessage(at: found.1, key: found.0, conversation: name) { try visit($0) }
                } else {
                    try visit(nil)
                }
            }
        }
    }

    /// Conversations by newest live message (descending; ties by name ascending).
    package func conversations(limit: Int) throws -> [ConversationEntry] {
        guard limit > 0 else { return [] }
        return try engine.read { snapshot in
            let activity = try BTree(snapshot, slot: MessageTree.activity)
            let conversations = try BTree(snapshot, slot: MessageTree.conversations)
            var cursor = activity.cursor()
            var valid = try cursor.seekLast()
            var result: [ConversationEntry] = []
            var group: [ConversationEntry] = []
            var groupTime: UInt64 = 0
            func flush() {
                group.sort { $0.name < $1.name }   // Swift String order, as the public API documents "ascending"
                result.append(contentsOf: group.prefix(limit - result.count))
                group.removeAll(keepingCapacity: true)
            }
            while valid {
                guard let key = try cursor.key() else { break }
                if !group.isEmpty && key.w0 != groupTime {
                    flush()
                    if result.count >= limit { break }
                }
                groupTime = key.w0
                var entry: ConversationEntry? = nil
                try conversations.withValue(for: BTreeKey(key.w1)) { v in
                    entry = ConversationEntry(name: Self.conversationName(v), lastActivity: Int64(key.w0),
                                              messageCount: Int(v.loadLE(UInt64.self, at: V.liveCountOffset)))
                }
                guard let entry else {
                    throw StorageError.corrupted(file: engine.pageFilePath, offset: 0, reason: "activity entry names missing conversation \(key.w1)")
                }
                group.append(entry)
                valid = try cursor.previous()
            }
            if !group.isEmpty && result.count < limit { flush() }
            return result
        }
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
