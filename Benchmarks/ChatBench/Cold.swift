import Foundation
import Scrollback
import ScrollbackWorkload

// Cold reads: each engine is closed, every file of its store is fsynced and dropped from the
// OS page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`; `mincore` then checks how much stayed
// resident), the engine is reopened (its own cache starts empty), and one pass of queries
// runs: latest 20 of every sampled conversation; then the same again (evict, reopen) for a
// keyset walk of the first pages of the sampled heavy rooms. Bytes read per query are the
// process's `read_bytes` (/proc/self/io: bytes this process caused to be fetched from the
// block device, mmap faults included) before and after each call.

struct ColdPass {
    var latency: LatencySummary
    var bytes: [UInt64]
    var queries: Int

    var meanBytes: Double { bytes.isEmpty ? 0 : Double(bytes.reduce(0, +)) / Double(bytes.count) }
    var p50Bytes: UInt64 { bytes.isEmpty ? 0 : bytes.sorted()[(bytes.count - 1) / 2] }
    var json: [String: Any] {
        ["latency": latency.json, "queries": queries, "mean_bytes_read": meanBytes, "p50_bytes_read": p50Bytes,
         "total_bytes_read": bytes.reduce(0, +)]
    }
}

struct ColdFigure {
    var engine: String
    var latest: ColdPass
    var keyset: ColdPass
    /// Bytes of the store's files, and how many stayed in the page cache after eviction.
    var fileBytes: UInt64
    var residentAfterEviction: UInt64
    /// Bytes read by the two reopens (before the first query).
    var reopenBytes: UInt64

    var json: [String: Any] {
        ["latest20": latest.json, "keyset": keyset.json, "file_bytes": fileBytes,
         "resident_after_eviction_bytes": residentAfterEviction, "reopen_bytes_read": reopenBytes]
    }
}

/// `read_bytes` of /proc/self/io: bytes really read from storage on behalf of this process.
func processReadBytes() -> UInt64 {
    guard let fd = Optional(open("/proc/self/io", O_RDONLY)), fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0 else { return 0 }
    let text = String(decoding: buffer[0..<n], as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix("read_bytes:") {
        return UInt64(line.dropFirst("read_bytes:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return 0
}

/// Every regular file under `paths` (files or directories).
func regularFiles(_ paths: [String]) -> [String] {
    var out: [String] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
        if !isDirectory.boolValue {
            out.append(path)
            continue
        }
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { continue }
        while let name = enumerator.nextObject() as? String {
            let full = path + "/" + name
            if (try? FileManager.default.attributesOfItem(atPath: full))?[.type] as? FileAttributeType == .typeRegular {
                out.append(full)
            }
        }
    }
    return out
}

/// fsync + POSIX_FADV_DONTNEED on every file; returns (file bytes, bytes still resident).
func evictFromPageCache(_ paths: [String]) -> (bytes: UInt64, resident: UInt64) {
    var total: UInt64 = 0
    var resident: UInt64 = 0
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    for file in regularFiles(paths) {
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { continue }
        defer { close(fd) }
        fsync(fd)
        posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { continue }
        let size = Int(st.st_size)
        total += UInt64(size)
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { continue }
        let pages = (size + page - 1) / page
        var vector = [UInt8](repeating: 0, count: pages)
        if mincore(map, size, &vector) == 0 {
            resident += UInt64(vector.reduce(0) { $0 + Int($1 & 1) }) * UInt64(page)
        }
        munmap(map, size)
    }
    return (total, resident)
}

extension Benchmark {
    func runCold(_ sample: Sample) throws {
        let pages = 10
        let rooms = sample.heavy
        let bar = ProgressBar("cold reads", total: engines.count * (sample.all.count + rooms.count * pages))
        var done = 0
        var latestResults: [[QueryResult]] = []
        var keysetResults: [[QueryResult]] = []
        for engine in engines {
            func evictAndReopen() throws -> (UInt64, UInt64, UInt64) {
                try engine.close()
                let (bytes, resident) = evictFromPageCache(engine.storePaths)
                let before = processReadBytes()
                try engine.reopen()
                return (bytes, resident, processReadBytes() - before)
            }
            let first = try evictAndReopen()
            let fileBytes = first.0
            var resident = first.1
            var reopenBytes = first.2
            var times: [UInt64] = []
            var bytes: [UInt64] = []
            var results: [QueryResult] = []
            for c in sample.all {
                let io = processReadBytes()
                let t0 = nowNanoseconds()
                let r = try engine.latest(c, limit: 20)
                times.append(nowNanoseconds() - t0)
                bytes.append(processReadBytes() - io)
                results.append(.messages(r))
                done += 1
                bar.update(done)
            }
            let latest = ColdPass(latency: LatencySummary(nanoseconds: times), bytes: bytes, queries: times.count)
            latestResults.append(results)

            let second = try evictAndReopen()
            resident = max(resident, second.1)
            reopenBytes += second.2
            times = []
            bytes = []
            results = []
            for room in rooms {
                var cursor: KeysetCursor? = nil
                for _ in 0..<pages {
                    let io = processReadBytes()
                    let t0 = nowNanoseconds()
                    let page = try engine.keysetPage(room, after: cursor, limit: 20)
                    let t1 = nowNanoseconds()
                    let read = processReadBytes() - io
                    // (SQLite's cursor cannot tell that a full last page was the last one.)
                    if page.messages.isEmpty { break }
                    times.append(t1 - t0)
                    bytes.append(read)
                    results.append(.messages(page.messages))
                    cursor = page.next
                    done += 1
                    bar.update(done)
                    if cursor == nil { break }
                }
            }
            keysetResults.append(results)
            let keyset = ColdPass(latency: LatencySummary(nanoseconds: times), bytes: bytes, queries: times.count)
            cold.append(ColdFigure(engine: engine.name, latest: latest, keyset: keyset, fileBytes: fileBytes,
                                   residentAfterEviction: resident, reopenBytes: reopenBytes))
        }
        bar.finish()
        for (i, c) in sample.all.enumerated() { compare("cold latest 20 of \(c)", latestResults.map { $0[i] }) }
        let n = keysetResults.map(\.count).min() ?? 0
        for i in 0..<n { compare("cold keyset page \(i)", keysetResults.map { $0[i] }) }
        if keysetResults.contains(where: { $0.count != n }) {
            mismatches.append("cold keyset walk: engines returned different numbers of pages \(keysetResults.map(\.count))")
        }
        for f in cold {
            log("  \(f.engine): latest 20 p50 \(formatMicroseconds(f.latest.latency.p50)) p99 \(formatMicroseconds(f.latest.latency.p99)), \(formatBytes(UInt64(f.latest.meanBytes))) read/query; keyset p50 \(formatMicroseconds(f.keyset.latency.p50)) p99 \(formatMicroseconds(f.keyset.latency.p99)), \(formatBytes(UInt64(f.keyset.meanBytes))) read/query; \(formatBytes(f.residentAfterEviction)) of \(formatBytes(f.fileBytes)) resident after eviction")
        }
    }
}
