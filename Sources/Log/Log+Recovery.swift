import ScrollbackFormat
import ScrollbackIO

extension Log {
    /// Opens the log in `directory` (creating the directory and segment 1 if there is no
    /// log yet) and runs recovery (spec/log-segment.md, "Recovery"):
    ///
    /// 1. Removes leftover seal temporaries; where a segment has both a raw and a sealed
    ///    file (a crash during sealing), keeps the sealed one if it is entirely valid and
    ///    removes the raw one, else removes the sealed one.
    /// 2. Scans, in id order, every segment from the one holding `replayFrom`, and calls
    ///    `apply` for each complete transaction whose first record is at or after
    ///    `replayFrom`, in log order. A transaction missing its commit is never applied.
    /// 3. The last segment may end torn: a short or bad frame with no proof that it had been
    ///    synced is cut off (the file is truncated and synced). Damage with such proof, and
    ///    any damage in an earlier segment, throws `.corrupted(file:offset:reason:)`.
    /// 4. Syncs the last segment, so everything replayed is durable.
    ///
    /// `replayFrom`: 0 replays everything; otherwise normally the `end` of the last
    /// transaction the caller has made durable elsewhere (e.g. in a checkpoint). A
    /// `replayFrom` beyond the recovered end of the log throws `.corrupted`: the log lost
    /// data the caller had seen durable. REQUIRES: the caller never records a position as
    /// durable before `sync(through:)` of it returned.
    ///
    /// Errors thrown by `apply` abort the open and are rethrown. Cost: reads every segment
    /// from `replayFrom` on, plus the last segment's header; O(bytes scanned).
    package static func open(
        fileSystem: any FileSystem, directory: String, options: LogOptions = LogOptions(),
        replayFrom: LogPosition, apply: (LoggedTransaction) throws -> Void
    ) throws -> Log {
        try options.validate()
        try fileSystem.createDirectory(directory)
        let inventory = try takeInventory(fileSystem: fileSystem, directory: directory)
        var replay = Replay(fileSystem: fileSystem, directory: directory, options: options, replayFrom: replayFrom)
        try replay.checkReplaySegment(inventory.ids)
        for id in inventory.ids {
            if inventory.sealed.contains(id) {
                try replay.openSealed(id, isLast: id == inventory.ids.last, apply: apply)
            } else if id == inventory.ids.last {
                try replay.recoverLast(id, apply: apply)
            } else {
                try replay.openFull(id, apply: apply)
            }
        }
        try replay.checkReplayPosition()
        return try replay.makeLog()
    }

    /// The log's segment files after step 1: crash leftovers of sealing removed.
    struct Inventory {
        var ids: [UInt32]
        var sealed: Set<UInt32>
    }

    /// 1. Lists the segment files, removes seal temporaries, and where a segment has both a
    /// raw and a sealed file keeps the sealed one if it is entirely valid, else the raw one.
    static func takeInventory(fileSystem: any FileSystem, directory: String) throws -> Inventory {
        func path(_ id: UInt32, _ kind: SegmentFileName.Kind) -> String { Path.join(directory, SegmentFileName.name(id, kind)) }
        var rawIDs = Set<UInt32>()
        var sealedIDs = Set<UInt32>()
        var directoryChanged = false
        for name in try fileSystem.listDirectory(directory) {
            guard let (id, kind) = SegmentFileName.parse(name) else { continue }
            switch kind {
            case .raw: rawIDs.insert(id)
            case .sealed: sealedIDs.insert(id)
            case .temporary:
                try fileSystem.removeFile(Path.join(directory, name))
                directoryChanged = true
            }
        }
        for id in rawIDs.intersection(sealedIDs).sorted() {
            if try sealedFileIsValid(fileSystem: fileSystem, path: path(id, .sealed), id: id) {
                try fileSystem.removeFile(path(id, .raw))
                rawIDs.remove(id)
            } else {
                try fileSystem.removeFile(path(id, .sealed))
                sealedIDs.remove(id)
            }
            directoryChanged = true
        }
        if directoryChanged { try fileSystem.syncDirectory(directory) }
        return Inventory(ids: rawIDs.union(sealedIDs).sorted(), sealed: sealedIDs)
    }

    /// 2.–4. of `open`: the segments opened so far, in id order, and where the log ends.
    struct Replay {
        let fileSystem: any FileSystem
        let directory: String
        let options: LogOptions
        let replayFrom: LogPosition
        var segments: [UInt32: SegmentEntry] = [:]
        var active: RawSegment?
        var syncs: UInt64 = 0
        var logEnd: LogPosition = 0
        var lastPath: String

        init(fileSystem: any FileSystem, directory: String, options: LogOptions, replayFrom: LogPosition) {
            self.fileSystem = fileSystem
            self.directory = directory
            self.options = options
            self.replayFrom = replayFrom
            lastPath = directory
        }

