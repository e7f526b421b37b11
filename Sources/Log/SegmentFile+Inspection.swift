import ScrollbackFormat
import ScrollbackIO

/// One file of a log directory as an inspection tool (`scrollback dump`) shows it: its header
/// fields as stored, what the log's own decoders say of the header and, for a sealed segment,
/// of the footer and block index. Nothing is recovered or changed.
package struct SegmentFileReport: Sendable {
    package enum Kind: Sendable, Equatable {
        case raw, sealed, sealTemporary
    }

    package var name: String
    package var kind: Kind
    package var id: UInt32
    package var size: UInt64
    /// Header fields as stored; nil when the file is shorter than a header.
    package var header: HeaderFields?
    /// Why the log's header decoder rejects the file (nil: it accepts it).
    package var headerProblem: String?
    /// Sealed segments: the block index as the log's index decoder reads it, or why it does not.
    package var index: Result<IndexSummary, StorageError>?

    package struct HeaderFields: Sendable {
        package var magic: UInt64
        package var version: UInt32
        package var id: UInt32
        package var salt: UInt32
        package var storedChecksum: UInt32
        package var computedChecksum: UInt32
    }

    package struct IndexSummary: Sendable {
        package var blockCount: Int
        /// Length of the raw segment the sealed file replaces.
        package var rawLength: Int
        /// Bytes of the compressed blocks.
        package var compressedBytes: UInt64
    }

    /// The log's files in `directory`, in name order (other files are left out).
    package static func inspectAll(fileSystem: any FileSystem, directory: String) throws -> [SegmentFileReport] {
        try fileSystem.listDirectory(directory).sorted().compactMap { name in
            guard let (id, kind) = SegmentFileName.parse(name) else { return nil }
            return try inspect(fileSystem: fileSystem, path: Path.join(directory, name), id: id, kind: kind)
        }
    }

    private static func inspect(fileSystem: any FileSystem, path: String, id: UInt32, kind: SegmentFileName.Kind) throws
        -> SegmentFileReport {
        let handle = try fileSystem.open(path, mode: .readOnly)
        defer { try? handle.close() }
        let size = try handle.size()
        let sealed = kind != .raw
        var report = SegmentFileReport(name: Path.name(of: path), kind: kind == .raw ? .raw : kind == .sealed ? .sealed : .sealTemporary,
                                       id: id, size: size)
        let bytes = try handle.readBytes(count: LogSegmentLayout.headerSize, at: 0)
        report.header = bytes.count < LogSegmentLayout.headerSize ? nil : bytes.withUnsafeBytes(Self.fields)
        do {
            _ = try bytes.withUnsafeBytes {
                try SegmentFileHeader.decode($0, file: path, magic: sealed ? SealedSegmentLayout.magic : LogSegmentLayout.magic,
                                             version: sealed ? SealedSegmentLayout.formatVersion : LogSegmentLayout.formatVersion,
                                             expectedID: id)
            }
        } catch {
            report.headerProblem = "\(error)"
        }
        if sealed {
            do {
                let index = try SealedSegment.readIndex(handle, id: id, fileSize: size)
                report.index = .success(IndexSummary(blockCount: index.entries.count, rawLength: index.rawLength,
                                                     compressedBytes: index.entries.reduce(0) { $0 + UInt64($1.compressedLength) }))
            } catch let error as StorageError {
                report.index = .failure(error)
            }
        }
        return report
    }

    private static func fields(_ b: UnsafeRawBufferPointer) -> HeaderFields {
        typealias L = LogSegmentLayout
        return HeaderFields(
            magic: b.loadLE(UInt64.self, at: L.headerMagicOffset), version: b.loadLE(UInt32.self, at: L.headerVersionOffset),
            id: b.loadLE(UInt32.self, at: L.headerSegmentIDOffset), salt: b.loadLE(UInt32.self, at: L.headerSaltOffset),
            storedChecksum: b.loadLE(UInt32.self, at: L.headerChecksumOffset),
            computedChecksum: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<L.headerChecksumOffset])))
    }
}
