#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-line progress bar on standard error: `label [#####.....]  45%  440,000/977,561`.
/// Redraws at most every 1% or when done; on a terminal it rewrites the line with `\r`,
/// otherwise (logs, CI) it prints one line at 0%, 25%, 50%, 75% and 100%.
/// Not thread-safe.
package final class ProgressBar {
    package let label: String
    package let total: Int
    private var lastPermille = -1
    private let isTerminal: Bool
    private let enabled: Bool

    package init(_ label: String, total: Int, enabled: Bool = true) {
        self.label = label
        self.total = max(1, total)
        self.isTerminal = isatty(2) != 0
        self.enabled = enabled
    }

    /// Shows `done` of `total`.
    package func update(_ done: Int) {
        guard enabled else { return }
        let permille = min(1000, done * 1000 / total)
        if isTerminal {
            guard permille / 10 != lastPermille / 10 || (done >= total && lastPermille != 1000) else { return }
        } else {
            guard permille / 250 != lastPermille / 250 || lastPermille < 0 else { return }
        }
        lastPermille = permille
        let width = 30
        let filled = permille * width / 1000
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let text = "\(label) [\(bar)] \(String(permille / 10).leftPadded(3))%  \(grouped(min(done, total)))/\(grouped(total))"
        if isTerminal {
            writeStandardError("\r" + text + (done >= total ? "\n" : ""))
        } else {
            writeStandardError(text + "\n")
        }
    }

    /// Marks the bar finished (prints the final state once).
    package func finish() {
        guard enabled else { return }
        if lastPermille != 1000 { update(total) }
    }
}

extension String {
    package func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }

    package func rightPadded(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Writes `text` to file descriptor 2 (unbuffered).
package func writeStandardError(_ text: String) {
    var copy = text
    copy.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