        var replaySegment: UInt32 { LogPositions.segment(replayFrom) }
        func applyFrom(_ id: UInt32) -> Int { id == replaySegment ? Int(LogPositions.offset(replayFrom)) : 0 }
        func path(_ id: UInt32, _ kind: SegmentFileName.Kind) -> String { Path.join(directory, SegmentFileName.name(id, kind)) }

        /// The segment holding the replay position must exist when later ones do: otherwise
        /// the transactions after `replayFrom` in it are gone and replaying the later segments
        /// alone would silently skip them (e.g. the caller's state is an older checkpoint
        /// whose segment compaction has removed).
        func checkReplaySegment(_ ids: [UInt32]) throws {
            guard options.requireReplaySegment, replayFrom != 0, !ids.contains(replaySegment),
                  let later = ids.first(where: { $0 > replaySegment }) else { return }
            throw StorageError.corrupted(
                file: path(replaySegment, .raw), offset: UInt64(LogPositions.offset(replayFrom)),
                reason: "log segment \(replaySegment), which holds the replay position \(LogPositions.describe(replayFrom)), is missing (the log continues with segment \(later)): durable log data is missing")
        }

        /// A sealed segment. Its index is read lazily (first read) unless replay needs it, so
        /// damage in an old sealed segment fails only the reads that touch it.
        mutating func openSealed(_ id: UInt32, isLast: Bool, apply: (LoggedTransaction) throws -> Void) throws {
            let handle = try fileSystem.open(path(id, .sealed), mode: .readOnly)
            let sealed = SealedSegment(id: id, file: SegmentFile(handle), fileSize: try handle.size())
            if id >= replaySegment {
                let index = try sealed.index()
                let image = try sealed.rawImage()
                try image.withUnsafeBytes {
                    try SegmentScanner.scanComplete($0, path: sealed.path, segment: id, salt: index.salt,
                                                    applyFrom: applyFrom(id), apply: apply)
                }
            }
            segments[id] = .sealed(sealed)
            if isLast {
                logEnd = LogPositions.make(segment: id, offset: UInt32(try sealed.index().rawLength))
            }
            lastPath = sealed.path
        }

        /// The last raw segment: the torn-tail rule applies (`recoverLastSegment`).
        mutating func recoverLast(_ id: UInt32, apply: (LoggedTransaction) throws -> Void) throws {
            let (segment, didSync) = try recoverLastSegment(
                fileSystem: fileSystem, path: path(id, .raw), id: id, options: options,
                applyFrom: id >= replaySegment ? applyFrom(id) : Int.max, replayFrom: replayFrom, apply: apply)
            if didSync { syncs += 1 }
            active = segment
            logEnd = LogPositions.make(segment: id, offset: UInt32(segment.length))
            lastPath = segment.file.path
        }

        /// A full raw segment (not the last): complete and synced before the next was
        /// created, so any bad frame is corruption. Only the header is read before the
        /// replay position.
        mutating func openFull(_ id: UInt32, apply: (LoggedTransaction) throws -> Void) throws {
            let handle = try fileSystem.open(path(id, .raw), mode: .readOnly)
            let size = try handle.size()
            guard size <= UInt64(UInt32.max) else {
                throw StorageError.corrupted(file: handle.path, offset: UInt64(UInt32.max), reason: "segment larger than 4 GiB")
            }
            let salt: UInt32
            if id >= replaySegment {
                let bytes = try handle.readBytes(count: Int(size), at: 0)
                salt = try bytes.withUnsafeBytes { b in
                    let header = try SegmentFileHeader.decode(b, file: handle.path, magic: L.magic,
                                                              version: L.formatVersion, expectedID: id)
                    try SegmentScanner.scanComplete(b, path: handle.path, segment: id, salt: header.salt,
                                                    applyFrom: applyFrom(id), apply: apply)
                    return header.salt
                }
            } else {
                let bytes = try handle.readBytes(count: L.headerSize, at: 0)
                salt = try bytes.withUnsafeBytes {
                    try SegmentFileHeader.decode($0, file: handle.path, magic: L.magic,
                                                 version: L.formatVersion, expectedID: id).salt
                }
            }
            segments[id] = .raw(RawSegment(id: id, file: SegmentFile(handle), salt: salt, image: nil, fixedLength: Int(size)))
            logEnd = LogPositions.make(segment: id, offset: UInt32(size))
            lastPath = handle.path
        }

        /// 3. The replay position must lie within what the log still holds.
        func checkReplayPosition() throws {
            if replayFrom > logEnd {
                throw StorageError.corrupted(
                    file: lastPath, offset: UInt64(LogPositions.offset(logEnd)),
                    reason: "log ends at \(LogPositions.describe(logEnd)), before the replay position \(LogPositions.describe(replayFrom)): durable log data is missing")
            }
        }

