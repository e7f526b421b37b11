import CLMDB
import CSQLite
import Foundation
import ScrollbackWorkload

// The peers' library versions, LMDB's map size, and the disk-space check before a run.

extension Benchmark {
    var libraryVersions: String {
        "SQLite \(String(cString: sqlite3_libversion())), LMDB \(lmdbVersion), RocksDB \(rocksDBVersion)"
    }

    /// "0.9.24" (from "LMDB 0.9.24: (July 24, 2019)").
    var lmdbVersion: String {
        String(cString: mdb_version(nil, nil, nil)).replacingOccurrences(of: "LMDB ", with: "").prefix { $0 != ":" }.description
    }

    /// From the mapped shared library's file name (librocksdb.so.7.8.3): the C API has no
    /// version call.
    var rocksDBVersion: String {
        for line in readWholeFile("/proc/self/maps").split(separator: "\n") {
            guard let path = line.split(separator: " ").last, path.contains("librocksdb.so") else { continue }
            let file = URL(fileURLWithPath: String(path)).resolvingSymlinksInPath().lastPathComponent
            if let range = file.range(of: ".so.") { return String(file[range.upperBound...]) }
        }
        return "?"
    }

    /// LMDB's map is address space, not memory or disk: room for the largest band.
    var lmdbMapBytes: Int {
        let wanted = configuration.messages * 2048 + (4 << 30)
        return (wanted + (1 << 30) - 1) / (1 << 30) * (1 << 30)
    }

    /// Refuses a run whose stores would not fit on the disk (rough bytes per message per
    /// engine from the reference run, plus the copy that compaction makes).
    func checkDiskSpace() throws {
        let perMessage: [String: Double] = [
            "scrollback": 300, "sqlite-rowid": 230, "sqlite-clustered": 230, "lmdb": 400, "rocksdb": 120,
        ]
        let sizes = options.engines.map { Double(configuration.messages) * (perMessage[$0] ?? 400) }
        var needed = sizes.reduce(0, +)
        if !options.skip.contains("compaction") && options.wants(.compaction) { needed += sizes.max() ?? 0 }
        needed *= 1.15
        try? FileManager.default.createDirectory(atPath: options.directory, withIntermediateDirectories: true)
        var fs = statvfs()
        guard statvfs(options.directory, &fs) == 0 else { return }
        let available = Double(fs.f_bavail) * Double(fs.f_frsize)
        log("disk: about \(formatBytes(UInt64(needed))) needed under \(options.directory), \(formatBytes(UInt64(available))) available")
        if needed > available && !options.force {
            throw OptionError("not enough disk space under \(options.directory): about \(formatBytes(UInt64(needed))) needed, \(formatBytes(UInt64(available))) available (fewer --engines, --skip compaction, or --force)")
        }
    }
}

/// The whole file, read to its end (a /proc file reports size 0, and Foundation stops early).
func readWholeFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var data = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        data.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: data, as: UTF8.self)
}
