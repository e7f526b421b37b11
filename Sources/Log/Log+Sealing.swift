import ScrollbackFormat
import ScrollbackIO

extension Log {
    /// Seals every full raw segment (every raw segment but the active one) into an LZ4
    /// sealed file, oldest first, and returns how many it sealed. Positions do not change.
    ///
    /// Per segment (spec/sealed-segment.md, "Sealing"): write `log-X.sealed.tmp`,
    /// fdatasync it, rename it to `log-X.sealed`, sync the directory, switch readers to it,
    /// remove `log-X.seg`, sync the directory. A crash at any step leaves either the raw
    /// segment, or both files (recovery keeps the valid sealed one), or only the sealed one.
    ///
    /// Runs concurrently with appends, syncs and reads (not with another seal or
    /// `removeSegment`: those wait). A failure leaves the raw segment in place and does not
    /// poison the log; it throws `.io` or `.corrupted` (a raw segment whose frames do not verify).
    @discardableResult
    package func sealFullSegments() throws -> Int {
        try maintenanceLock.withLock { _ throws -> Int in
            if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
            let candidates = table.withLock { table -> [RawSegment] in
                table.segments.values.compactMap { entry -> RawSegment? in
                    if case .raw(let raw) = entry, raw.id != table.activeID { return raw }
                    return nil
                }.sorted { $0.id < $1.id }
            }
            for raw in candidates { try seal(raw) }
            return candidates.count
        }
    }

    private func seal(_ raw: RawSegment) throws {
        let temporaryPath = path(raw.id, .temporary)
        let sealedPath = path(raw.id, .sealed)
        if fileSystem.fileExists(temporaryPath) { try fileSystem.removeFile(temporaryPath) }
        let handle = try fileSystem.open(temporaryPath, mode: .createNew)
        let written: (SealedIndex, UInt64)
        do {
            written = try withRawImage(raw) { image in
                try SealedSegmentWriter.write(image: image, rawPath: raw.file.path, id: raw.id, salt: raw.salt,
                                              blockSize: options.blockSize, to: handle)
            }
            try handle.syncData()
            try handle.close()
        } catch {
            try? handle.close()
            try? fileSystem.removeFile(temporaryPath)
            throw error
        }
        try fileSystem.rename(temporaryPath, to: sealedPath)
        try fileSystem.syncDirectory(directory)
        let sealedHandle = try fileSystem.open(sealedPath, mode: .readOnly)
        let sealed = SealedSegment(id: raw.id, file: SegmentFile(sealedHandle), fileSize: written.1, index: written.0)
        table.withLock { $0.segments[raw.id] = .sealed(sealed) }
        // Readers that picked up `raw` before the switch keep its handle alive until done.
        try fileSystem.removeFile(raw.file.path)
        try fileSystem.syncDirectory(directory)
        segmentsSealed.add(1, ordering: .relaxed)
    }

    private func withRawImage<R>(_ raw: RawSegment, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let image = raw.image {
            return try withExtendedLifetime(image) { try body(image.publishedBytes) }
        }
        let bytes = try raw.file.handle.readBytes(count: raw.fixedLength, at: 0)
        guard bytes.count == raw.fixedLength else {
            throw StorageError.corrupted(file: raw.file.path, offset: UInt64(bytes.count), reason: "segment shrank while open")
        }
        return try bytes.withUnsafeBytes { try body($0) }
    }

    /// Removes segment `id` (raw or sealed) and syncs the directory; for compaction, once
    /// nothing refers to its positions any more. Reads of its positions then throw
    /// `.invalidArgument`. Throws `.invalidArgument` for the active segment or an unknown id.
    package func removeSegment(_ id: UInt32) throws {
        try maintenanceLock.withLock { _ throws in
            if isClosed.load(ordering: .acquiring) { throw StorageError.closed }
            let removed = try table.withLock { table throws -> SegmentEntry in
                guard id != table.activeID else {
                    throw StorageError.invalidArgument("segment \(id) is the active segment")
                }
                guard let entry = table.segments.removeValue(forKey: id) else {
                    throw StorageError.invalidArgument("no log segment \(id)")
                }
                return entry
            }
            switch removed {
            case .raw(let raw): try fileSystem.removeFile(raw.file.path)
            case .sealed(let sealed): try fileSystem.removeFile(sealed.path)
            }
            try fileSystem.syncDirectory(directory)
            cache.removeAll(segment: id)
            recordCache?.removeAll(segment: id)
        }
    }
}
