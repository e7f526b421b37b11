// See spec/message-records.md
//
// Constants mirroring the message-layer document: tree slots and their key/value layouts,
// log record types and payload layouts, counters and the hash function. (They live here
// rather than under Sources/Format because they belong to the message layer, which the
// storage core below does not know.) The typed keys, values and records built on them are
// in MessageKeys.swift, MessageValues.swift and MessageRecords.swift.

import ScrollbackBTree
import ScrollbackStorage

/// The trees of the message layer, by catalog slot. on disk: never renumber.
package enum MessageTree: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// `MessageKey` (2 words, packed) → `MessagePointer` (8 B).
    case messages = 0
    /// `MessageIDKey` (the id's hash) → `MessageIDValue` (16 B: the packed `MessageKey`).
    case messageIDs = 1
    /// `NameKey` → 0 B.
    case names = 2
    /// `ConversationKey` → `ConversationRecord` (64 B).
    case conversations = 3
    /// `ActivityKey` → 0 B.
    case activity = 4
    /// `UserKey` → `UserRecord` (32 B).
    case users = 5
    /// `MarkerKey` (user, conversation) → `MarkerValue` (24 B): read marker and membership.
    case readMarkers = 6
    /// (segment id) → 32 B: the storage engine's segment table (`LivenessLayout`).
    case segments = 7
    /// (run id) → 32 B: the storage engine's run table (`LivenessLayout`).
    case runs = 8
    /// `MessageIDCollisionKey` (hash, seq) → `MessageIDValue`: ids whose hash another live id
    /// already has (rare: 64-bit hashes).
    case idCollisions = 9
    /// `LongNameKey` (space, id, chunk) → 32 B: names longer than a record holds inline.
    case longNames = 10
    /// `SearchTermKey` (a term's UTF-8 bytes, 4 words) → `SearchTermValue` (16 B: term id,
    /// postings): the search index's dictionary (spec/message-records.md, "Search index").
    case searchTerms = 11
    /// `SearchPostingKey` (term id, the packed `MessageKey`) → 0 B: one entry per distinct
    /// term of each indexed message — the postings of format 3, empty in format 4 (kept for
    /// the log tail of a format-3 store until `scrollback upgrade` rebuilds its index).
    case searchPostings = 12
    /// `SearchPostingKey` of a block's first posting → `PostingBlock` (246 B): the postings
    /// of format 4, packed (`SearchPostings`).
    case searchPostingBlocks = 13

    /// The tree's name, as `dump` and the tests print it.
    package var description: String {
        switch self {
        case .messages: "messages"
        case .messageIDs: "messageIDs"
        case .names: "names"
        case .conversations: "conversations"
        case .activity: "activity"
        case .users: "users"
        case .readMarkers: "readMarkers"
        case .segments: "segments"
        case .runs: "runs"
        case .idCollisions: "idCollisions"
        case .longNames: "longNames"
        case .searchTerms: "searchTerms"
        case .searchPostings: "searchPostings"
        case .searchPostingBlocks: "searchPostingBlocks"
        }
    }

    /// Whether the storage engine declares the tree itself.
    var isEngineTree: Bool { self == .segments || self == .runs }

    /// Key words and value bytes of the trees the message layer declares.
    var shape: StorageSchema.Tree {
        switch self {
        case .messages: .init(slot: rawValue, keyWords: 2, valueSize: MessagePointer.size)
        case .messageIDs: .init(slot: rawValue, keyWords: 1, valueSize: MessageIDValue.size)
        case .names: .init(slot: rawValue, keyWords: 3, valueSize: 0)
        case .conversations: .init(slot: rawValue, keyWords: 1, valueSize: ConversationRecord.size)
        case .activity: .init(slot: rawValue, keyWords: 2, valueSize: 0)
        case .users: .init(slot: rawValue, keyWords: 1, valueSize: UserRecord.size)
        case .readMarkers: .init(slot: rawValue, keyWords: 2, valueSize: MarkerValue.size)
        case .segments: .init(slot: rawValue, keyWords: 1, valueSize: 32)
        case .runs: .init(slot: rawValue, keyWords: 1, valueSize: 32)
        case .idCollisions: .init(slot: rawValue, keyWords: 2, valueSize: MessageIDValue.size)
        case .longNames: .init(slot: rawValue, keyWords: 3, valueSize: LongName.chunkSize)
        case .searchTerms: .init(slot: rawValue, keyWords: 4, valueSize: SearchTermValue.size)
        case .searchPostings: .init(slot: rawValue, keyWords: 3, valueSize: 0)
        case .searchPostingBlocks: .init(slot: rawValue, keyWords: 3, valueSize: PostingBlock.valueSize)
        }
    }
}

