import ScrollbackBTree
import ScrollbackStorage

extension MessageDatabase {
    /// The storage core's checks plus the message layer's: every messages-tree entry's record
    /// decodes and matches its key, kind, flags and length; the id index matches the messages
    /// exactly; conversation counts and newest entries, the activity index, the names index,
    /// the live message counter and the per-segment live bytes all match what the messages
    /// imply; with the search index on, its postings and terms are exactly those of the
    /// messages it covers. At most 100 problems of the message layer are reported.
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
    private var liveRecords = LiveRecordTally()
    private var total: UInt64 = 0
    /// Id index entries (main and collision) the messages imply.
    private var expectedIDs = 0
    /// Which messages the search index covers, and the postings per term they imply.
    private let searchCoverage: SearchCoverage
    /// The index's trees (verify runs on stores of format 4: format 3 is refused at open).
    private let searchTrees: (terms: BTree, blocks: SearchPostings)?
    private var expectedPostings: [[UInt8]: UInt64] = [:]

    init(database: MessageDatabase, snapshot: PageTransaction) throws {
        self.database = database
        self.snapshot = snapshot
        trees = try MessageSchema.Trees(snapshot)
        searchCoverage = SearchCoverage(snapshot.state)
        searchTrees = searchCoverage.isEnabled ? (try BTree(snapshot, .searchTerms), try SearchPostings(snapshot)) : nil
    }

    mutating func report(_ text: String) { if problems.count < 100 { problems.append(text) } }

    mutating func run() throws {
        try checkMessages()
        checkIDIndexAndCounter()
        try checkConversations()
        if let searchTrees { try checkSearchIndex(searchTrees) }
        var report: [String] = []
        try database.engine.verifyLiveness(liveRecords, in: snapshot) { report.append($0) }
        for problem in report { self.report(problem) }
    }

    /// Every messages-tree entry and the record it points at.
    private mutating func checkMessages() throws {
        var cursor = trees.messages.cursor()
        var valid = try cursor.seekFirst()
        var reader = database.engine.recordReader(for: snapshot)
        while valid {
            var key = MessageKey(conversation: 0, createdAt: 0, seq: 0)
            var pointer = MessagePointer(position: 0)
            try cursor.withCurrent { k, v in
                key = MessageKey(k)
                pointer = MessagePointer(v)
            }
            total += 1
            let previous = conversations[key.conversation]?.count ?? 0
            conversations[key.conversation] = (previous + 1, key)
            liveRecords.add(recordAt: pointer.position)
            checkRecord(of: key, pointer, &reader)
            valid = try cursor.next()
        }
    }

    /// The record matches the entry (its key), and its id's index entry names it.
    private mutating func checkRecord(of key: MessageKey, _ pointer: MessagePointer, _ reader: inout RecordReader) {
        var found: [String] = []
        do {
            try database.withMessage(at: pointer.position, key: key, &reader) { body, record in
                let hash = Hash64.hash(UnsafeRawBufferPointer(rebasing: record[body.idStart..<body.senderStart]))
                var indexed: MessageKey? = nil
                try trees.ids.withValue(for: MessageIDKey(idHash: hash).treeKey) { indexed = MessageIDValue($0).key }
                if indexed != key {
                    try trees.idCollisions.withValue(for: MessageIDCollisionKey(idHash: hash, seq: key.seq).treeKey) {
                        indexed = MessageIDValue($0).key
                    }
                }
                if indexed != key { found.append("message \(key): id index entry missing or wrong") }
                if let index = searchTrees, searchCoverage.covers(key) {
                    let text = body.text(in: record)
                    for term in SearchTokenizer.indexTerms(of: text) {
                        expectedPostings[term, default: 0] += 1
                        var termID: UInt64? = nil
                        try index.terms.withValue(for: SearchTermKey.key(term)) { termID = SearchTermValue($0).termID }
                        guard let termID, try index.blocks.contains(Posting(term: termID, key)) else {
                            found.append("message \(key): search posting of term \"\(String(decoding: term, as: UTF8.self))\" missing")
                            continue
                        }
                    }
                }
            }
        } catch {
            found.append("message \(key): record at \(LogPositions.describe(pointer.position)): \(error)")
        }
        for problem in found { report(problem) }
    }

    /// One id-index entry (main or collision) per message, and the live-message counter.
    private mutating func checkIDIndexAndCounter() {
        if trees.ids.count + trees.idCollisions.count != trees.messages.count {
            report("id index holds \(trees.ids.count) + \(trees.idCollisions.count) entries, messages tree \(trees.messages.count)")
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
            try cursor.withCurrent { k, v in
                id = ConversationKey(k).id
                record = ConversationRecord(v)
            }
            let name = try MessageDatabase.storedName(.conversation, id: id, snapshot) ?? ""
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

    /// The terms tree holds exactly the terms of the covered messages, each with their number
    /// of postings, and the postings tree exactly those postings (each one was looked up by
    /// `checkRecord`, so equal counts leave no extra).
    private mutating func checkSearchIndex(_ index: (terms: BTree, blocks: SearchPostings)) throws {
        let expectedTotal = expectedPostings.values.reduce(0, +)
        var held = 0
        var disorder: [String] = []
        var previous: Posting? = nil
        try index.blocks.forEachPosting { posting in
            if let previous, !(previous < posting), disorder.count < 10 {
                disorder.append("search postings out of order: \(posting) after \(previous)")
            }
            previous = posting
            held += 1
        }
        for problem in disorder { report(problem) }
        if UInt64(held) != expectedTotal {
            report("search index holds \(held) postings, the messages it covers imply \(expectedTotal)")
        }
        var cursor = index.terms.cursor()
        var valid = try cursor.seekFirst()
        var seen = 0
        var nextTermID = snapshot.state[counter: .nextTermID]
        while valid {
            var term: [UInt8] = []
            var value = SearchTermValue(termID: 0, postings: 0)
            try cursor.withCurrent { k, v in
                term = SearchTermKey.bytes(of: k)
                value = SearchTermValue(v)
            }
            seen += 1
            let expected = expectedPostings[term] ?? 0
            if value.postings != expected {
                report("search term \"\(String(decoding: term, as: UTF8.self))\": \(value.postings) postings, messages imply \(expected)")
            }
            if value.termID == 0 || value.termID >= max(nextTermID, 1) {
                report("search term \"\(String(decoding: term, as: UTF8.self))\": id \(value.termID) is not below the next term id \(nextTermID)")
                nextTermID = .max
            }
            valid = try cursor.next()
        }
        if seen != expectedPostings.count {
            report("search index holds \(seen) terms, the messages it covers have \(expectedPostings.count)")
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
