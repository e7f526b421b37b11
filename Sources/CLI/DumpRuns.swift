import ScrollbackFormat
import ScrollbackIO
import ScrollbackLog

/// Lists the sorted-run files of a store (spec/sorted-run.md) through the log layer's own
/// decoders on a read-only file system: each run's footer totals, key range and block index,
/// a full check of every block, and optionally its first records.
struct RunDumper {
    let directory: String
    let out: Output

    func dump(maxRecords: Int?) throws {
        let fs = ReadOnlyFileSystem()
        let store = try RunStore(fileSystem: fs, directory: directory, cacheBytes: 1 << 20, removeTemporaryFiles: false)
        let temporary = try fs.listDirectory(directory)
            .filter { $0.hasPrefix(SortedRunLayout.filePrefix) && $0.hasSuffix(SortedRunLayout.temporarySuffix) }
        for name in temporary.sorted() {
            out.line("\(name): unfinished run (removed by the next writable open)")
        }
        let ids = store.ids()
        guard !ids.isEmpty else {
            out.line("no sorted runs in \(directory)")
            return
        }
        out.line("sorted runs in \(directory):")
        for id in ids {
            let run: SortedRun
            do {
                run = try store.run(id)
            } catch {
                out.line("  \(SortedRun.fileName(id)): \(error)")
                continue
            }
            out.line("  \(SortedRun.fileName(id)): run \(id) (format \(run.version)), \(run.fileSize) bytes, \(run.blockCount) blocks "
                + "in \(run.pageCount) index pages (\(run.highCompressionBlocks) LZ4 HC), \(run.recordCount) records, \(run.payloadBytes) payload bytes")
            let entries: [RunBlockEntry]
            do {
                entries = try run.allEntries()
            } catch {
                out.line("      index: \(error)")
                continue
            }
            if let first = entries.first?.firstKey, let last = run.lastKey {
                out.line("      keys \(first) … \(last)")
            }
            for (i, entry) in entries.enumerated() {
                out.line("      block \(i): at \(entry.fileOffset), \(entry.storedLength) stored / \(entry.rawLength) raw bytes, "
                    + "\(entry.recordCount) records, \(entry.codec), crc \(String(entry.checksum, radix: 16)), keys \(entry.firstKey) … \(entry.lastKey)")
            }
            do {
                try run.verify()
                out.line("      every block checks")
            } catch {
                out.line("      verify: \(error)")
            }
            guard let maxRecords, maxRecords > 0 else { continue }
            var cursor = try store.cursor(id)
            var shown = 0
            var valid = try cursor.seekFirst()
            while valid && shown < maxRecords {
                let payload = cursor.payload
                out.line("      \(cursor.key) tag \(cursor.tag)  \(payload.count) B  \(hexBytes(payload, limit: 32))")
                shown += 1
                valid = try cursor.next()
            }
            if valid { out.line("      … more records not shown (--max-records \(maxRecords))") }
        }
    }
}
