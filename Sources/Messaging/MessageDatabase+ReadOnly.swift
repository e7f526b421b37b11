import ScrollbackStorage

/// Read-only opens of a live store (`StorageEngine.openReadOnly`, spec/reader-table.md): the
/// message layer reads a snapshot of another process's store; `refresh()` moves to its
/// newest durable state. Every write throws `StorageError.readOnly` before anything is
/// written.
extension MessageDatabase {
    /// Opens the store in `directory` read-only (never creates it: a directory without a
    /// store is `.notAStore`). A store whose first commit never happened reads as empty.
    package static func openReadOnly(fileSystem: any FileSystem, directory: String, options: MessageDatabaseOptions) throws
        -> MessageDatabase {
        try refuseInterruptedUpgrade(fileSystem: fileSystem, directory: directory)
        let engine = try StorageEngine.openReadOnly(
            fileSystem: fileSystem, directory: directory, options: options.storage, schema: MessageSchema.schema)
        // The cursor secret is fixed by the store's first commit; a store without one has no
        // messages, so no cursor of it is ever made or accepted.
        return MessageDatabase(engine: engine, directory: directory, fileSystem: fileSystem, options: options,
                               secret: engine.committedState[counter: .cursorSecret])
    }

    /// Read-only stores: moves to the newest durable state (see `StorageEngine.refresh()`);
    /// true if anything changed. Writers: a no-op returning false.
    @discardableResult
    package func refresh() throws -> Bool { try engine.refresh() }

    package var isReadOnly: Bool { engine.isReadOnly }

    /// The processes sharing the store (`StorageEngine.processes`).
    package var processes: ProcessStatus { engine.processes }
}
