import ScrollbackIO

extension StorageEngine {
    /// Writes a consistent copy of the store's files into `destination` (created if missing)
    /// while the engine stays open. Sealed segments (immutable) are copied first without
    /// blocking anyone; the page file and the remaining segments are copied while commits and
    /// checkpoints wait (in the writer role). Readers never wait. Every copied file and the
    /// directory are synced. REQUIRES: `destination` holds no file of the same names (each
    /// copy is created new and fails on an existing file).
    ///
    /// A read-only engine copies the newest state it can read (`backupReadOnly`), while the
    /// writer of the store keeps writing.
    package func backup(to destination: String) throws {
        if isReadOnly { return try backupReadOnly(to: destination) }
        try lifecycleLock.withLock { _ in
            try fileSystem.createDirectory(destination)
            try checkpoint()
            var copied = Set<UInt32>()
            for segment in try log.listSegments() where segment.state == .sealed {
                try copyFile(segment.path, into: destination)
                copied.insert(segment.id)
            }
            try withWriterRole {
                if let failure = refusal() { throw failure }
                try copyFile(pager.path, into: destination)
                for segment in try log.listSegments() where !copied.contains(segment.id) {
                    try copyFile(segment.path, into: destination)
                }
            }
            try fileSystem.syncDirectory(destination)
        }
    }

    private func copyFile(_ source: String, into directory: String) throws {
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
