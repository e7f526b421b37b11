// See spec/log-segment.md and spec/sealed-segment.md
//
// Constants mirroring the two log documents. A change here changes the documents in the
// same commit (and bumps the format version when existing files would read differently).

/// Byte layout of active log segments (`log-XXXXXXXX.seg`), their record frames and the
/// commit record. See spec/log-segment.md.
package enum LogSegmentLayout {
    /// Format version written in every segment header (spec/log-segment.md, "Version history").
    package static let formatVersion: UInt32 = 1

    /// "SBLOGSEG" read as a little-endian UInt64.
    package static let magic: UInt64 = 0x4745_5347_4F4C_4253

    // Segment header, at file offset 0.
    package static let headerSize = 24
    package static let headerMagicOffset = 0        // 8 bytes
    package static let headerVersionOffset = 8      // u32
    package static let headerSegmentIDOffset = 12   // u32
    package static let headerSaltOffset = 16        // u32
    package static let headerChecksumOffset = 20    // u32: CRC32C of bytes 0..<20

    // Record frame: crc u32, length u32, type u8, then `length` payload bytes.
    package static let frameHeaderSize = 9
    package static let frameChecksumOffset = 0      // u32: CRC32C(bytes 4..<9+length) XOR salt
    package static let frameLengthOffset = 4        // u32: payload length
    package static let frameTypeOffset = 8          // u8: LogRecordType

    // Commit record payload.
    package static let commitPayloadSize = 12
    package static let commitDurableThroughOffset = 0   // u32
    package static let commitTransactionStartOffset = 4 // u32
    package static let commitRecordCountOffset = 8      // u32
    package static let commitFrameSize = frameHeaderSize + commitPayloadSize   // 21

    /// Largest encoded transaction (all record frames plus the commit frame), in bytes.
    package static let maximumTransactionBytes = 1 << 30
    /// Largest configurable target segment size; with the transaction limit it keeps every
    /// offset below 2^32.
    package static let maximumSegmentSize = 1 << 30
    /// Smallest configurable target segment size (header plus one small transaction).
    package static let minimumSegmentSize = 64

    package static let fileSuffix = ".seg"
    package static let filePrefix = "log-"
}

/// Record type byte of a frame. on disk: never renumber.
package enum LogRecordType {
    /// Never written: zero-filled space must not parse as a record. on disk: never renumber.
    package static let invalid: UInt8 = 0
    /// Ends a transaction; payload is the commit payload. on disk: never renumber.
    package static let commit: UInt8 = 1
    /// Reserved for future log-internal types; read as corruption in version 1.
    package static let reserved: ClosedRange<UInt8> = 2...15
    /// Types the layer above defines; the log stores them opaquely. on disk: never renumber.
    package static let caller: ClosedRange<UInt8> = 16...255
}

/// Byte layout of sealed segments (`log-XXXXXXXX.sealed`). See spec/sealed-segment.md.
package enum SealedSegmentLayout {
    package static let formatVersion: UInt32 = 1

    /// "SBSEALED" read as a little-endian UInt64.
    package static let magic: UInt64 = 0x4445_4C41_4553_4253

    // Header, at file offset 0 (same shape as the segment header).
    package static let headerSize = 24
    package static let headerMagicOffset = 0        // 8 bytes
    package static let headerVersionOffset = 8      // u32
    package static let headerSegmentIDOffset = 12   // u32
    package static let headerSaltOffset = 16        // u32: the raw segment's salt
    package static let headerChecksumOffset = 20    // u32: CRC32C of bytes 0..<20

    // Block index entry.
    package static let indexEntrySize = 24
    package static let entryRawOffset = 0           // u32: raw-segment offset of the block's first frame
    package static let entryRawLength = 4           // u32: uncompressed length
    package static let entryFileOffset = 8          // u64: file offset of the compressed bytes
    package static let entryCompressedLength = 16   // u32
    package static let entryChecksum = 20           // u32: CRC32C of the compressed bytes

    // Footer, the last 24 bytes of the file.
    package static let footerSize = 24
    package static let footerIndexOffset = 0        // u64
    package static let footerBlockCount = 8         // u32
    package static let footerRawLength = 12         // u32: length of the raw segment it replaces
    package static let footerIndexChecksum = 16     // u32: CRC32C of the index bytes
    package static let footerChecksum = 20          // u32: CRC32C of footer bytes 0..<20

    /// Default uncompressed target size of one block.
    package static let defaultBlockSize = 32 << 10

    package static let fileSuffix = ".sealed"
    /// Suffix of the temporary file a seal writes before renaming it into place.
    package static let temporarySuffix = ".sealed.tmp"
}
