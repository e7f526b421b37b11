import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager
import ScrollbackStorage

/// A minimal schema over the storage engine for its tests: one tree of UInt64 → UInt64, with
/// put and delete records. It exercises exactly the machinery the message layer uses: encode
/// in `prepare`, mutate only in `apply`, replay after a crash.
enum KeyValueSchema {
    static let putRecord: UInt8 = 16
    static let deleteRecord: UInt8 = 17
    static let slot = 0

    enum Operation: Equatable, Sendable {
        case put(UInt64, UInt64)
        case delete(UInt64)
    }

    /// `prepare` rejects a batch containing this value, to test that a rejected writer
    /// writes nothing.
    static let forbiddenValue: UInt64 = .max

    struct Rejected: Error {}

    /// The engine's segment table in slot 7, retirements as record type 18 (never written
    /// here: nothing is ever removed), counted in counter 7.
    static let liveness = LivenessLayout(segmentTable: 7, retireRecordType: 18, retirementCounter: 7)

    static let schema = StorageSchema(trees: [.init(slot: slot, keyWords: 1, valueSize: 8)], liveness: liveness) {
        transaction, records, _ in
        let tree = try BTree(transaction, slot: slot)
        try records.forEach { _, type, payload in
            var reader = ByteReader(payload, file: "log")
            switch type {
            case putRecord:
                let key = try reader.read(UInt64.self)
                let value = try reader.read(UInt64.self)
                var little = value.littleEndian
                _ = try withUnsafeBytes(of: &little) { try tree.upsert(BTreeKey(key), value: $0) }
            case deleteRecord:
                _ = try tree.delete(BTreeKey(try reader.read(UInt64.self)))
            default:
                throw StorageError.corrupted(file: "log", offset: 0, reason: "unknown record type \(type)")
            }
        }
    }

    static func encode(_ operations: [Operation], into batch: inout LogBatch) throws {
        for operation in operations {
            switch operation {
            case let .put(key, value):
                if value == forbiddenValue { throw Rejected() }
                try batch.append(type: putRecord, payloadCount: 16) { out in
                    out.storeLE(key, at: 0)
                    out.storeLE(value, at: 8)
                }
            case let .delete(key):
                try batch.append(type: deleteRecord, payloadCount: 8) { out in out.storeLE(key, at: 0) }
            }
        }
    }

    static func commit(_ operations: [Operation], to engine: StorageEngine) throws {
        try engine.commit { _, batch in try encode(operations, into: &batch) }
    }

    /// Every entry of the tree, in key order, read through a cursor on a snapshot.
    static func contents(of engine: StorageEngine) throws -> [UInt64: UInt64] {
        try engine.read { snapshot in
            let tree = try BTree(snapshot, slot: slot)
            var cursor = tree.cursor()
            var result: [UInt64: UInt64] = [:]
            var more = try cursor.seekFirst()
            while more {
                _ = try cursor.withCurrent { key, value in
                    result[key.w0] = value.loadLE(UInt64.self, at: 0)
                }
                more = try cursor.next()
            }
            return result
        }
    }

    static func apply(_ operations: [Operation], to model: inout [UInt64: UInt64]) {
        for operation in operations {
            switch operation {
            case let .put(key, value): model[key] = value
            case let .delete(key): model[key] = nil
            }
        }
    }
}
