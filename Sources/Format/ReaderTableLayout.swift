// See spec/reader-table.md
// Constants of the two coordination files of a store: the reader table (`readers`) and the
// writer's lock file (`lock`). Every number here mirrors a table in spec/reader-table.md;
// change both in the same commit.

/// The reader table (`readers`): a 64-byte header followed by `slotCount` 64-byte slots.
/// See spec/reader-table.md, "The reader table".
package enum ReaderTableLayout {
    /// Name of the reader table inside a store directory.
    package static let fileName = "readers"
    /// "SBREADRS" read as a little-endian UInt64 (bytes 53 42 52 45 41 44 52 53).
    package static let magic: UInt64 = 0x5352_4441_4552_4253
    /// The format version this build writes and the newest it reads.
    package static let formatVersion: UInt32 = 1
    package static let headerSize = 64
    package static let slotSize = 64
    /// Slots of a table this build creates (LMDB's default reader count); the file is then
    /// 64 + 126 × 64 = 8128 bytes.
    package static let defaultSlotCount = 126
    /// The largest slot count a valid header may name.
    package static let maximumSlotCount = 4096
    /// "Durable log end" value meaning that no writer has published a bound since the table
    /// was built: readers read every complete transaction.
    package static let noBound: UInt64 = .max

    /// Byte locked shared by every process that has the table open, exclusively while one
    /// process builds or resets it (spec/reader-table.md, "Locks").
    package static let guardLockOffset: UInt64 = 0

    /// File offset of slot `index` (its first byte is the slot's lock byte).
    @inline(__always)
    package static func slotOffset(_ index: Int) -> UInt64 {
        UInt64(headerSize) + UInt64(index) * UInt64(slotSize)
    }

    /// Size of a table with `slotCount` slots.
    package static func fileSize(slotCount: Int) -> UInt64 { slotOffset(slotCount) }
}

/// Byte offsets inside the reader table's header (file offset 0).
package enum ReaderTableHeaderLayout {
    package static let magic = 0x00                  // u64
    package static let formatVersion = 0x08          // u32
    package static let slotCount = 0x0C              // u32
    package static let slotSize = 0x10               // u32
    package static let reserved0 = 0x14              // u32, zero
    package static let durableLogEnd = 0x18          // u64
    package static let checkpointTransaction = 0x20  // u64
    package static let publishCount = 0x28           // u64
    package static let reserved1 = 0x30              // 12 bytes, zero
    package static let reserved1Size = 12
    package static let checksum = 0x3C               // u32: CRC-32C of bytes 0x00 ..< 0x3C
}

/// Byte offsets inside a reader slot. A slot of 64 zero bytes is free.
package enum ReaderSlotLayout {
    package static let pid = 0x00                    // u64
    package static let processStartTime = 0x08       // u64
    package static let snapshotTransaction = 0x10    // u64
    package static let snapshotLogPosition = 0x18    // u64
    package static let generation = 0x20             // u64
    package static let reserved = 0x28               // 20 bytes, zero
    package static let reservedSize = 20
    package static let checksum = 0x3C               // u32: CRC-32C of bytes 0x00 ..< 0x3C
}

/// The writer's lock file (`lock`): the exclusive lock on its byte 0 is the store lock; the
/// bytes are an informational record of the holder. See spec/reader-table.md, "The lock file".
package enum StoreLockLayout {
    /// Name of the lock file inside a store directory.
    package static let fileName = "lock"
    /// "SBWRITER" read as a little-endian UInt64 (bytes 53 42 57 52 49 54 45 52).
    package static let magic: UInt64 = 0x5245_5449_5257_4253
    package static let formatVersion: UInt32 = 1
    /// The byte whose exclusive lock is the store lock.
    package static let lockOffset: UInt64 = 0
    /// The longest label in bytes (longer labels are cut at a UTF-8 character boundary).
    package static let maximumLabelBytes = 200

    // Record offsets.
    package static let magicOffset = 0x00            // u64
    package static let formatVersionOffset = 0x08    // u32
    package static let labelLengthOffset = 0x0C      // u32
    package static let pidOffset = 0x10              // u64
    package static let processStartTimeOffset = 0x18 // u64
    package static let acquiredAtOffset = 0x20       // i64, Unix seconds
    package static let labelOffset = 0x28            // label bytes, then the u32 CRC-32C
    /// Record size for a label of `labelBytes` bytes (the checksum follows the label).
    package static func recordSize(labelBytes: Int) -> Int { labelOffset + labelBytes + 4 }
}