extension BTree {
    /// Opens one of the message layer's trees.
    init(_ transaction: PageTransaction, _ tree: MessageTree) throws {
        try self.init(transaction, slot: tree.rawValue)
    }
}

/// Message flags (record byte 25). on disk: never renumber.
package enum MessageFlags {
    package static let edited: UInt8 = 1
    package static let hasReplyTo: UInt8 = 2
    package static let hasMetadata: UInt8 = 4
    package static let known: UInt8 = 7
}

/// Log record types of the message layer (caller range 16…255). on disk: never renumber.
package enum MessageRecordType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case message = 16
    /// The message's key and its id.
    case delete = 17
    case markRead = 18
    case newConversation = 19
    case newUser = 20
    /// Format 1 only (a compaction copy); never written in format 2.
    case relocate = 21
    /// Written once when the store is created: layer format version u64, cursor secret u64.
    case initialize = 22
    /// The storage engine's records (`LivenessLayout`): retire segments, a segment sealed into
    /// a run, runs merged, a run attached.
    case retireSegment = 23
    case sealed = 24
    case merged = 25
    case attached = 26
    /// A user joins or leaves a conversation: user u64, conversation u64.
    case join = 27
    case leave = 28
    /// A bulk load: the messages of an attached run (run u32, segment u32, count u64).
    case bulkLoad = 29
    /// A replica's mark (source u64, sequence u64): how far the store has applied another
    /// store's changes, committed with them (counters 9 and 10). Not a change.
    case replicaMark = 30
    /// Turns the search index on (empty payload): counters 11…14 (spec/message-records.md,
    /// "Search index").
    case searchEnable = 31
    /// One step of building the search index: postings of messages, the new build cursor.
    case searchBuild = 32
    /// Removes a message's postings (logged before its edit or delete): its key and terms.
    case searchRemove = 33
    /// Turns the search index off (empty payload): frees both trees, clears counters 11…14.
    case searchDisable = 34

    /// The record type's name, as `dump` prints it.
    package var description: String {
        switch self {
        case .message: "message"
        case .delete: "delete"
        case .markRead: "markRead"
        case .newConversation: "newConversation"
        case .newUser: "newUser"
        case .relocate: "relocate"
        case .initialize: "initialize"
        case .retireSegment: "retireSegment"
        case .sealed: "sealed"
        case .merged: "merged"
        case .attached: "attached"
        case .join: "join"
        case .leave: "leave"
        case .bulkLoad: "bulkLoad"
        case .replicaMark: "replicaMark"
        case .searchEnable: "searchEnable"
        case .searchBuild: "searchBuild"
        case .searchRemove: "searchRemove"
        case .searchDisable: "searchDisable"
        }
    }

    /// Whether the storage engine writes and applies the record itself.
    var isEngineRecord: Bool { self == .retireSegment || self == .sealed || self == .merged || self == .attached }
}

