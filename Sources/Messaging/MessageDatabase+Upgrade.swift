import ScrollbackBTree
import ScrollbackStorage

/// What an upgrade did.
package struct UpgradeSummary: Sendable, Equatable {
    package var messages: Int
    package var conversations: Int
    package var readMarkers: Int
    /// Where the store of the older format was kept.
    package var previousFormatDirectory: String
}

extension MessageDatabase {
    /// Suffix of the directory an upgrade builds the new store in.
    package static let upgradeBuildSuffix = ".upgrading"
    /// Suffix the store of the older format is renamed to (kept until the user removes it).
    package static let upgradeKeptSuffix = ".format1"

    /// Upgrades the format-1 store at `directory` to the current format: its content (read
    /// without writing by `FormatOneReader`, including a log tail no checkpoint covers) is
    /// bulk-loaded into a new store built beside it (`<directory>.upgrading`; the messages keep
    /// their seqs — insertion order — and edited flags, conversations their ids, users their
    /// read markers), which is closed (checkpointed, durable); then `<directory>` is renamed
    /// to `<directory>.format1` and the new store to `<directory>`, and the parent directory is
    /// synced. A crash before the first rename leaves the old store in place (a later run
    /// starts over); a crash between the renames leaves both beside each other, and a later
    /// run finishes the swap. The old store is kept, never deleted.
    ///
    /// REQUIRES: no process has the old store open (format 1 had no lock file to check).
    package static func upgradeFormatOne(fileSystem: any FileSystem, directory: String,
                                         options: MessageDatabaseOptions) throws -> UpgradeSummary {
        let build = directory + upgradeBuildSuffix
        let kept = directory + upgradeKeptSuffix
        let parent = Path.directory(of: directory)
        if !fileSystem.fileExists(directory), fileSystem.fileExists(kept), fileSystem.fileExists(Path.join(build, "pages")) {
            // A crash between the two renames: the new store is complete.
            try fileSystem.rename(build, to: directory)
            try fileSystem.syncDirectory(parent)
            return UpgradeSummary(messages: 0, conversations: 0, readMarkers: 0, previousFormatDirectory: kept)
        }
        if fileSystem.fileExists(kept) {
            throw StorageError.invalidArgument("\(kept) exists already (an earlier upgrade's copy of the old store): move it away first")
        }
        let content = try FormatOneReader.read(fileSystem: fileSystem, directory: directory)

        // A build directory left by an interrupted run is discarded.
        if fileSystem.fileExists(build) {
            for name in try fileSystem.listDirectory(build) { try fileSystem.removeFile(Path.join(build, name)) }
        }
        var options = options
        let longest = content.messages.lazy.map { $0.message.body.utf8.count }.max() ?? 0
        options.maxBodyBytes = max(options.maxBodyBytes, longest)
        options.autoCompactGarbageRatio = nil
        let database = try MessageDatabase.open(fileSystem: fileSystem, directory: build, options: options)
        do {
            var messages = content.messages.makeIterator()
            _ = try database.bulkLoad(conversations: content.conversations, runMessages: bulkLoadRunMessages) {
                messages.next().map { BulkMessage(message: $0.message, seq: $0.seq, keepsEdited: true) }
            }
            try database.restoreReadMarkers(content.markers)
            try database.close()
        } catch {
            try? database.close()
            throw error
        }
        try fileSystem.syncDirectory(build)
        try fileSystem.rename(directory, to: kept)
        try fileSystem.rename(build, to: directory)
        try fileSystem.syncDirectory(parent)
        return UpgradeSummary(messages: content.messages.count, conversations: content.conversations.count,
                              readMarkers: content.markers.count, previousFormatDirectory: kept)
    }

