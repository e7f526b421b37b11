import Foundation
@testable import Scrollback
import ScrollbackIO
import TestSupport
import Testing

/// The replica mark (`MessageStore.apply(_:mark:)`, `replicaMark()`; spec/message-records.md,
/// record 30): set atomically with the changes it accompanies, kept across checkpoints and
/// reopening, not a change itself, refused when malformed, and a failed apply moves neither.
/// Crash atomicity: the crash sweep's workloads apply marked batches (Sources/CrashTool).
@Suite struct ReplicaMarkTests {
    static func changes(_ leader: MessageStore, after position: ChangePosition) throws -> [Change] {
        try ChangeStreamTests.all(leader, after: position)
    }

    @Test func markIsCommittedWithTheChangesAndSurvivesReopening() throws {
        let fs = MemoryFileSystem()
        let leader = try MessageStore(path: "/leader", options: ChangeStreamTests.options(), fileSystem: MemoryFileSystem())
        let start = try leader.changePosition()
        try leader.append(ChangeStreamTests.message(1))
        try leader.append(ChangeStreamTests.message(2))
        try leader.markRead(user: "u", conversation: "c", through: "m2")
        let changes = try Self.changes(leader, after: start)
        #expect(changes.count == 3)

        var replica = try MessageStore(path: "/replica", options: ChangeStreamTests.options(), fileSystem: fs)
        #expect(try replica.replicaMark() == nil)
        let replicaStart = try replica.changePosition()
        try replica.apply(Array(changes.prefix(2)), mark: ReplicaMark(source: 42, sequence: 2))
        #expect(try replica.replicaMark() == ReplicaMark(source: 42, sequence: 2))
        try replica.apply(Array(changes.dropFirst(2)), mark: ReplicaMark(source: 42, sequence: 3))
        try replica.apply([], mark: ReplicaMark(source: 42, sequence: 4))   // the mark alone moves
        #expect(try replica.replicaMark() == ReplicaMark(source: 42, sequence: 4))
        #expect(try replica.latest(in: "c", limit: 10) == leader.latest(in: "c", limit: 10))
        #expect(try replica.unreadCount(user: "u", in: "c") == 0)

        // The mark is not a change: the replica's own followers see only the three changes.
        let replicaChanges = try Self.changes(replica, after: replicaStart)
        #expect(replicaChanges.map(\.operation) == changes.map(\.operation))

        // Kept by replay (no checkpoint) and by the meta page (after a checkpoint).
        try replica.close()
        replica = try MessageStore(path: "/replica", options: ChangeStreamTests.options(), fileSystem: fs)
        #expect(try replica.replicaMark() == ReplicaMark(source: 42, sequence: 4))
        try replica.checkpoint()
        try replica.apply([], mark: ReplicaMark(source: 7, sequence: 1))   // may move back (a restore)
        try replica.checkpoint()
        try replica.close()
        replica = try MessageStore(path: "/replica", options: ChangeStreamTests.options(), fileSystem: fs)
        #expect(try replica.replicaMark() == ReplicaMark(source: 7, sequence: 1))
        try replica.close()
        try leader.close()
    }

    @Test func failedApplyMovesNeitherTheStoreNorTheMark() throws {
        let store = try MessageStore(path: "/r", options: ChangeStreamTests.options(), fileSystem: MemoryFileSystem())
        let position = try ChangePosition(token: "1.18.18.0")
        try store.apply([Change(position: position, operation: .append(ChangeStreamTests.message(1)))],
                        mark: ReplicaMark(source: 1, sequence: 10))
        let edit = Change(position: position, operation: .edit(conversation: "c", id: "missing", body: "x"))
        let append = Change(position: position, operation: .append(ChangeStreamTests.message(2)))
        #expect(throws: ScrollbackError.notFound("message missing")) {
            try store.apply([append, edit], mark: ReplicaMark(source: 1, sequence: 12))
        }
        #expect(try store.replicaMark() == ReplicaMark(source: 1, sequence: 10))
        #expect(try store.message(id: "m2") == nil)

        #expect(throws: ScrollbackError.self) { try store.apply([append], mark: ReplicaMark(source: 0, sequence: 1)) }
        #expect(try store.message(id: "m2") == nil)
        let tooMany = Array(repeating: append, count: WriteBatch.maxOperations)
        #expect(throws: ScrollbackError.self) { try store.apply(tooMany, mark: ReplicaMark(source: 1, sequence: 13)) }
        #expect(try store.replicaMark() == ReplicaMark(source: 1, sequence: 10))
        try store.close()
    }

    @Test func readOnlyStoreSeesTheMarkAfterRefresh() throws {
        let path = NSTemporaryDirectory() + "scrollback-replica-mark-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try MessageStore(path: path, options: ChangeStreamTests.options())
        try writer.apply([], mark: ReplicaMark(source: 5, sequence: 1))
        let reader = try MessageStore(readingAt: path)
        #expect(try reader.replicaMark() == ReplicaMark(source: 5, sequence: 1))
        try writer.apply([], mark: ReplicaMark(source: 5, sequence: 2))
        #expect(try reader.refresh())
        #expect(try reader.replicaMark() == ReplicaMark(source: 5, sequence: 2))
        #expect(throws: ScrollbackError.readOnly(path: path)) { try reader.apply([], mark: ReplicaMark(source: 5, sequence: 3)) }
        try reader.close()
        try writer.close()
    }
}
