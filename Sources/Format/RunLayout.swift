// See spec/sorted-run.md
//
// Constants of the sorted-run file (`run-XXXXXXXX.run`): header, blocks, block index and
// footer. Every value here is on disk: never renumber, never change.

/// Layout of a sorted-run file (spec/sorted-run.md).
package enum SortedRunLayout {
    /// Format version of run files written by this build. Version 1 (no page table; the
    /// footer's index crc covers the whole index) is still read.
    package static let formatVersion: UInt32 = 2
    /// The version without a page table.
    package static let unpagedVersion: UInt32 = 1
    /// "SBSORTRN" as a little-endian u64 (bytes 53 42 53 4F 52 54 52 4E).
    package static let magic: UInt64 = 0x4E52_5452_4F53_4253

    // Header (32 bytes at offset 0).
    package static let headerSize = 32
    package static let headerMagicOffset = 0         // 8 bytes
    package static let headerVersionOffset = 8       // u32
    package static let headerRunIDOffset = 12        // u32
    package static let headerKeyWordsOffset = 16     // u32, always 3 in version 1
    package static let headerReservedOffset = 20     // 8 bytes, zero
    package static let headerChecksumOffset = 28     // u32: CRC32C of bytes 0..<28

    // Block index entry (80 bytes each).
    package static let indexEntrySize = 80
    package static let entryFirstKeyOffset = 0       // 3 × u64
    package static let entryLastKeyOffset = 24       // 3 × u64
    package static let entryFileOffset = 48          // u64: where the stored block starts
    package static let entryStoredLengthOffset = 56  // u32: bytes stored in the file
    package static let entryRawLengthOffset = 60     // u32: bytes after decompression
    package static let entryRecordCountOffset = 64   // u32
    package static let entryCodecOffset = 68         // u8: RunBlockCodec
    package static let entryReservedOffset = 69      // 7 bytes, zero
    package static let entryChecksumOffset = 76      // u32: CRC32C of the stored bytes

    // Index pages (version 2): the index entries in groups of `indexPageEntries` (the last
    // group may be shorter), each summarized in the page table after the entries.
    package static let indexPageEntries = 64
    package static let pageSummarySize = 40
    package static let summaryLastKeyOffset = 0       // 3 × u64: the page's last block's last key
    package static let summaryFirstOffset = 24        // u64: the file offset of the page's first block
    package static let summaryChecksumOffset = 32     // u32: CRC32C of the page's index entries
    package static let summaryReservedOffset = 36     // u32, zero

    /// Index pages of a run of `blocks` blocks.
    package static func pageCount(blocks: Int) -> Int { (blocks + indexPageEntries - 1) / indexPageEntries }

    // Footer (48 bytes, the last bytes of the file).
    package static let footerSize = 48
    package static let footerIndexOffset = 0         // u64
    package static let footerBlockCount = 8          // u32
    package static let footerHighCompressionBlocks = 12 // u32: blocks with codec 2 (LZ4 HC); zero (reserved) in version 1
    package static let footerRecordCount = 16        // u64
    package static let footerPayloadBytes = 24       // u64: sum of payload lengths
    package static let footerReserved2 = 32          // 8 bytes, zero
    package static let footerIndexChecksum = 40      // u32: CRC32C of the page table (version 2) or of the index bytes (version 1)
    package static let footerChecksum = 44           // u32: CRC32C of footer bytes 0..<44

    /// Words per key (conversation, createdAt, seq in the message layer).
    package static let keyWords = 3
    package static let keySize = 24
    /// Default uncompressed target size of a block.
    package static let defaultBlockSize = 8 << 10
    /// Upper bound of a block's decoded size and of one payload (a record larger than the
    /// target gets a block of its own).
    package static let maximumBlockBytes = 1 << 30
    /// Largest number of records in one block.
    package static let maximumRecordsPerBlock = 1 << 20

    package static let filePrefix = "run-"
    package static let fileSuffix = ".run"
    package static let temporarySuffix = ".run.tmp"
}

/// How a block's bytes are stored. on disk: never renumber.
package enum RunBlockCodec: UInt8, Sendable, CaseIterable {
    /// The encoded block as is.
    case stored = 0
    /// LZ4 block format, compressed with LZ4's fast mode.
    case lz4 = 1
    /// LZ4 block format, compressed with LZ4 HC (same decoder; the byte records the effort,
    /// so compaction knows which blocks are worth recompressing).
    case lz4HighCompression = 2
}
