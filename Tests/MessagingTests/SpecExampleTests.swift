import Foundation
@testable import Scrollback
import ScrollbackFormat
import ScrollbackLog
@testable import ScrollbackMessaging
@testable import ScrollbackStorage
import ScrollbackBTree
import Testing

/// The worked examples and test vectors of spec/message-records.md and
/// spec/storage-records.md. The hex examples are read from the documents (```hex NAME
/// blocks), so neither the documents nor the code can drift without failing here.
@Suite struct SpecExampleTests {
    /// The bytes of the block opened by "```hex NAME" in spec/DOCUMENT. Each line is
    /// `offset: hex bytes ; comment`; the offsets must match the running byte count.
    static func hexExample(_ name: String, in document: String = "message-records.md") throws -> [UInt8] {
        let specDirectory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("spec")
        let text = try String(contentsOf: specDirectory.appendingPathComponent(document), encoding: .utf8)
        let blocks = text.components(separatedBy: "```hex \(name)\n")
        #expect(blocks.count == 2, "exactly one hex block \(name) in \(document)")
        let block = try #require(blocks.count == 2 ? blocks[1].components(separatedBy: "```").first : nil)
        var bytes: [UInt8] = []
        for line in block.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let offset = Int(parts[0], radix: 16) else {
                Issue.record("bad example line in \(name): \(line)")
                continue
            }
            #expect(offset == bytes.count, "line offset \(parts[0]) of \(name) in \(document)")
            let hex = parts[1].split(separator: ";", maxSplits: 1).first ?? ""
            for pair in hex.split(separator: " ") {
                bytes.append(try #require(UInt8(pair, radix: 16), "bad hex \(pair) in \(name)"))
            }
        }
        return bytes
    }

    static func storageExample(_ name: String) throws -> [UInt8] { try hexExample(name, in: "storage-records.md") }

    /// The frame a batch holds for one record: its type byte and its payload.
    static func typeAndPayload(_ batch: ScrollbackLog.LogBatch) -> (UInt8, [UInt8]) {
        let bytes = batch.bytes
        let length = bytes.withUnsafeBytes { Int($0.loadLE(UInt32.self, at: LogSegmentLayout.frameLengthOffset)) }
        #expect(bytes.count == LogSegmentLayout.frameHeaderSize + length)
        return (bytes[LogSegmentLayout.frameTypeOffset], Array(bytes.dropFirst(LogSegmentLayout.frameHeaderSize)))
    }

