import Foundation
@testable import Scrollback
import ScrollbackIO
import Testing

/// The borrowing reads (`withLatest`, `withPage`, `withMessages`; MessageStore+Borrowing.swift):
/// the same messages as the owning reads, in the same order, from the log and from sorted runs;
/// an error thrown by the body passes through unchanged and stops the read; bad arguments are
/// refused before anything is read.
@Suite struct BorrowedReadTests {
    struct BodyError: Error, Equatable { var at: Int }

    static func store(sealed: Bool) throws -> MessageStore {
        var options = StoreOptions()
        options.pageSize = 4096
        options.segmentBytes = 64 << 10
        options.autoCompactGarbageRatio = nil
        let store = try MessageStore(path: "/s", options: options, fileSystem: MemoryFileSystem())
        for n in 0..<600 {
            try store.append(Message(id: "m\(n)", conversation: "c\(n % 3)", sender: "s\(n % 7)", createdAt: Int64(1000 + n / 2),
                                     kind: n % 5 == 0 ? .image : .text, body: "body \(n) " + String(repeating: "é", count: n % 40),
                                     replyTo: n % 4 == 0 && n > 0 ? "m\(n - 1)" : nil, metadata: n % 6 == 0 ? [1, 2, UInt8(n & 0xFF)] : nil))
            if n % 50 == 7 { try store.edit(id: "m\(n)", body: "edited \(n)") }
        }
        if sealed { try store.compact() }   // the history moves into sorted runs
        return store
    }

    @Test(arguments: [false, true]) func borrowedReadsEqualTheOwningReads(sealed: Bool) throws {
        let store = try Self.store(sealed: sealed)
        for conversation in ["c0", "c1", "c2", "none"] {
            for limit in [0, 1, 20, 1000] {
                var seen: [Message] = []
                try store.withLatest(in: conversation, limit: limit) { m in
                    // The fields are views: checked against the copy.
                    let copy = m.message()
                    #expect(String(decoding: m.idBytes, as: UTF8.self) == copy.id)
                    #expect(String(decoding: m.bodyBytes, as: UTF8.self) == copy.body)
                    #expect(String(decoding: m.senderBytes, as: UTF8.self) == copy.sender)
                    #expect(m.replyToBytes.map { String(decoding: $0, as: UTF8.self) } == copy.replyTo)
                    #expect(m.metadataBytes.map { Array($0) } == copy.metadata)
                    #expect(m.createdAt == copy.createdAt && m.kind == copy.kind && m.edited == copy.edited)
                    #expect(m.conversation == conversation)
                    seen.append(copy)
                }
                #expect(seen == (try store.latest(in: conversation, limit: limit)), "latest \(conversation) \(limit) sealed \(sealed)")
            }
            for order in [Order.newestFirst, .oldestFirst] {
                var cursor: Cursor? = nil
                var walked: [Message] = []
                repeat {
                    var page: [Message] = []
                    cursor = try store.withPage(in: conversation, after: cursor, limit: 7, order: order) { page.append($0.message()) }
                    walked += page
                } while cursor != nil
                #expect(walked == (try store.page(in: conversation, offset: 0, limit: 1000, order: order)))
            }
            var ranged: [Message] = []
            try store.withMessages(in: conversation, from: 1050, through: 1100, order: .newestFirst, limit: 30) { ranged.append($0.message()) }
            #expect(ranged == (try store.messages(in: conversation, from: 1050, through: 1100, order: .newestFirst, limit: 30)))
        }
        try store.close()
    }

    @Test func theBodysErrorPassesThroughAndStopsTheRead() throws {
        let store = try Self.store(sealed: false)
        var calls = 0
        #expect(throws: BodyError(at: 3)) {
            try store.withLatest(in: "c0", limit: 20) { _ in
                calls += 1
                if calls == 3 { throw BodyError(at: 3) }
            }
        }
        #expect(calls == 3)
        #expect(throws: ScrollbackError.self) { try store.withLatest(in: "", limit: 20) { _ in Issue.record("read an invalid conversation") } }
        #expect(throws: ScrollbackError.self) { try store.withLatest(in: "c0", limit: -1) { _ in Issue.record("read with a negative limit") } }
        try store.close()
    }
}
