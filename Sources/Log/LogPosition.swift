/// A record's address in the log: `(segment id << 32) | byte offset of the record frame in
/// the segment's raw file` (spec/log-segment.md, "Positions").
///
/// Positions order like the log: comparing two positions as integers compares
/// (segment, offset). Sealing keeps positions valid: a sealed segment is addressed by the
/// offsets of the raw segment it replaced.
public typealias LogPosition = UInt64

/// Public (the module is not a product) only so that its inlinable members are inlined in the
/// other modules of the package, as a package type's are not: a read calls them per record.
public enum LogPositions {
    @inlinable @inline(__always)
    package static func make(segment: UInt32, offset: UInt32) -> LogPosition {
        (UInt64(segment) << 32) | UInt64(offset)
    }

    @inlinable @inline(__always)
    package static func segment(_ position: LogPosition) -> UInt32 {
        UInt32(truncatingIfNeeded: position >> 32)
    }

    @inlinable @inline(__always)
    package static func offset(_ position: LogPosition) -> UInt32 {
        UInt32(truncatingIfNeeded: position)
    }

    package static func describe(_ position: LogPosition) -> String {
        "\(segment(position)):\(offset(position))"
    }
}
