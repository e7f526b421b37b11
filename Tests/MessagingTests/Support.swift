@testable import Scrollback
import ScrollbackFormat
import ScrollbackIO
import ScrollbackMessaging
import ScrollbackStorage
import Testing
import TestSupport

/// Helpers shared by the message-layer tests.
enum Fixture {
    /// Small segments and frequent checkpoints so sealing, checkpoints and compaction happen
    /// in small tests.
    static func options(segmentBytes: Int = 64 << 10, durability: Scrollback.Durability = .full) -> StoreOptions {
        var options = StoreOptions()
        options.cacheBytes = 4 << 20
        options.segmentBytes = segmentBytes
        options.pageSize = 4096
        options.durability = durability
        options.checkpointDirtyBytes = 256 << 10
        options.checkpointLogBytes = 256 << 10
        options.autoCompactGarbageRatio = nil
        // These tests watch files go: no log kept for the change stream beyond what the store needs.
        options.changeRetentionBytes = 0
        return options
    }

    static func open(_ fs: any FileSystem = MemoryFileSystem(), path: String = "/db",
                     options: StoreOptions = Fixture.options()) throws -> MessageStore {
        try MessageStore(path: path, options: options, fileSystem: fs)
    }

    static func message(_ id: String, in conversation: String = "c1", at createdAt: Int64, sender: String = "alice",
                        body: String? = nil, kind: MessageKind = .text, replyTo: String? = nil) -> Message {
        Message(id: id, conversation: conversation, sender: sender, createdAt: createdAt, kind: kind,
                body: body ?? "body of \(id)", replyTo: replyTo)
    }
}

/// A plain in-memory model of the store's committed state.
struct Model {
    var messages: [String: (message: Message, seq: Int)] = [:]
    var seq = 0
    var markers: [String: (Int64, Int)] = [:]   // "user|conversation" → (createdAt, seq)

    mutating func append(_ m: Message) -> AppendOutcome {
        if messages[m.id] != nil { return .duplicate }
        seq += 1
        messages[m.id] = (m, seq)
        return .appended
    }

    func ordered(_ conversation: String) -> [Message] {
        messages.values.filter { $0.message.conversation == conversation }
            .sorted { ($0.message.createdAt, $0.seq) < ($1.message.createdAt, $1.seq) }.map(\.message)
    }

    var all: [Message] {
        messages.values.sorted { ($0.message.createdAt, $0.seq) < ($1.message.createdAt, $1.seq) }.map(\.message)
    }
}
