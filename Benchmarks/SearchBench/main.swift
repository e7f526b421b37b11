// SearchBench: in-process latency of search requests against an existing store.
//
//   swift build -c release --product SearchBench
//   .build/release/SearchBench STORE REQUESTS.jsonl [ROUNDS]
//
// REQUESTS.jsonl holds `exec` search requests, one per line
// (`{"op":"search","query":Q,"conversations":[…],"limit":N}`; no "conversations": the whole
// store). The store is opened read-only; each request runs ROUNDS times (default 5), the
// best time of each is kept, and the p50 / p90 / p99 / mean of those are printed, with a
// digest of every answer's message ids so that two builds can be checked to agree.
// SEARCH_SCANNED_PER_SEEK and SEARCH_DECODES_PER_PROBE override the planner's constants.
import Foundation
import Scrollback

func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write("usage: SearchBench STORE REQUESTS.jsonl [ROUNDS]\n".data(using: .utf8)!)
    exit(2)
}
let rounds = arguments.count > 3 ? max(1, Int(arguments[3]) ?? 5) : 5
// The planner's constants, for tuning: SEARCH_SCANNED_PER_SEEK, SEARCH_DECODES_PER_PROBE.
var options = StoreOptions()
options.cacheBytes = 256 << 20   // as make bench (--cache-mb 256)
if let v = ProcessInfo.processInfo.environment["SEARCH_SCANNED_PER_SEEK"].flatMap(Int.init) { options.searchPostingsScannedPerSeek = v }
if let v = ProcessInfo.processInfo.environment["SEARCH_DECODES_PER_PROBE"].flatMap(Double.init) { options.searchDecodesPerProbe = v }
let store = try MessageStore(readingAt: arguments[1], options: options)
var requests: [(query: String, scope: SearchScope, limit: Int)] = []
for line in try String(contentsOfFile: arguments[2], encoding: .utf8).split(separator: "\n") {
    guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let query = object["query"] as? String else { continue }
    let scope: SearchScope = (object["conversations"] as? [String]).map { .conversations($0) } ?? .wholeStore
    requests.append((query, scope, object["limit"] as? Int ?? 20))
}
var best = Array(repeating: UInt64.max, count: requests.count)
var digest: UInt64 = 14_695_981_039_346_656_037
for round in 0..<rounds {
    for (i, request) in requests.enumerated() {
        let start = nowNanoseconds()
        let page = try store.search(request.query, in: request.scope, limit: request.limit)
        best[i] = min(best[i], nowNanoseconds() - start)
        if round == 0 {
            for message in page.messages {
                for byte in message.id.utf8 { digest = (digest ^ UInt64(byte)) &* 1_099_511_628_211 }
            }
            digest = (digest ^ 0xFF) &* 1_099_511_628_211
        }
    }
}
if let path = ProcessInfo.processInfo.environment["SEARCH_TIMES"] {
    try best.map { String($0) }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
}
let sorted = best.sorted()
func at(_ q: Double) -> String { String(format: "%.1f", Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000) }
let mean = Double(sorted.reduce(0, +)) / Double(max(1, sorted.count)) / 1000
print("\(requests.count) requests, best of \(rounds): p50 \(at(0.5)) µs, p90 \(at(0.9)), p99 \(at(0.99)), mean "
      + String(format: "%.1f", mean) + String(format: "; answers %016llx", digest))
