import CLMDB
import CSQLite
import Foundation
import ScrollbackWorkload

// The peers' library versions and LMDB's map size.

extension Benchmark {
    var libraryVersions: String {
        "SQLite \(String(cString: sqlite3_libversion())), LMDB \(lmdbVersion), RocksDB \(rocksDBVersion)"
    }

    var lmdbVersion: String { String(cString: mdb_version(nil, nil, nil)).replacingOccurrences(of: "LMDB ", with: "") }

    /// From the mapped shared library's file name (librocksdb.so.7.8.3): the C API has no
    /// version call.
    var rocksDBVersion: String {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return "?" }
        for line in maps.split(separator: "\n") {
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
}
