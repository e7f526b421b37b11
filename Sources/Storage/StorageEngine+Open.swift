import ScrollbackBTree
import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackPager

extension StorageEngine {
    /// Opens the store in `directory`, creating it if the directory is missing or empty; a
    /// directory that holds only other files is `.notAStore` and nothing is written to it.
    ///
    /// Creation is crash-safe: the page file appears atomically (written under a temporary
    /// name, synced, renamed, directory synced) and holds empty trees; a crash before that
    /// leaves no page file and the next open simply creates again. A directory that has log
    /// segments but no page file is damaged and is reported, never recreated over.
    ///
    /// Recovery: the pager picks the newest valid meta page; the log replays every complete
    /// transaction after the meta page's log position through `schema.apply`, and cuts off a
    /// torn tail. If anything was replayed, a checkpoint follows so the next open is fast.
    /// Then `schema.checkState` may refuse the state, and the segment files are reconciled
    /// with the segment and run tables (`reconcileFiles`).
    package static func open(
        fileSystem: any FileSystem, directory: String, options: StorageOptions = StorageOptions(),
        schema: StorageSchema
    ) throws -> StorageEngine {
        try validate(schema)
        try checkIsDirectory(fileSystem: fileSystem, directory: directory)
        let contents = StoreDirectory.inspect(fileSystem: fileSystem, directory: directory)
        if contents.kind == .foreign { throw StorageError.notAStore(path: directory) }
        if contents.kind == .store {
            // A `pages` file of someone else, and a store of an older format (`scrollback
            // upgrade` reads it), are refused before anything is created — the lock file and
            // the reader table included.
            let pagesPath = Path.join(directory, PageFileLayout.fileName)
            let meta: MetaPage?
            do {
                meta = try Pager.readNewestMeta(fileSystem: fileSystem, path: pagesPath)
            } catch StorageError.notAStore where contents.logSegment == nil {
                throw StorageError.notAStore(path: pagesPath)
            } catch {
                // Other damage is reported by the open below, which reads it again.
                meta = nil
            }
            if let meta, meta.formatVersion < PageFileLayout.formatVersion {
                throw StorageError.needsUpgrade(file: PageFileLayout.fileName, found: meta.formatVersion,
                                                current: PageFileLayout.formatVersion)
            }
        }
        try fileSystem.createDirectory(directory)
        try fileSystem.syncDirectory(Path.directory(of: directory))
        // One writer per store: the lock comes before the page file or the log is touched
        // (a refused open writes nothing), and the reader table is open before recovery may
        // reuse a page or remove a file that a reader in another process reads.
        let coordination = try ProcessCoordination.openWriter(
            fileSystem: fileSystem, directory: directory, label: options.lockLabel)
        let engine: StorageEngine
        do {
            let pager = try openPageFile(fileSystem: fileSystem, directory: directory, options: options, contents: contents)
            // The page file's free pages wait for readers that still read an older checkpoint,
            // and pages the recovery's checkpoint frees wait for the next scan.
            let runs: RunStore
            do {
                let oldest = try coordination.readers.oldestReader()
                pager.setReaderFloor(min(oldest?.transactionID ?? .max, pager.durableTransactionID))
                runs = try RunStore(fileSystem: fileSystem, directory: directory, cacheBytes: options.runCacheBytes)
            } catch {
                try? pager.close()
                throw error
            }
            let (log, replayed) = try recover(pager, fileSystem: fileSystem, directory: directory, options: options, schema: schema,
                                              runs: runs)
            let aliases: SegmentAliases
            do {
                let snapshot = pager.beginRead()
                defer { snapshot.rollback() }
                aliases = SegmentAliases(try segmentTable(of: snapshot, schema: schema))
            } catch {
                try? log.close()
                try? pager.close()
                throw error
            }
            engine = StorageEngine(
                directory: directory, options: options, schema: schema, pager: pager, log: log, runs: runs, aliases: aliases,
                fileSystem: fileSystem, replayed: replayed, coordination: coordination)
        } catch {
            try? coordination.close()
            throw error
        }
        do {
            // Readers may read the recovered log from now on; then the reuse decisions.
            engine.publishDurableState()
            engine.updateReaderFloor()
            try schema.checkState(engine.committedState, engine.pageFilePath)
            try engine.reconcileFiles()
        } catch {
            try? engine.close()
            throw error
        }
        engine.startMaintenanceWorker()
        return engine
    }