    @Test func hashVectors() {
        let vectors: [(String, UInt64)] = [
            ("", 0xefd0_1f60_ba99_2926), ("a", 0x82a2_a958_a9be_ce5b), ("c1", 0x4ad2_19d4_c239_7083),
            ("m1", 0x5455_e9ed_ff2d_e8f3), ("general", 0x1cf2_653e_2086_7722), ("héllo", 0xc185_4127_47a0_264d),
            ("m-42", 0xaf39_ce10_aaf2_c809),
        ]
        for (text, expected) in vectors { #expect(Hash64.hash(text) == expected, "\(text)") }
    }

    // MARK: spec/message-records.md

    static let example = StoredMessage(id: "m-42", conversation: "general", sender: "alice", createdAt: 1_700_000_000_123,
                                       kind: 1, body: "hi there", replyTo: "m-41", edited: false, metadata: Array("x=1".utf8))

    @Test func layerNumbersMatchTheSpec() {
        #expect(MessageLimits.formatVersion == 2)
        #expect(MessageLimits.maxConversationID == (1 << 32) - 2 && MessageLimits.maxSeq == (1 << 43) - 1)
        #expect(MessageRecordLayout.headerSize == 36 && MessageRecordLayout.bodyRecordStart == 24 && MessageBody.headerSize == 12)
        let types: [(MessageRecordType, UInt8)] = [
            (.message, 16), (.delete, 17), (.markRead, 18), (.newConversation, 19), (.newUser, 20), (.relocate, 21),
            (.initialize, 22), (.retireSegment, 23), (.sealed, 24), (.merged, 25), (.attached, 26), (.join, 27),
            (.leave, 28), (.bulkLoad, 29), (.replicaMark, 30), (.searchEnable, 31), (.searchBuild, 32), (.searchRemove, 33),
            (.searchDisable, 34),
        ]
        for (type, value) in types { #expect(type.rawValue == value, "\(type)") }
        let shapes: [(MessageTree, Int, Int)] = [
            (.messages, 2, 8), (.messageIDs, 1, 16), (.names, 3, 0), (.conversations, 1, 64), (.activity, 2, 0),
            (.users, 1, 32), (.readMarkers, 2, 24), (.segments, 1, 32), (.runs, 1, 32), (.idCollisions, 2, 16),
            (.longNames, 3, 32), (.searchTerms, 4, 16), (.searchPostings, 3, 0),
        ]
        for (tree, words, size) in shapes {
            #expect(tree.shape.keyWords == words && tree.shape.valueSize == size, "\(tree)")
        }
        let counters: [(MessageCounter, Int)] = [
            (.nextSeq, 0), (.nextConversation, 1), (.nextUser, 2), (.liveMessages, 3), (.cursorSecret, 4),
            (.compactions, 5), (.formatVersion, 6), (.nextRun, 7), (.lowestVirtualSegment, 8),
            (.replicaSource, 9), (.replicaSequence, 10), (.searchFlags, 11), (.searchCursorHigh, 12), (.searchCursorLow, 13),
            (.nextTermID, 14),
        ]
        for (counter, slot) in counters { #expect(counter.rawValue == slot, "\(counter)") }
    }

    @Test func messageRecordDecodes() throws {
        let payload = try Self.hexExample("message-record")
        #expect(payload.count == 60)
        try payload.withUnsafeBytes { raw in
            let header = try MessageHeader.parse(raw, position: 0, offset: 0)
            #expect(header.seq == 7 && header.conversation == 2 && header.createdAt == 1_700_000_000_123)
            #expect(header.body.kind == MessageKind.text.rawValue
                    && header.body.flags == MessageFlags.hasReplyTo | MessageFlags.hasMetadata)
            #expect(header.body.idLength == 4 && header.body.senderLength == 5 && header.body.replyToLength == 4
                    && header.body.metadataLength == 3 && header.body.bodyLength == 8)
            let stored = MessageView.with(key: header.key, body: header.body, record: MessageHeader.bodyRecord(of: raw),
                                          conversation: "general") { $0.stored }
            #expect(stored == Self.example)
        }
        // The encoder produces exactly these bytes.
        var batch = ScrollbackLog.LogBatch()
        try MessageRecord.append(Self.example, conversationID: 2, seq: 7, flags: 0, into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == MessageRecordType.message.rawValue)
        #expect(encoded == payload)
        #expect(batch.bytes.count == 69)
        // The body record (what a run stores) is the payload from byte 24 on, and decodes alone.
        try Array(payload.dropFirst(24)).withUnsafeBytes { record in
            #expect(record.count == 36)
            let body = try MessageBody.parse(record, "test")
            #expect(body.end == record.count && body.metadataLength == 3 && body.bodyLength == 8)
            let stored = MessageView.with(key: MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 7), body: body,
                                          record: record, conversation: "general") { $0.stored }
            #expect(stored == Self.example)
        }
        // A damaged length, flag or reserved byte is corruption, not a trap.
        for (offset, value) in [(0x20, UInt8(9)), (0x19, UInt8(2)), (0x19, UInt8(0x0E)), (0x1D, UInt8(1)), (0x18, UInt8(7))] {
            var damaged = payload
            damaged[offset] = value
            _ = damaged.withUnsafeBytes { raw in
                #expect(throws: StorageError.self, "byte \(offset) = \(value)") { try MessageHeader.parse(raw, position: 0, offset: 0) }
            }
        }
        for cut in 0..<payload.count {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try MessageHeader.parse(raw, position: 0, offset: 0) }
            }
        }
    }

    /// The messages-tree entry of the example: its packed key and its pointer value.
    @Test func messagesTreeEntryExample() throws {
        let entry = try Self.hexExample("messages-entry")
        #expect(entry.count == 2 * 8 + MessagePointer.size)
        let (w0, w1, position) = entry.withUnsafeBytes {
            ($0.loadLE(UInt64.self, at: 0), $0.loadLE(UInt64.self, at: 8), $0.loadLE(UInt64.self, at: 16))
        }
        #expect(w0 == 0x0000_0002_000C_5E7F && w1 == 0x2B43_D800_0000_0007)
        let key = MessageKey(ScrollbackBTree.BTreeKey(w0, w1))
        #expect(key.conversation == 2 && key.createdAt == 1_700_000_000_123 && key.seq == 7)
        #expect(MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 7).treeKey == ScrollbackBTree.BTreeKey(w0, w1))
        #expect(key.runKey == RunKey(2, 1_700_000_000_123, 7))
        let pointer = Array(entry[16...]).withUnsafeBytes { MessagePointer($0) }
        #expect(pointer.position == position && position == 0x0000_0001_0000_0018)
        #expect(LogPositions.segment(pointer.position) == 1)
        #expect(LogPositions.offset(pointer.position) == UInt32(LogSegmentLayout.headerSize))
        #expect(MessagePointer(position: LogPositions.make(segment: 1, offset: 24)).bytes == Array(entry[16...]))
        #expect(MessagePointer(position: LogPositions.make(segment: 1, offset: 24)).withBytes { Array($0) } == Array(entry[16...]))
        // Packing keeps the order of (conversation, createdAt, seq).
        let keys = [MessageKey(conversation: 1, createdAt: (1 << 53) - 1, seq: (1 << 43) - 1),
                    MessageKey(conversation: 2, createdAt: 0, seq: 1), MessageKey(conversation: 2, createdAt: 0, seq: 2),
                    MessageKey(conversation: 2, createdAt: (1 << 21) - 1, seq: (1 << 43) - 1),
                    MessageKey(conversation: 2, createdAt: 1 << 21, seq: 0), key,
                    MessageKey(conversation: 3, createdAt: 0, seq: 0)]
        for (a, b) in zip(keys, keys.dropFirst()) { #expect(a.treeKey < b.treeKey, "\(a) < \(b)") }
        for k in keys { #expect(MessageKey(k.treeKey) == k) }
    }

    /// The message-id index entry of the example: hash64 of the id, then the packed key.
    @Test func messageIDEntryExample() throws {
        let entry = try Self.hexExample("message-id-entry")
        #expect(entry.count == 8 + MessageIDValue.size)
        let hash = entry.withUnsafeBytes { $0.loadLE(UInt64.self, at: 0) }
        #expect(hash == Hash64.hash("m-42") && hash == 0xaf39_ce10_aaf2_c809)
        #expect(MessageIDKey(ScrollbackBTree.BTreeKey(hash)).idHash == hash)
        let value = Array(entry[8...])
        let decoded = value.withUnsafeBytes { MessageIDValue($0) }
        #expect(decoded.key == MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 7))
        #expect(MessageIDValue(key: decoded.key).bytes == value)
        #expect(MessageIDValue(key: decoded.key).withBytes { Array($0) } == value)
    }

    @Test func joinRecordExample() throws {
        let payload = try Self.hexExample("join-record")
        #expect(payload.count == MessageRecordLayout.membershipPayloadSize)
        try payload.withUnsafeBytes { raw in
            let join = try MembershipRecord.decode(.join, raw, position: 0)
            #expect(join.entry.user == 3 && join.entry.conversation == 2 && join.joins)
            #expect(try MembershipRecord.decode(.leave, raw, position: 0).joins == false)
        }
        var batch = ScrollbackLog.LogBatch()
        try MembershipRecord(entry: MarkerKey(user: 3, conversation: 2), joins: true).append(into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 27 && encoded == payload)
        for cut in 0..<payload.count {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try MembershipRecord.decode(.join, raw, position: 0) }
            }
        }
    }

    @Test func searchBuildRecordExample() throws {
        let payload = try Self.hexExample("search-build-record")
        let record = SearchBuildRecord(
            cursor: MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 8).treeKey, built: false,
            entries: [SearchEntry(key: MessageKey(conversation: 2, createdAt: 1_700_000_000_000, seq: 7),
                                  terms: [Array("cafe".utf8), Array("你好".utf8)])])
        let decoded = try payload.withUnsafeBytes { try SearchBuildRecord.decode($0, position: 0) }
        #expect(decoded == record)
        var batch = ScrollbackLog.LogBatch()
        try record.append(into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 32 && encoded == payload)
        // The terms the tokenizer gives that body (the example shows two of them).
        #expect(SearchTokenizer.indexTerms(of: "Café 你好").map { String(decoding: $0, as: UTF8.self) } == ["cafe", "你好", "好"])
        for cut in 0..<payload.count {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try SearchBuildRecord.decode(raw, position: 0) }
            }
        }
        // The entry alone is a searchRemove record.
        let entry = Array(payload[SearchBuildRecord.headerSize...])
        #expect(try entry.withUnsafeBytes { try SearchRemoveRecord.decode($0, position: 0) } == record.entries[0])
        // A term with a zero byte, an empty term, bytes after the entry: corrupt.
        for bad in [entry.prefix(0x27 - 0x15) + [1, 0] + entry.suffix(from: 0x2c - 0x15), entry.prefix(0x27 - 0x15) + [0, 0],
                    entry + [0]] {
            _ = Array(bad).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try SearchRemoveRecord.decode(raw, position: 0) }
            }
        }
    }

    @Test func replicaMarkRecordExample() throws {
        let payload = try Self.hexExample("replica-mark-record")
        #expect(payload.count == MessageRecordLayout.replicaMarkPayloadSize)
        let decoded = try payload.withUnsafeBytes { try ReplicaMarkRecord.decode($0, position: 0) }
        #expect(decoded == ReplicaMarkRecord(source: 0x1122_3344_5566_7788, sequence: 1000))
        var batch = ScrollbackLog.LogBatch()
        try ReplicaMarkRecord(source: 0x1122_3344_5566_7788, sequence: 1000).append(into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 30 && encoded == payload)
        for cut in 0..<payload.count {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try ReplicaMarkRecord.decode(raw, position: 0) }
            }
        }
    }

    @Test func markReadRecordExample() throws {
        let payload = try Self.hexExample("mark-read-record")
        #expect(payload.count == MessageRecordLayout.markReadPayloadSize + 3)
        try payload.withUnsafeBytes { raw in
            let mark = try MarkReadRecord.decode(raw, position: 0)
            #expect(mark.marker == MarkerKey(user: 3, conversation: 2))
            #expect(mark.through == MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 7))
            #expect(mark.id.map { String(decoding: $0, as: UTF8.self) } == "m7")
            // Without the id (32 bytes): valid, no id.
            let short = try MarkReadRecord.decode(UnsafeRawBufferPointer(rebasing: raw[..<32]), position: 0)
            #expect(short.id == nil && short.through == mark.through)
        }
        var batch = ScrollbackLog.LogBatch()
        try MarkReadRecord.append(marker: MarkerKey(user: 3, conversation: 2),
                                  through: MessageKey(conversation: 2, createdAt: 1_700_000_000_123, seq: 7), id: "m7", into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 18 && encoded == payload)
        // Every other length, and an id length that disagrees, is corruption.
        for cut in 0..<payload.count where cut != 32 {
            _ = Array(payload.prefix(cut)).withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try MarkReadRecord.decode(raw, position: 0) }
            }
        }
        var zeroLength = payload
        zeroLength[32] = 0
        _ = Array(zeroLength.prefix(33)).withUnsafeBytes { raw in
            #expect(throws: StorageError.self) { try MarkReadRecord.decode(raw, position: 0) }
        }
    }

    @Test func bulkLoadRecordExample() throws {
        let payload = try Self.hexExample("bulk-load-record")
        #expect(payload.count == MessageRecordLayout.bulkLoadPayloadSize)
        let load = try payload.withUnsafeBytes { try BulkLoadRecord.decode($0, position: 0) }
        #expect(load.run == 8 && load.segment == 0xFFFF_FFFE && load.count == 2)
        #expect(LogPositions.isVirtual(load.segment))
        var batch = ScrollbackLog.LogBatch()
        try BulkLoadRecord(run: 8, segment: 0xFFFF_FFFE, count: 2).append(into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 29 && encoded == payload)
        // The pointers of its two messages: (virtual segment, ordinal).
        #expect(LogPositions.make(segment: load.segment, offset: 0) == 0xFFFF_FFFE_0000_0000)
        #expect(LogPositions.make(segment: load.segment, offset: 1) == 0xFFFF_FFFE_0000_0001)
        _ = Array(payload.prefix(15)).withUnsafeBytes { raw in
            #expect(throws: StorageError.self) { try BulkLoadRecord.decode(raw, position: 0) }
        }
    }

    @Test func cursorTokenExample() {
        let secret: UInt64 = 0x0123_4567_89AB_CDEF
        let position = CursorToken.Position(conversation: 2, createdAt: 1_700_000_000_123, seq: 7)
        let token = "AwIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAANhLJLdZBwRw"
        #expect(CursorToken.messageVersion(forward: false) == 3 && CursorToken.messageVersion(forward: true) == 4)
        #expect(CursorToken.encode(position, secret: secret, version: 3) == token)
        #expect(CursorToken.decode(token, secret: secret, version: 3) == position)
        #expect(CursorToken.decode(token, secret: secret, version: 4) == nil)
        #expect(CursorToken.decode(token, secret: secret &+ 1) == nil)
        let oldestFirst = "BAIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAADPqbb6YvAok"
        #expect(CursorToken.encode(position, secret: secret, version: 4) == oldestFirst)
        #expect(CursorToken.decode(oldestFirst, secret: secret)?.version == 4)
        #expect(CursorToken.decode(oldestFirst, secret: secret)?.position == position)
        // The legacy token of builds before the order was bound: same layout, version 1.
        let legacy = "AQIAAAAAAAAAe2jlz4sBAAAHAAAAAAAAAAhSBct0F1zb"
        #expect(CursorToken.encode(position, secret: secret, version: CursorToken.legacyVersion) == legacy)
        #expect(CursorToken.decode(legacy, secret: secret, version: 1) == position)
        // Any change of a payload byte is rejected.
        for index in token.indices {
            var characters = Array(token)
            let i = token.distance(from: token.startIndex, to: index)
            characters[i] = characters[i] == "A" ? "B" : "A"
            #expect(CursorToken.decode(String(characters), secret: secret) == nil, "position \(i)")
        }
        #expect(CursorToken.decode(token + "A", secret: secret) == nil)
        #expect(CursorToken.decode("", secret: secret) == nil)
    }

    // MARK: spec/storage-records.md

    @Test func engineNumbersMatchTheSpec() {
        let layout = MessageSchema.schema.liveness
        #expect(layout.segmentTable == 7 && layout.runTable == 8)
        #expect(layout.retireRecordType == 23 && layout.sealRecordType == 24 && layout.mergeRecordType == 25
                && layout.attachRecordType == 26)
        #expect(layout.retirementCounter == 5 && layout.nextRunCounter == 7 && layout.virtualSegmentCounter == 8)
        #expect(SegmentAccount.valueSize == 32 && RunAccount.valueSize == 32 && RunBindingRecord.size == 32)
        #expect(SegmentFlags.virtual == 1 && RunFlags.highCompression == 1)
        #expect(LogPositions.isVirtual(0x8000_0000) && !LogPositions.isVirtual(0x7FFF_FFFF))
    }

    @Test func sealedRecordExample() throws {
        let payload = try Self.storageExample("sealed-record")
        #expect(payload.count == 32)
        let binding = try payload.withUnsafeBytes { try RunBindingRecord.decode($0, position: 0) }
        #expect(binding.segment == 4)
        #expect(binding.run == RunAccount(id: 5, records: 2, fileBytes: 201, flags: 0))
        var batch = ScrollbackLog.LogBatch()
        try binding.encode(type: MessageSchema.schema.liveness.sealRecordType, into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 24 && encoded == payload && batch.bytes.count == 41)
        // Inconsistent payloads are corruption.
        var reserved = payload
        reserved[0x1C] = 1
        var runZero = payload
        runZero[0x04] = 0
        for damaged in [reserved, runZero, Array(payload.prefix(31)), payload + [0]] {
            _ = damaged.withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try RunBindingRecord.decode(raw, position: 0) }
            }
        }
    }

    @Test func attachedRecordExample() throws {
        let payload = try Self.storageExample("attached-record")
        let binding = try payload.withUnsafeBytes { try RunBindingRecord.decode($0, position: 0) }
        #expect(binding.segment == 0xFFFF_FFFE && LogPositions.isVirtual(binding.segment))
        #expect(binding.run == RunAccount(id: 8, records: 2, fileBytes: 236, flags: RunFlags.highCompression))
        #expect(binding.run.isHighlyCompressed)
        var batch = ScrollbackLog.LogBatch()
        try binding.encode(type: MessageSchema.schema.liveness.attachRecordType, into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 26 && encoded == payload)
    }

    @Test func segmentTableEntryExamples() throws {
        let sealed = try Self.storageExample("segment-entry")
        let account = sealed.withUnsafeBytes { SegmentAccount(key: ScrollbackBTree.BTreeKey(4), value: $0) }
        #expect(account == SegmentAccount(id: 4, recordBytes: 4072, records: 3, run: 5, flags: 0, liveRecords: 2))
        #expect(!account.isVirtual && abs(account.garbageRatio - 1.0 / 3.0) < 1e-12)
        #expect(account.bytes == sealed)

        let virtual = try Self.storageExample("virtual-segment-entry")
        let loaded = virtual.withUnsafeBytes { SegmentAccount(key: ScrollbackBTree.BTreeKey(0xFFFF_FFFE), value: $0) }
        #expect(loaded == SegmentAccount(id: 0xFFFF_FFFE, recordBytes: 0, records: 2, run: 8, flags: SegmentFlags.virtual,
                                         liveRecords: 2))
        #expect(loaded.isVirtual && loaded.garbageRatio == 0)
        #expect(loaded.bytes == virtual)
    }

    @Test func runTableEntryExample() throws {
        let value = try Self.storageExample("run-entry")
        #expect(value.count == RunAccount.valueSize)
        let run = value.withUnsafeBytes { RunAccount(key: ScrollbackBTree.BTreeKey(5), value: $0) }
        #expect(run == RunAccount(id: 5, records: 2, fileBytes: 201, flags: 0))
        #expect(!run.isHighlyCompressed)
        #expect(run.bytes == value)
        // The sealed record of the example carries the same account.
        let binding = try Self.storageExample("sealed-record").withUnsafeBytes { try RunBindingRecord.decode($0, position: 0) }
        #expect(binding.run == run)
    }

    @Test func mergedRecordExample() throws {
        let payload = try Self.storageExample("merged-record")
        #expect(payload.count == 28 + 4 * 2)
        let merge = try payload.withUnsafeBytes { try MergeRecord.decode($0, position: 0) }
        #expect(merge.result == RunAccount(id: 9, records: 3, fileBytes: 266, flags: RunFlags.highCompression))
        #expect(merge.sources == [5, 8])
        var batch = ScrollbackLog.LogBatch()
        try merge.encode(type: MessageSchema.schema.liveness.mergeRecordType, into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 25 && encoded == payload)
        // A count that disagrees with the length, no source, or result run 0 is corruption.
        var wrongCount = payload
        wrongCount[0x18] = 3
        var noSource = Array(payload.prefix(28))
        noSource[0x18] = 0
        var resultZero = payload
        resultZero[0] = 0
        for damaged in [wrongCount, noSource, resultZero, Array(payload.prefix(34)), Array(payload.prefix(27))] {
            _ = damaged.withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try MergeRecord.decode(raw, position: 0) }
            }
        }
    }

    @Test func retireRecordExample() throws {
        let payload = try Self.storageExample("retire-record")
        #expect(payload.count == 8 + 8 * 2)
        let ids = try payload.withUnsafeBytes { try RetirementRecord.decode($0, position: 0) }
        #expect(ids == [4, 6])
        var batch = ScrollbackLog.LogBatch()
        try RetirementRecord.encode([4, 6], type: MessageSchema.schema.liveness.retireRecordType, into: &batch)
        let (type, encoded) = Self.typeAndPayload(batch)
        #expect(type == 23 && encoded == payload)
        var wrongCount = payload
        wrongCount[0] = 3
        for damaged in [wrongCount, Array(payload.prefix(20)), Array(payload.prefix(7))] {
            _ = damaged.withUnsafeBytes { raw in
                #expect(throws: StorageError.self) { try RetirementRecord.decode(raw, position: 0) }
            }
        }
    }
}
