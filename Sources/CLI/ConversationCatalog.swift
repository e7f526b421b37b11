import Scrollback
import ScrollbackBTree
import ScrollbackIO
import ScrollbackPager

/// Every conversation with live messages, for `export`.
///
/// The public API lists conversations only through `conversations(limit:)`, which stops at
/// `MessageStore.maxLimit`. Below that, it is used as is. At the limit, the names are read
/// from the conversations tree (slot 3, layout in the message-layer design: key
/// (conversationID), value = live count u64, newest createdAt u64, newest seq u64, name
/// length u8, 255 name bytes) of the page file, after a checkpoint has made the page file
/// current, through a read-only pager.
///
/// INTEGRATION POINT (message layer): if `MessageStore` gains a way to list every
/// conversation (a paginated `conversations(after:limit:)`), use it here and drop the
/// page-file walk.
enum ConversationCatalog {
    static let slot = 3
    static let valueSize = 280

    static func allConversations(store: MessageStore, path: String) throws -> [String] {
        let listed = try store.conversations(limit: MessageStore.maxLimit)
        if listed.count < MessageStore.maxLimit { return listed.map(\.id).sorted(by: utf8Less) }
        try store.checkpoint()
        return try namesFromPageFile(path: path).sorted(by: utf8Less)
    }

    static func utf8Less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    static func namesFromPageFile(path: String) throws -> [String] {
        let pager = try Pager.open(fileSystem: ReadOnlyFileSystem(), path: path + "/pages", cacheBytes: 8 << 20)
        defer { try? pager.close() }
        let snapshot = pager.beginRead()
        defer { snapshot.rollback() }
        let root = snapshot.state.trees[slot]
        guard root.keyWords == 1, root.valueSize == valueSize else {
            throw CLIError("cannot list the conversations of \(path): tree slot \(slot) has \(root.keyWords) key words and "
                + "\(root.valueSize)-byte values, not the expected 1 and \(valueSize)")
        }
        let tree = try BTree(snapshot, slot: slot)
        var cursor = tree.cursor()
        var names: [String] = []
        var more = try cursor.seekFirst()
        while more {
            _ = try cursor.withCurrent { _, value in
                guard value.count >= 25 + 255 else { return }
                let live = value.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
                let length = Int(value[24])
                guard live > 0, length > 0 else { return }
                if let name = String(validating: UnsafeRawBufferPointer(rebasing: value[25..<(25 + length)]), as: UTF8.self) {
                    names.append(name)
                }
            }
            more = try cursor.next()
        }
        return names
    }
}
