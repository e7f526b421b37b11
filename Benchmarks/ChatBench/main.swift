import Foundation
import ScrollbackWorkload

// scrollback-bench: the SQLite comparison on the reference chat workload (issue 4).
// See Benchmarks/README.md and `scrollback-bench --help`.
let status: Int32
do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    status = try Benchmark(options: options).run()
} catch {
    writeStandardError("scrollback-bench: \(error)\n")
    status = 1
}
exit(status)