    /// What `upgrade` does for the store at `directory`: format 1 (and an interrupted format-1
    /// upgrade) `upgradeFormatOne`; any other store `upgradeSearchIndex`.
    package static func upgrade(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions) throws
        -> UpgradeSummary {
        if fileSystem.fileExists(directory + upgradeKeptSuffix) || !storeExists(fileSystem: fileSystem, at: directory) {
            return try upgradeFormatOne(fileSystem: fileSystem, directory: directory, options: options)
        }
        let checkpointed = try {
            let store = try FrozenStore(fileSystem: fileSystem, directory: directory)
            defer { store.close() }
            let counters = store.state.counters
            return counters.count > FormatOneReader.formatVersionCounter ? counters[FormatOneReader.formatVersionCounter] : 0
        }()
        if checkpointed == 1 {
            return try upgradeFormatOne(fileSystem: fileSystem, directory: directory, options: options)
        }
        return try upgradeSearchIndex(fileSystem: fileSystem, directory: directory, options: options)
    }

    /// Upgrades a store of format 3 (the search index's previous layout: one 24-byte key per
    /// posting) to format 4 in place: one durable commit turns the old index off (its pages
    /// freed) and the index on again (counter 6 becomes 4), then the index is built from the
    /// messages in steps (`enableSearchIndex`), each a durable commit. Interrupted, the store
    /// is of format 4 with its index part-built: it opens, searches say so, and `upgrade` (or
    /// `enableSearchIndex`) again finishes the build. A store of format 2 or 4 whose index is
    /// built (or off) has nothing to upgrade (`invalidArgument`).
    package static func upgradeSearchIndex(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions) throws
        -> UpgradeSummary {
        let database = try MessageDatabase.open(fileSystem: fileSystem, directory: directory, options: options,
                                                acceptingLegacySearchIndex: true)
        do {
            let version = database.engine.committedState[counter: .formatVersion]
            var state = try database.searchIndexState()
            if version == MessageLimits.legacySearchFormatVersion {
                try database.engine.commit { transaction, batch in
                    guard transaction.state[counter: .formatVersion] == MessageLimits.legacySearchFormatVersion else { return }
                    try batch.append(type: .searchDisable, payloadCount: 0) { _ in }
                    try batch.append(type: .searchEnable, payloadCount: 0) { _ in }
                }
                state = try database.searchIndexState()
            } else if !(state.enabled && !state.built) {
                throw StorageError.invalidArgument("\(directory) is in store format \(version) already: nothing to upgrade")
            }
            if state.enabled && !state.built { try database.enableSearchIndex() }
            let counts = try database.engine.read { snapshot in
                (Int(snapshot.state[counter: .liveMessages]), try BTree(snapshot, .conversations).count,
                 try BTree(snapshot, .readMarkers).count)
            }
            try database.close()
            return UpgradeSummary(messages: counts.0, conversations: counts.1, readMarkers: counts.2, previousFormatDirectory: "")
        } catch {
            try? database.close()
            throw error
        }
    }

    /// An upgrade interrupted between its two renames leaves no store at `directory`, the old
    /// one at `<directory>.format1` and the new one, complete, at `<directory>.upgrading`.
    /// Opening `directory` then would create an empty store in its place; it is refused with
    /// `needsUpgrade` instead, whose text names `scrollback upgrade`, which finishes the swap.
    static func refuseInterruptedUpgrade(fileSystem: any FileSystem, directory: String) throws {
        if !fileSystem.fileExists(directory), fileSystem.fileExists(directory + upgradeKeptSuffix),
           fileSystem.fileExists(Path.join(directory + upgradeBuildSuffix, "pages")) {
            throw StorageError.needsUpgrade(file: directory, found: 1, current: UInt32(MessageLimits.formatVersion))
        }
    }

    /// Sets read markers by key (the message marked may be deleted), in one commit; users are
    /// created as needed. A marker is only ever moved forward.
    func restoreReadMarkers(_ markers: [(user: String, conversation: String, createdAt: UInt64, seq: UInt64)]) throws {
        guard !markers.isEmpty else { return }
        try engine.commit { transaction, batch in
            var context = try PrepareContext(database: self, transaction: transaction)
            for marker in markers {
                guard let conversation = try context.conversation(marker.conversation, create: false, batch: &batch) else {
                    throw MessagingError.notFound("conversation \(marker.conversation)")
                }
                try context.moveMarker(MarkerKey(user: try context.user(marker.user, batch: &batch), conversation: conversation),
                                       through: MessageKey(conversation: conversation, createdAt: marker.createdAt, seq: marker.seq),
                                       id: nil, into: &batch)
            }
        }
    }
}