    static func validate(_ schema: StorageSchema) throws {
        var seen = Set<Int>()
        for tree in schema.allTrees {
            guard (0..<Pager.treeSlotCount).contains(tree.slot), seen.insert(tree.slot).inserted else {
                throw StorageError.invalidArgument("tree slot \(tree.slot) is out of range or used twice")
            }
        }
    }

    /// Opens the page file, or creates it where the directory holds no store yet.
    private static func openPageFile(
        fileSystem: any FileSystem, directory: String, options: StorageOptions, contents: StoreDirectory
    ) throws -> Pager {
        let pagesPath = Path.join(directory, PageFileLayout.fileName)
        switch contents.kind {
        case .store:
            do {
                return try Pager.open(fileSystem: fileSystem, path: pagesPath, cacheBytes: options.pageCacheBytes)
            } catch StorageError.notAStore {
                // Neither meta page has the magic. Next to a log this is a damaged page file
                // (e.g. truncated or zeroed), not a foreign file.
                if let segment = contents.logSegment {
                    throw StorageError.corrupted(
                        file: pagesPath, offset: 0,
                        reason: "neither meta page of the page file is valid but the log exists (\(segment))")
                }
                throw StorageError.notAStore(path: pagesPath)
            }
        case .logWithoutPageFile:
            throw StorageError.corrupted(
                file: pagesPath, offset: 0,
                reason: "page file is missing but the log exists (\(contents.logSegment ?? "")); refusing to recreate the store")
        case .empty, .interruptedCreation, .foreign:
            return try Pager.create(
                fileSystem: fileSystem, path: pagesPath, pageSize: options.pageSize, cacheBytes: options.pageCacheBytes)
        }
    }

    /// Creates missing trees, replays the log after the checkpoint's position into them,
    /// commits and (when anything changed) checkpoints. Returns the log and the number of
    /// transactions replayed. Closes the pager on failure.
    private static func recover(
        _ pager: Pager, fileSystem: any FileSystem, directory: String, options: StorageOptions, schema: StorageSchema,
        runs: RunStore
    ) throws -> (Log, UInt64) {
        var replayed: UInt64 = 0
        let transaction = try pager.beginWrite()
        do {
            let createdTrees = try prepareTrees(schema, in: transaction, file: pager.path)
            // A checkpoint's log position always lies in a segment that exists (segments are
            // removed only after a later checkpoint): a missing one means the state in use is
            // older than the log (e.g. a damaged newest meta page), never a skip to allow.
            var logOptions = options.log
            logOptions.requireReplaySegment = true
            let log = try Log.open(
                fileSystem: fileSystem, directory: directory, options: logOptions,
                replayFrom: transaction.state.logPosition
            ) { logged in
                try apply(logged, to: transaction, schema: schema, runs: runs)
                replayed += 1
            }
            try transaction.commit()
            if createdTrees || replayed > 0 {
                try pager.checkpoint()
            }
            // The names found here (page file, log segments) may be left by a run whose
            // directory sync failed or never came: make them durable before any write into
            // them is acknowledged.
            try fileSystem.syncDirectory(directory)
            return (log, replayed)
        } catch {
            if !transaction.isFinished { transaction.rollback() }
            try? pager.close()
            throw error
        }
    }

    /// Creates the schema's trees that do not exist yet; checks the shape of those that do.
    static func prepareTrees(_ schema: StorageSchema, in transaction: PageTransaction, file: String) throws -> Bool {
        var created = false
        for tree in schema.allTrees {
            let root = transaction.state.trees[tree.slot]
            if root.keyWords == 0 {
                _ = try BTree.create(in: transaction, slot: tree.slot, keyWords: tree.keyWords, valueSize: tree.valueSize)
                created = true
            } else if Int(root.keyWords) != tree.keyWords || Int(root.valueSize) != tree.valueSize {
                throw StorageError.corrupted(
                    file: file, offset: 0,
                    reason: "tree slot \(tree.slot) has \(root.keyWords) key words and \(root.valueSize)-byte values; "
                        + "this build expects \(tree.keyWords) and \(tree.valueSize)")
            }
        }
        return created
    }
}