extension LogBatch {
    /// Adds a message-layer record (see `append(type:payloadCount:_:)`).
    @discardableResult
    mutating func append(
        type: MessageRecordType, payloadCount: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws -> UInt32 {
        try append(type: type.rawValue, payloadCount: payloadCount, fill)
    }
}

/// Payload layout of a `.message` record. Bytes from `bodyRecordStart` on are the message's
/// *body record*, which is also what a sorted run stores under the message's key.
package enum MessageRecordLayout {
    package static let seqOffset = 0             // u64
    package static let conversationOffset = 8    // u64
    package static let createdAtOffset = 16      // u64
    /// Where the body record starts (kind, flags, lengths, then the bytes).
    package static let bodyRecordStart = 24
    package static let kindOffset = 24           // u8
    package static let flagsOffset = 25          // u8
    package static let idLengthOffset = 26       // u8
    package static let senderLengthOffset = 27   // u8
    package static let replyToLengthOffset = 28  // u8
    package static let reservedOffset = 29       // u8 (zero)
    package static let metadataLengthOffset = 30 // u16
    package static let bodyLengthOffset = 32     // u32
    package static let headerSize = 36

    package static let deletePayloadHeader = 25  // conversationID, createdAt, seq, id length u8; then the id
    package static let markReadPayloadSize = 32  // userID, conversationID, createdAt, seq
    package static let membershipPayloadSize = 16 // userID, conversationID
    package static let namePayloadHeader = 9     // id u64, name length u8, then the name
    package static let initializePayloadSize = 16
    package static let bulkLoadPayloadSize = 16  // run u32, segment u32, count u64
    package static let replicaMarkPayloadSize = 16 // source u64, sequence u64
}

/// Counter slots of `CommittedState.counters`. on disk: never renumber.
package enum MessageCounter: Int, CaseIterable, Sendable, CustomStringConvertible {
    case nextSeq = 0
    case nextConversation = 1
    case nextUser = 2
    case liveMessages = 3
    case cursorSecret = 4
    /// Retirement and merge records applied, counted by the storage engine (`LivenessLayout`).
    case compactions = 5
    /// Message-layer format version (0 before the initialize record is applied).
    case formatVersion = 6
    /// The storage engine's next run id and lowest virtual segment (`LivenessLayout`).
    case nextRun = 7
    case lowestVirtualSegment = 8
    /// A replica's mark (record 30): the source (0 with the sequence 0: never set) and the
    /// sequence of the last change applied from it.
    case replicaSource = 9
    case replicaSequence = 10
    /// The search index (records 31…33): flags (1 = on, 2 = built), the build cursor (a packed
    /// `MessageKey`: messages before it are indexed while building) and the next term id.
    case searchFlags = 11
    case searchCursorHigh = 12
    case searchCursorLow = 13
    case nextTermID = 14

    /// The counter's name, as `dump` prints it.
    package var description: String {
        switch self {
        case .nextSeq: "next seq"
        case .nextConversation: "next conversation id"
        case .nextUser: "next user id"
        case .liveMessages: "live messages"
        case .cursorSecret: "cursor secret"
        case .compactions: "compactions"
        case .formatVersion: "message format version"
        case .nextRun: "next run id"
        case .lowestVirtualSegment: "lowest virtual segment"
        case .replicaSource: "replica source"
        case .replicaSequence: "replica sequence"
        case .searchFlags: "search index flags"
        case .searchCursorHigh: "search build cursor (high word)"
        case .searchCursorLow: "search build cursor (low word)"
        case .nextTermID: "next search term id"
        }
    }
}

extension CommittedState {
    /// A message-layer counter.
    subscript(counter counter: MessageCounter) -> UInt64 {
        get { counters[counter.rawValue] }
        set { counters[counter.rawValue] = newValue }
    }

    /// Raises a counter to at least `value` (counters that only grow: next ids).
    mutating func raise(_ counter: MessageCounter, to value: UInt64) {
        if self[counter: counter] < value { self[counter: counter] = value }
    }
}

/// Versions of the message layer's format.
package enum MessageLimits {
    /// Message-layer format version (spec/message-records.md, "Version history").
    package static let formatVersion: UInt64 = 2
    /// The version of a format-2 store whose search index has been turned on (records 31–34,
    /// slots 11 and 13, counters 11–14): `searchEnable` raises counter 6 to it, so a build that
    /// does not maintain the index refuses the store (`unsupportedVersion`) instead of letting
    /// the index fall behind the messages.
    package static let searchFormatVersion: UInt64 = 4
    /// Format 2 with the search index of the previous layout (one 24-byte key per posting in
    /// slot 12): opened only by `scrollback upgrade`, which rebuilds the index as format 4.
    package static let legacySearchFormatVersion: UInt64 = 3
    /// The largest conversation id and seq the packed messages-tree key holds.
    package static let maxConversationID: UInt64 = (1 << 32) - 2
    package static let maxSeq: UInt64 = (1 << 43) - 1
}

/// The fixed 64-bit hash of names and ids (on disk: never change): FNV-1a 64 over the UTF-8
/// bytes, then the murmur3 fmix64 finalizer.
package enum Hash64 {
    @inline(__always)
    package static func fmix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }

    @inline(__always)
    package static func fnv1a(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
        var h = seed
        for byte in bytes {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        return h
    }

    package static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        fmix(fnv1a(bytes))
    }

    package static func hash(_ string: String) -> UInt64 {
        var copy = string
        return copy.withUTF8 { hash(UnsafeRawBufferPointer($0)) }
    }
}
