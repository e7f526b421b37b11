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
    /// Where the store in the older format was kept (remove it once the new one serves).
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
    /// REQUIRES: no process has the old store open (the older release took no lock).
    /// Memory: every live message of the store at once.
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
            try MessageDatabase.upgradeFormatOne(fileSystem: fileSystem, directory: path, options: config)
        }
        return UpgradeReport(messages: summary.messages, conversations: summary.conversations, readMarkers: summary.readMarkers,
                             previousFormatPath: summary.previousFormatDirectory)
    }
}
