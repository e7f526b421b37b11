import ScrollbackIO

extension StorageEngine {
    /// Writes a consistent copy of the store's files into `destination` (created if missing)
    /// while the engine stays open. Immutable files (sealed segments, sorted runs) are copied
    /// first without blocking anyone; the page file, the remaining segments and any run that
    /// appeared meanwhile are copied while commits and checkpoints wait (in the writer role).
    /// Readers never wait. Sealing, merging and bulk loads wait for the backup (it holds the
    /// maintenance role), and no file is removed while it runs (removals stay pending). Every
    /// copied file and the directory are synced. REQUIRES: `destination` holds no file of the
    /// same names (each copy is created new and fails on an existing file).
    ///
    /// A read-only engine copies the newest state it can read (`backupReadOnly`), while the
    /// writer of the store keeps writing.
    package func backup(to destination: String) throws {
        if isReadOnly { return try backupReadOnly(to: destination) }
        try maintenanceRole.withLock { _ in
            // Waits for a removal in progress; none starts until the backup ends.
            backupsRunning.withLock { $0 += 1 }
            defer { backupsRunning.withLock { $0 -= 1 } }
            try fileSystem.createDirectory(destination)
            try checkpoint()
            var copied = Set<UInt32>()
            for segment in try log.listSegments() where segment.state == .sealed {
                try copyFile(segment.path, into: destination)
                copied.insert(segment.id)
            }
            var copiedRuns = Set<UInt32>()
            for id in runs.ids() {
                try copyFile(runs.path(of: id), into: destination)
                copiedRuns.insert(id)
            }
            try withWritersAndCheckpointsHeld {
                if let failure = refusal() { throw failure }
                try copyFile(pager.path, into: destination)
                for segment in try log.listSegments() where !copied.contains(segment.id) {
                    try copyFile(segment.path, into: destination)
                }
                for id in runs.ids() where !copiedRuns.contains(id) {
                    try copyFile(runs.path(of: id), into: destination)
                }
            }
            try fileSystem.syncDirectory(destination)
        }
    }

    /// Copies the file at `source` into `directory` under its name, synced. REQUIRES: no file
    /// of that name there.
    func copyFile(_ source: String, into directory: String) throws {
        let input = try fileSystem.open(source, mode: .readOnly)
        defer { try? input.close() }
        let output = try fileSystem.open(Path.join(directory, Path.name(of: source)), mode: .createNew)
        do {
            let size = try input.size()
            var offset: UInt64 = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while offset < size {
                let n = try buffer.withUnsafeMutableBytes { try input.read(into: $0, at: offset) }
                if n == 0 { break }
                try buffer.withUnsafeBytes { try output.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: offset) }
                offset += UInt64(n)
            }
            try output.syncData()
            try output.close()
        } catch {
            try? output.close()
            throw error
        }
    }
}
