import ScrollbackBTree
import ScrollbackStorage

extension MessageSchema {
    /// The share of each leaf a bulk load fills when it builds a tree bottom-up. The room left
    /// takes the first inserts after the load without splits: with full leaves every new
    /// message split a leaf of the id index (random hashes) and often one of the messages tree
    /// (a conversation's newest key lands inside a leaf) — measured on the reference dataset,
    /// the ~2,400 sends of the benchmark's readers-with-a-writer phase grew those two trees
    /// from 45 to 70 MiB (spec/message-records.md, record 29 bulkLoad).
    static let bulkLeafFill = 0.9

    /// A bulk load: every record of the attached run enters the trees. Its messages tree
    /// entries point at (virtual segment, ordinal in the run); the run is in key order, so an
    /// empty messages tree is built bottom-up (leaves `bulkLeafFill` full, branches full), and
    /// the id index too when it is empty (its entries sorted by hash). Conversation counts and newest entries change once
    /// per conversation. Deterministic: it reads only the run (durable before the record) and
    /// the trees.
    static func applyBulkLoad(_ load: BulkLoadRecord, _ context: SchemaApplyContext, _ trees: Trees,
                              _ liveness: inout LivenessLedger, _ conversations: inout ConversationUpdates) throws {
        var builder = trees.messages.count == 0 ? try BTreeBuilder(trees.messages, leafFill: bulkLeafFill) : nil
        var ids: [(hash: UInt64, key: MessageKey)] = []
        ids.reserveCapacity(Int(min(load.count, 1 << 24)))
        var ordinal: UInt32 = 0
        var highestSeq: UInt64 = 0
        var group: (conversation: UInt64, count: UInt64, newest: MessageKey)? = nil
        var postings = SearchIndex.BatchedPostings(trees.transaction)
        try context.forEachRecord(inRun: load.run) { runKey, tag, payload in
            let key = MessageKey(runKey)
            // Built only for an error (the string of every record was ~5% of the load).
            func describe() -> String { "run \(load.run) record \(ordinal)" }
            guard tag == load.segment, key.seq != 0, key.seq <= MessageKey.maxSeq,
                  key.conversation <= MessageLimits.maxConversationID,
                  key.createdAt < UInt64(ArgumentLimits.createdAt.upperBound) else {
                throw MessageBody.corrupted(describe(), "bulk-loaded message \(key) of segment \(tag) is out of range")
            }
            let body = try MessageBody.parse(payload, describe())
            try MessagePointer(position: LogPositions.make(segment: load.segment, offset: ordinal)).withBytes { pointer in
                if builder != nil {
                    try builder!.append(key.treeKey, value: pointer)
                } else {
                    // A load's seqs are new: a key that exists means the run is not this load's.
                    guard try trees.messages.insert(key.treeKey, value: pointer) else {
                        throw MessageBody.corrupted(describe(), "bulk-loaded message \(key) is in the store already")
                    }
                }
            }
            ids.append((Hash64.hash(UnsafeRawBufferPointer(rebasing: payload[body.idStart..<body.senderStart])), key))
            try postings.message(key, text: UnsafeRawBufferPointer(rebasing: payload[body.textStart..<body.end]), trees.transaction)
            highestSeq = max(highestSeq, key.seq)
            if let current = group, current.conversation == key.conversation {
                group = (current.conversation, current.count + 1, key)
            } else {
                if let done = group { try conversations.messagesAdded(done.conversation, count: done.count, newest: done.newest, trees) }
                group = (key.conversation, 1, key)
            }
            ordinal &+= 1
        }
        if let done = group { try conversations.messagesAdded(done.conversation, count: done.count, newest: done.newest, trees) }
        try postings.flush(trees.transaction)
        guard UInt64(ordinal) == load.count else {
            throw MessageBody.corrupted("run \(load.run)", "holds \(ordinal) records, the bulk load record says \(load.count)")
        }
        try builder?.finish()
        try insertIDs(&ids, trees)
        liveness.recordsBecameLive(inSegment: load.segment, count: Int64(ordinal))
        trees.transaction.state[counter: .liveMessages] &+= UInt64(ordinal)
        trees.transaction.state.raise(.nextSeq, to: highestSeq &+ 1)
    }

