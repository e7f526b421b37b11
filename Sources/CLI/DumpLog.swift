import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog
import ScrollbackMessaging

/// Lists the log's segment files (`SegmentFileReport`: headers, sealed footers and block
/// indexes by the log's own decoders) and its records (through the log's own recovery scan
/// on a read-only view, so nothing on disk changes), each described by the message layer's
/// record decoders.
struct LogDumper {
    let directory: String
    let out: Output

    func dump(segment only: UInt32?, maxRecords: Int?) throws {
        let fs = ReadOnlyFileSystem()
        let files = try SegmentFileReport.inspectAll(fileSystem: fs, directory: directory)
        guard !files.isEmpty else {
            out.line("no log segments in \(directory)")
            return
        }
        out.line("log segments in \(directory):")
        for file in files { describe(file) }

        out.line("records (complete transactions, in log order):")
        var shown = 0
        var skippedTransactions = 0
        var truncated = false
        let log = try Log.open(fileSystem: fs, directory: directory, options: LogOptions(), replayFrom: 0) { txn in
            if let only, txn.segment != only { return }
            if let maxRecords, shown >= maxRecords {
                truncated = true
                skippedTransactions += 1
                return
            }
            out.line("  transaction at \(MessageRecordDescription.describe(txn.start)): \(txn.recordCount) record\(txn.recordCount == 1 ? "" : "s"), ends at offset \(LogPositions.offset(txn.end))")
            txn.forEachRecord { position, type, payload in
                if let maxRecords, shown >= maxRecords {
                    truncated = true
                    return
                }
                shown += 1
                out.line("    \(LogPositions.describe(position))  " + Self.record(type, payload, at: position))
            }
        }
        defer { try? log.close() }
        if truncated { out.line("  … more records not shown (--max-records \(maxRecords ?? 0)); \(skippedTransactions) more transactions") }
        for info in try log.listSegments() where only == nil || info.id == only {
            out.line("segment \(info.id): \(info.state), records end at offset \(info.endOffset)")
        }
    }

    /// "type 16 message  55 B  seq 7 …" (hex when the payload does not decode).
    static func record(_ type: UInt8, _ payload: UnsafeRawBufferPointer, at position: LogPosition) -> String {
        let fields = MessageRecordDescription.describe(type: type, payload: payload, position: position)
            ?? hexBytes(payload, limit: 48)
        return "type \(type) \(MessageRecordDescription.name(ofType: type))  \(payload.count) B  \(fields)"
    }

    private func describe(_ file: SegmentFileReport) {
        guard let header = file.header else {
            out.line("  \(file.name): \(file.size) bytes, header truncated")
            return
        }
        let kind = header.magic == LogSegmentLayout.magic ? "raw"
            : header.magic == SealedSegmentLayout.magic ? (file.kind == .sealTemporary ? "sealed (temporary)" : "sealed")
            : "UNKNOWN MAGIC \(hex(header.magic))"
        let checksum = header.storedChecksum == header.computedChecksum
            ? "ok" : "MISMATCH (stored \(hex(header.storedChecksum)), computed \(hex(header.computedChecksum)))"
        out.line("  \(file.name): \(kind), \(file.size) bytes, version \(header.version), id \(header.id), salt \(hex(header.salt)), "
            + "header checksum \(checksum)" + (file.headerProblem.map { "; \($0)" } ?? ""))
        switch file.index {
        case .success(let index)?:
            out.line("      block index ok: \(index.blockCount) LZ4 blocks (\(index.compressedBytes) bytes), replaces \(index.rawLength) raw bytes")
        case .failure(let error)?:
            out.line("      block index: \(error)")
        case nil:
            break
        }
    }
}