        /// 4. The log, with an active segment to append to (a new one after the last when the
        /// last is sealed or there is none).
        func makeLog() throws -> Log {
            var syncs = syncs
            let log: Log
            if let active {
                log = Log(fileSystem: fileSystem, directory: directory, options: options, segments: segments, active: active)
            } else {
                let id = (segments.keys.max() ?? 0) + 1
                let segment = try Log.createSegmentFile(fileSystem: fileSystem, directory: directory, options: options,
                                                        id: id, capacity: options.segmentSize)
                syncs += 1
                log = Log(fileSystem: fileSystem, directory: directory, options: options, segments: segments, active: segment)
            }
            log.syncCount.add(syncs, ordering: .relaxed)
            return log
        }
    }

    /// Whether a sealed file is entirely valid: header, footer, index, every block checksum
    /// and decompression, every frame, ending at a commit. Used for crash leftovers only.
    static func sealedFileIsValid(fileSystem: any FileSystem, path: String, id: UInt32) throws -> Bool {
        let handle = try fileSystem.open(path, mode: .readOnly)
        let sealed = SealedSegment(id: id, file: SegmentFile(handle), fileSize: try handle.size())
        do {
            let index = try sealed.index()
            let image = try sealed.rawImage()
            try image.withUnsafeBytes {
                try SegmentScanner.scanComplete($0, path: path, segment: id, salt: index.salt, applyFrom: Int.max) { _ in }
            }
            return true
        } catch let error as StorageError {
            switch error {
            case .corrupted, .notAStore, .unsupportedVersion: return false
            default: throw error
            }
        }
    }

    /// Recovers the last (active) segment: loads it into memory, replays it, applies the
    /// torn-tail rule, truncates a torn tail, and syncs. Returns the segment and whether a
    /// sync was issued.
    static func recoverLastSegment(
        fileSystem: any FileSystem, path: String, id: UInt32, options: LogOptions, applyFrom: Int,
        replayFrom: LogPosition, apply: (LoggedTransaction) throws -> Void
    ) throws -> (RawSegment, Bool) {
        let handle = try fileSystem.open(path, mode: .existing)
        let file = SegmentFile(handle)
        let size = try handle.size()
        guard size <= UInt64(L.maximumSegmentSize + L.maximumTransactionBytes) else {
            throw StorageError.corrupted(file: path, offset: 0, reason: "segment of \(size) bytes exceeds the format's limit")
        }
        let image = SegmentImage(capacity: max(options.segmentSize, Int(size), L.headerSize))
        try handle.readExactly(into: UnsafeMutableRawBufferPointer(start: image.base, count: Int(size)), at: 0)
        let bytes = UnsafeRawBufferPointer(start: image.base, count: Int(size))

        // The header: written and synced before any record, so a bad header is a torn
        // creation only if nothing follows it.
        let header: SegmentFileHeader
        do {
            header = try SegmentFileHeader.decode(bytes, file: path, magic: L.magic, version: L.formatVersion, expectedID: id)
        } catch StorageError.corrupted(let errorFile, let offset, let reason) {
            guard size <= UInt64(L.headerSize) else {
                throw StorageError.corrupted(file: errorFile, offset: offset,
                                             reason: "\(reason), and records follow it (the header is synced before any record)")
            }
            // Torn creation: write the header anew.
            let salt = options.salt(forSegment: id)
            let fresh = SegmentFileHeader(segmentID: id, salt: salt).encode(magic: L.magic, version: L.formatVersion)
            try handle.truncate(to: 0)
            try handle.write(fresh, at: 0)
            try handle.syncData()
            try fileSystem.syncDirectory(Path.directory(of: path))
            fresh.withUnsafeBytes { image.base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            image.publish(L.headerSize)
            return (RawSegment(id: id, file: file, salt: salt, image: image, fixedLength: 0), true)
        }

        let scan = try SegmentScanner.scan(bytes, segment: id, salt: header.salt, applyFrom: applyFrom, apply: apply)
        var end = Int(size)
        if !scan.isClean {
            if let bad = scan.badOffset,
               let proof = SegmentScanner.durableCommitAfter(bytes, badOffset: bad, validEnd: scan.validEnd, salt: header.salt) {
                throw StorageError.corrupted(
                    file: path, offset: UInt64(bad),
                    reason: "\(scan.badReason); the valid commit record at offset \(proof.offset) shows the segment was durable through offset \(proof.durableThrough), so this is damage to synced data, not a torn tail")
            }
            // Torn tail: nothing proves these bytes were ever synced, so no acknowledged
            // transaction can be in them. Cut them off — unless the caller already saw
            // data past the cut as durable: then report it and leave the file as it is.
            end = scan.validEnd
            let cut = LogPositions.make(segment: id, offset: UInt32(end))
            if replayFrom > cut {
                throw StorageError.corrupted(
                    file: path, offset: UInt64(scan.badOffset ?? end),
                    reason: "\(scan.badOffset == nil ? "segment ends inside a transaction" : scan.badReason) at the tail, but the replay position \(LogPositions.describe(replayFrom)) lies beyond \(LogPositions.describe(cut)): durable log data is damaged")
            }
            try handle.truncate(to: UInt64(end))
        }
        try handle.syncData()
        image.publish(end)
        return (RawSegment(id: id, file: file, salt: header.salt, image: image, fixedLength: 0), true)
    }
}