    /// Orders a load's ids by (hash, seq), the id index's build order: one stable counting pass
    /// on the hashes' top bits (the hashes are uniform: about 8 ids per bucket), then each
    /// bucket sorted by (hash, seq). O(n) expected; the comparison sort it replaced was ~4% of
    /// the reference load's time.
    static func sortByHash(_ ids: inout [(hash: UInt64, key: MessageKey)]) {
        func before(_ a: (hash: UInt64, key: MessageKey), _ b: (hash: UInt64, key: MessageKey)) -> Bool {
            a.hash != b.hash ? a.hash < b.hash : a.key.seq < b.key.seq
        }
        guard ids.count > 64 else {
            ids.sort(by: before)
            return
        }
        let bits = min(20, max(4, Int.bitWidth - (ids.count / 8).leadingZeroBitCount))
        let shift = UInt64(64 - bits)
        var starts = [Int](repeating: 0, count: (1 << bits) + 1)
        for entry in ids { starts[Int(entry.hash >> shift) + 1] += 1 }
        for b in 0..<(1 << bits) { starts[b + 1] += starts[b] }
        var next = starts
        var sorted = [(hash: UInt64, key: MessageKey)](unsafeUninitializedCapacity: ids.count) { buffer, initialized in
            for entry in ids {
                let b = Int(entry.hash >> shift)
                (buffer.baseAddress! + next[b]).initialize(to: entry)
                next[b] += 1
            }
            initialized = ids.count
        }
        sorted.withUnsafeMutableBufferPointer { buffer in
            for b in 0..<(1 << bits) where starts[b + 1] - starts[b] > 1 {
                let bucket = starts[b]..<starts[b + 1]
                guard bucket.count <= 32 else {   // hashes that crowd one bucket: no quadratic sort
                    var crowded = UnsafeMutableBufferPointer(rebasing: buffer[bucket])
                    crowded.sort(by: before)
                    continue
                }
                // Insertion sort: buckets hold a few entries each.
                for i in bucket.dropFirst() {
                    let entry = buffer[i]
                    var j = i
                    while j > bucket.lowerBound && before(entry, buffer[j - 1]) {
                        buffer[j] = buffer[j - 1]
                        j -= 1
                    }
                    buffer[j] = entry
                }
            }
        }
        ids = sorted
    }

    /// Id index entries of a bulk load: bottom-up into an empty index (the first id of each
    /// hash in the main tree, the others in the collision tree), else one insert each.
    private static func insertIDs(_ ids: inout [(hash: UInt64, key: MessageKey)], _ trees: Trees) throws {
        guard trees.ids.count == 0 else {
            for entry in ids { try IDIndex.insert(idHash: entry.hash, key: entry.key, trees) }
            return
        }
        sortByHash(&ids)
        var builder = try BTreeBuilder(trees.ids, leafFill: bulkLeafFill)
        var previous: UInt64? = nil
        for entry in ids {
            // The value's bytes on the stack: an array per id was a million allocations a load.
            try MessageIDValue(key: entry.key).withBytes { value in
                if entry.hash == previous {
                    try trees.idCollisions.insert(MessageIDCollisionKey(idHash: entry.hash, seq: entry.key.seq).treeKey,
                                                  value: value)
                } else {
                    try builder.append(MessageIDKey(idHash: entry.hash).treeKey, value: value)
                }
            }
            previous = entry.hash
        }
        try builder.finish()
    }
}

extension ConversationUpdates {
    /// `count` new live messages in `conversation`, the newest of them `newest`.
    mutating func messagesAdded(_ conversation: UInt64, count: UInt64, newest: MessageKey, _ trees: MessageSchema.Trees) throws {
        let i = try state(of: conversation, trees)
        var record = states[i].record
        if record.liveCount == 0
            || newest.isAfter(MessageKey(conversation: conversation, createdAt: record.newestCreatedAt, seq: record.newestSeq)) {
            record.newestCreatedAt = newest.createdAt
            record.newestSeq = newest.seq
        }
        record.liveCount &+= count
        states[i].record = record
    }
}
