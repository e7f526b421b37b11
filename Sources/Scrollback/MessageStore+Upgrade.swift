import ScrollbackIO
import ScrollbackMessaging

/// What `MessageStore.upgrade(path:options:)` did.
public struct UpgradeReport: Sendable, Hashable {
    /// Live messages carried over.
    public var messages: Int
    /// Conversations carried over (also those whose messages are all deleted).
    public var conversations: Int
    /// Read markers carried over.
    public var readMarkers: Int
    /// Where the store in the older format was kept (remove it once the new one serves);
    /// empty when the store was upgraded in place (format 3: its search index rebuilt).
    public var previousFormatPath: String
}

extension MessageStore {
    /// Upgrades a store written by an older release (store format 1) to this release's format,
    /// which `init(path:)` refuses with `.unsupportedVersion` until then.
    ///
    /// The old store is read without changing a byte (including a log tail no checkpoint
    /// covers); its messages (with their order, edited flags and metadata), conversations and
    /// read markers are loaded into a new store built beside it (`<path>.upgrading`), which is
    /// made durable; then the old store is renamed to `<path>.format1` and the new one to
    /// `<path>`. A crash before the renames leaves the old store as it was (upgrade again);
    /// a crash between them is finished by the next `upgrade`. Keyset cursors issued by the
    /// old store are refused by the new one (`.invalidArgument`): restart those pagings.
    ///
    /// A store whose search index an earlier build made (format version 3: one 24-byte key per
    /// posting) is upgraded in place instead: one durable commit turns the old index off and
    /// the index on again, then the index is built from the messages in steps, each a durable
    /// commit (interrupted, the store opens with its index part-built; upgrade again to
    /// finish). A store with nothing to upgrade is `.invalidArgument`.
    ///
    /// REQUIRES: no process has the old store open (the older release took no lock; the
    /// in-place upgrade takes the store's lock). Memory: every live message of the store at
    /// once (format 1).
    @discardableResult
    public static func upgrade(path: String, options: StoreOptions = StoreOptions()) throws -> UpgradeReport {
        try upgrade(path: path, options: options, fileSystem: PosixFileSystem())
    }

    /// `upgrade(path:options:)` on any `FileSystem` (the crash sweep runs it on the
    /// crash-simulating one).
    @discardableResult
    package static func upgrade(path: String, options: StoreOptions, fileSystem: any FileSystem) throws -> UpgradeReport {
        try validatePath(path, argument: "path")
        let config = try configuration(options)
        let summary = try mapErrors {
            try MessageDatabase.upgrade(fileSystem: fileSystem, directory: path, options: config)
        }
        return UpgradeReport(messages: summary.messages, conversations: summary.conversations, readMarkers: summary.readMarkers,
                             previousFormatPath: summary.previousFormatDirectory)
    }
}
