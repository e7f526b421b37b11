import ScrollbackFormat

/// Tuning of a `Log`. Every value is checked by `Log.open` (`.invalidArgument` when out of range).
package struct LogOptions: Sendable, Equatable {
    /// Target size of a raw segment file in bytes, header included. A transaction that does
    /// not fit the active segment's remaining space starts a new segment; one larger than
    /// this gets a segment of its own. Range: 64 ... 1 GiB. Default 16 MiB.
    package var segmentSize: Int
    /// Uncompressed target size of a sealed block. A block holds whole records, so a record
    /// larger than this gets a block of its own. Range: 64 ... 64 MiB. Default 32 KiB.
    package var blockSize: Int
    /// Capacity of the cache of decompressed sealed blocks, in bytes. 0 disables caching
    /// (every sealed read decompresses). Default 8 MiB.
    package var blockCacheBytes: Int
    /// Capacity of the cache of single records read from sealed blocks (`RecordCache`), in
    /// bytes, each record charged its payload + 96. 0 (the default) disables it.
    package var recordCacheBytes: Int = 0
    /// When set, segment salts derive from this seed and the segment id instead of the
    /// system random generator, so tests replay byte-identically. Production leaves it nil.
    package var saltSeed: UInt64?
    /// When set, recovery reports corruption if the segment holding `replayFrom` is missing
    /// while later segments exist, or any segment after it is (ids are consecutive): the
    /// transactions in it would be skipped silently. A caller sets it when its replay position
    /// and everything after it always exist (the storage engine removes a segment only once
    /// the durable checkpoint replays from a later one).
    /// Off by default, so a caller may replay from the end of a segment it has removed.
    package var requireReplaySegment = false
    /// Extend the active segment's allocation ahead of its end on a background thread, synced
    /// there (`Log.allocateAhead()`), so commits do not pay the file's size change in their
    /// own sync. Off by default (the log then extends on the commit path, in
    /// `Log.preallocationBytes` steps); stores turn it on when their file system allows
    /// background I/O (`FileSystem.allowsBackgroundIO`).
    package var allocateAhead = false

    package init(
        segmentSize: Int = 16 << 20,
        blockSize: Int = SealedSegmentLayout.defaultBlockSize,
        blockCacheBytes: Int = 8 << 20,
        saltSeed: UInt64? = nil
    ) {
        self.segmentSize = segmentSize
        self.blockSize = blockSize
        self.blockCacheBytes = blockCacheBytes
        self.saltSeed = saltSeed
    }

    func validate() throws {
        guard (LogSegmentLayout.minimumSegmentSize...LogSegmentLayout.maximumSegmentSize).contains(segmentSize) else {
            throw StorageError.invalidArgument("segmentSize \(segmentSize) outside 64 ... 1 GiB")
        }
        guard (64...(64 << 20)).contains(blockSize) else {
            throw StorageError.invalidArgument("blockSize \(blockSize) outside 64 ... 64 MiB")
        }
        guard blockCacheBytes >= 0 else {
            throw StorageError.invalidArgument("blockCacheBytes \(blockCacheBytes) is negative")
        }
        guard recordCacheBytes >= 0 else {
            throw StorageError.invalidArgument("recordCacheBytes \(recordCacheBytes) is negative")
        }
    }

    func salt(forSegment id: UInt32) -> UInt32 {
        if let seed = saltSeed {
            var z = seed &+ UInt64(id) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt32(truncatingIfNeeded: z ^ (z >> 31))
        }
        var generator = SystemRandomNumberGenerator()
        return UInt32.random(in: .min ... .max, using: &generator)
    }
}
