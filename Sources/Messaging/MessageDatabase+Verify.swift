import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    /// The storage core's checks plus the message layer's: every messages-tree entry's record
    /// decodes and matches its key, kind, flags and length; the id index matches the messages
    /// exactly; conversation counts and newest entries, the activity index, the names index,
    /// the live message counter and the per-segment live bytes all match what the messages
    /// imply. At most 100 problems of the message layer are reported.
    package func verify() -> [String] {
        var problems = engine.verify()
        do {
            try engine.read { snapshot in
                var audit = try MessageAudit(database: self, snapshot: snapshot)
                try audit.run()
                problems += audit.problems
            }
        } catch {
            problems.append("message layer: \(error)")
        }
        return problems
    }
}

/// One verify pass of the message layer over a snapshot: walks the messages tree once,
/// collecting what the other structures must hold, then checks each structure against it.
struct MessageAudit {
    let database: MessageDatabase
    let snapshot: PageTransaction
    let trees: MessageSchema.Trees
    private(set) var problems: [String] = []

    /// Per conversation: live messages and the newest key, as the messages tree has them.
    private var conversations: [UInt64: (count: UInt64, newest: MessageKey)] = [:]
    private var liveBytes = LiveRecordTally()
    private var total: UInt64 = 0

    init(database: MessageDatabase, snapshot: PageTransaction) throws {
        self.database = database
        self.snapshot = snapshot
        trees = try MessageSchema.Trees(snapshot)
    }

    mutating func report(_ text: String) { if problems.count < 100 { problems.append(text) } }

    mutating func run() throws {
        try checkMessages()
        checkIDIndexAndCounter()
        try checkConversations()
        var report: [String] = []
        try database.engine.verifyLiveness(liveBytes, in: snapshot) { report.append($0) }
        for problem in report { self.report(problem) }
    }

    /// Every messages-tree entry and the record it points at.
    private mutating func checkMessages() throws {
        var cursor = trees.messages.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            var key = MessageKey(conversation: 0, createdAt: 0, seq: 0)
            var pointer = MessagePointer(position: 0, frameLength: 0, kind: 0, flags: 0)
            try cursor.withCurrent { k, v in
                key = MessageKey(k)
                pointer = MessagePointer(v)
            }
            total += 1
            let previous = conversations[key.conversation]?.count ?? 0
            conversations[key.conversation] = (previous + 1, key)
            liveBytes.add(recordAt: pointer.position, frameBytes: UInt64(pointer.frameLength))
            checkRecord(of: key, pointer)
            valid = try cursor.next()
        }
    }

    /// The record matches the entry: frame length, key, kind and flags, and its id's index entry.
    private mutating func checkRecord(of key: MessageKey, _ pointer: MessagePointer) {
        let position = pointer.position
        var found: [String] = []
        do {
            try database.engine.withRecord(at: position) { type, payload in
                let frame = StorageEngine.frameBytes(payloadCount: payload.count)
                if frame != Int(pointer.frameLength) {
                    found.append("message \(key): length \(pointer.frameLength) in the tree, record frame is \(frame) bytes")
                }
                let (header, message) = try MessageRecord.message(type: type, payload: payload, position: position)
                if header.key != key {
                    found.append("message \(key): record at \(LogPositions.describe(position)) holds \(header.conversation)/\(header.createdAt)/\(header.seq)")
                }
                if header.kind != pointer.kind || header.flags != pointer.flags {
                    found.append("message \(key): kind/flags \(pointer.kind)/\(pointer.flags) in the tree, \(header.kind)/\(header.flags) in the record")
                }
                let hash = Hash64.hash(UnsafeRawBufferPointer(rebasing: message[header.idStart..<header.senderStart]))
                var indexed: MessageIDValue? = nil
                try trees.ids.withValue(for: MessageIDKey(idHash: hash, seq: key.seq).treeKey) { indexed = MessageIDValue($0) }
                if indexed != MessageIDValue(conversation: key.conversation, createdAt: key.createdAt) {
                    found.append("message \(key): id index entry missing or wrong")
                }
            }
        } catch {
            found.append("message \(key): record at \(LogPositions.describe(position)): \(error)")
        }
        for problem in found { report(problem) }
    }

    /// One id-index entry per message, and the live-message counter.
    private mutating func checkIDIndexAndCounter() {
        if trees.ids.count != trees.messages.count {
            report("id index holds \(trees.ids.count) entries, messages tree \(trees.messages.count)")
        }
        let counted = snapshot.state[counter: .liveMessages]
        if counted != total { report("live message counter \(counted), messages tree holds \(total)") }
    }

    /// Conversation records against the messages, with their names and activity entries.
    private mutating func checkConversations() throws {
        var active = 0
        var cursor = trees.conversations.cursor()
        var valid = try cursor.seekFirst()
        while valid {
            var id: UInt64 = 0
            var record = ConversationRecord(liveCount: 0, newestCreatedAt: 0, newestSeq: 0)
            var name = ""
            try cursor.withCurrent { k, v in
                id = ConversationKey(k).id
                record = ConversationRecord(v)
                name = ConversationRecord.name(in: v)
            }
            let expected = conversations.removeValue(forKey: id) ?? (0, MessageKey(conversation: 0, createdAt: 0, seq: 0))
            if record.liveCount != expected.count {
                report("conversation \(name): count \(record.liveCount), messages tree holds \(expected.count)")
            }
            if expected.count > 0 {
                active += 1
                try checkNewest(record, of: id, name: name, expected: expected.newest)
            }
            if try !trees.names.contains(NameKey(space: .conversation, nameHash: Hash64.hash(name), id: id).treeKey) {
                report("conversation \(name): names entry missing")
            }
            valid = try cursor.next()
        }
        for (id, _) in conversations { report("messages of conversation \(id), which does not exist") }
        if trees.activity.count != active {
            report("activity index holds \(trees.activity.count) entries, \(active) conversations have messages")
        }
    }

    private mutating func checkNewest(_ record: ConversationRecord, of id: UInt64, name: String, expected: MessageKey) throws {
        if record.newestCreatedAt != expected.createdAt || record.newestSeq != expected.seq {
            report("conversation \(name): newest \(record.newestCreatedAt)/\(record.newestSeq), messages tree says \(expected.createdAt)/\(expected.seq)")
        }
        if try !trees.activity.contains(ActivityKey(newestCreatedAt: expected.createdAt, conversation: id).treeKey) {
            report("conversation \(name): activity entry missing")
        }
    }
}
