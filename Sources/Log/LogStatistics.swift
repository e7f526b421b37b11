import ScrollbackFormat

/// A segment as `Log.listSegments()` reports it.
package struct LogSegmentInfo: Sendable, Equatable {
    package enum State: Sendable, Equatable {
        /// Receives appends.
        case active
        /// Raw, no longer appended to, not yet sealed.
        case full
        case sealed
    }

    package var id: UInt32
    package var state: State
    package var path: String
    /// Bytes the segment's file takes on disk.
    package var fileBytes: UInt64
    /// Length of the raw segment: positions in this segment are below it.
    package var endOffset: UInt32
}

/// Counters of a `Log`, cumulative since open (gauges: segment counts and bytes).
package struct LogStatistics: Sendable, Equatable {
    package var segmentCount = 0
    package var rawSegmentCount = 0
    package var sealedSegmentCount = 0
    package var rawSegmentBytes: UInt64 = 0
    package var sealedSegmentBytes: UInt64 = 0
    /// Encoded bytes appended (frames + commit frames).
    package var bytesAppended: UInt64 = 0
    package var transactionsAppended: UInt64 = 0
    package var recordsAppended: UInt64 = 0
    /// fdatasync calls on segment files (group-commit leaders, segment rolls, recovery).
    package var syncs: UInt64 = 0
    /// Sync witnesses appended (empty transactions proving a synced end; `Log.appendSyncWitness`).
    package var syncWitnesses: UInt64 = 0
    package var segmentsSealed: UInt64 = 0
    /// Allocation extensions made ahead of the end, off the commit path (`Log.allocateAhead`).
    package var allocationsAhead: UInt64 = 0
    package var blockCache = BlockCacheStatistics()
}

extension Log {
    /// Every segment, in id order. Thread-safety: any thread.
    /// Throws `.corrupted` if a sealed segment's index (read on first use) is damaged.
    package func listSegments() throws -> [LogSegmentInfo] {
        let (entries, activeID) = table.withLock { (Array($0.segments.values), $0.activeID) }
        var result: [LogSegmentInfo] = []
        result.reserveCapacity(entries.count)
        for entry in entries {
            switch entry {
            case .raw(let raw):
                result.append(LogSegmentInfo(id: raw.id, state: raw.id == activeID ? .active : .full, path: raw.file.path,
                                             fileBytes: UInt64(raw.length), endOffset: UInt32(raw.length)))
            case .sealed(let sealed):
                let index = try sealed.index()
                result.append(LogSegmentInfo(id: sealed.id, state: .sealed, path: sealed.path,
                                             fileBytes: sealed.fileSize, endOffset: UInt32(index.rawLength)))
            }
        }
        return result.sorted { $0.id < $1.id }
    }

    package var statistics: LogStatistics {
        var s = LogStatistics()
        let entries = table.withLock { Array($0.segments.values) }
        for entry in entries {
            switch entry {
            case .raw(let raw):
                s.rawSegmentCount += 1
                s.rawSegmentBytes += UInt64(raw.length)
            case .sealed(let sealed):
                s.sealedSegmentCount += 1
                s.sealedSegmentBytes += sealed.fileSize
            }
        }
        s.segmentCount = entries.count
        s.bytesAppended = bytesAppended.load(ordering: .relaxed)
        s.transactionsAppended = transactionsAppended.load(ordering: .relaxed)
        s.recordsAppended = recordsAppended.load(ordering: .relaxed)
        s.syncs = syncCount.load(ordering: .relaxed)
        s.syncWitnesses = syncWitnesses.load(ordering: .relaxed)
        s.segmentsSealed = segmentsSealed.load(ordering: .relaxed)
        s.allocationsAhead = allocationsAhead.load(ordering: .relaxed)
        s.blockCache = cache.statistics
        return s
    }
}
