import Scrollback

/// One line of the validator's report: a figure of `workload.md`'s dataset table, the
/// measured value, the rule and whether it holds.
package struct ValidationFigure: Sendable, Hashable {
    package var name: String
    /// The reference dataset's figure, as `workload.md` gives it.
    package var reference: String
    package var value: String
    package var rule: String
    package var passed: Bool
    /// The measured number (for JSON output), when the figure is one number.
    package var number: Double?
}

/// The validator's verdict.
package struct ValidationReport: Sendable, Hashable {
    package var figures: [ValidationFigure]
    package var passed: Bool { figures.allSatisfy(\.passed) }
    package var failures: [ValidationFigure] { figures.filter { !$0.passed } }

    /// A table, one figure a line, with PASS/FAIL, and a final verdict line.
    package func render() -> String {
        let nameWidth = max(6, figures.map(\.name.count).max() ?? 0)
        let valueWidth = max(5, figures.map(\.value.count).max() ?? 0)
        let referenceWidth = max(9, figures.map(\.reference.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = "       " + pad("figure", nameWidth) + "  " + pad("value", valueWidth) + "  " + pad("reference", referenceWidth)
            + "  rule\n"
        for f in figures {
            out += (f.passed ? "  PASS " : "  FAIL ") + pad(f.name, nameWidth)
            out += "  " + pad(f.value, valueWidth) + "  " + pad(f.reference, referenceWidth) + "  " + f.rule + "\n"
        }
        out += passed
            ? "  dataset verdict: PASS (\(figures.count) figures)\n"
            : "  dataset verdict: FAIL (\(failures.map(\.name).joined(separator: ", ")))\n"
        return out
    }
}

/// Checks a message stream against the rules of `workload.md`'s dataset table.
///
/// Feed it every message (`observe`) and ask for `report()`. Memory O(conversations + users)
/// plus one bit per message id of the `synmsg{N}` form (ids of another form are kept in a
/// set to find duplicates), so it validates the large bands too.
package struct DatasetValidator {
    package let catalog: DatasetCatalog
    private var perConversation: [Int32]
    private var senders: [Bool]
    private var hourly = [Int](repeating: 0, count: 24)
    private var kinds = [Int](repeating: 0, count: 7)
    private var messages = 0
    private var minTime = Int64.max
    private var maxTime = Int64.min
    private var minBody = Int.max
    private var maxBody = Int.min
    private var bodiesOutOfRange = 0
    private var bodiesWithForeignWords = 0
    private var orphanConversations = 0
    private var orphanSenders = 0
    private var nullKeys = 0
    private var badMessageIDs = 0
    private var duplicateIDs = 0
    private var idBits: [UInt64]
    private var otherIDs: Set<String> = []
    private var outOfSpan = 0
    private let dictionary: Set<[UInt8]>

    package init(catalog: DatasetCatalog) {
        self.catalog = catalog
        perConversation = [Int32](repeating: 0, count: catalog.conversationCount)
        senders = [Bool](repeating: false, count: catalog.userCount)
        idBits = [UInt64](repeating: 0, count: catalog.configuration.messages / 64 + 1)
        dictionary = Set(DatasetGenerator.dictionary.map { Array($0.utf8) })
    }

    package init(configuration: DatasetConfiguration) {
        self.init(catalog: DatasetCatalog(configuration))
    }

    package mutating func observe(_ message: Message) {
        messages += 1
        if message.id.isEmpty || message.conversation.isEmpty || message.sender.isEmpty { nullKeys += 1 }
        if let c = DatasetCatalog.index(of: message.conversation, prefix: "synconv", limit: catalog.conversationCount) {
            perConversation[c] &+= 1
        } else {
            orphanConversations += 1
        }
        if let u = DatasetCatalog.index(of: message.sender, prefix: "synuser", limit: catalog.userCount) {
            senders[u] = true
        } else {
            orphanSenders += 1
        }
        if let n = DatasetCatalog.index(of: message.id, prefix: "synmsg", limit: idBits.count * 64 - 1) {
            let word = n >> 6
            let bit = UInt64(1) << UInt64(n & 63)
            if idBits[word] & bit != 0 { duplicateIDs += 1 }
            idBits[word] |= bit
        } else {
            badMessageIDs += 1
            if !otherIDs.insert(message.id).inserted { duplicateIDs += 1 }
        }
        let t = message.createdAt
        minTime = min(minTime, t)
        maxTime = max(maxTime, t)
        if t < catalog.configuration.startMillis || t >= catalog.configuration.endMillis { outOfSpan += 1 }
        let hour = Int(((t / 3_600_000) % 24 + 24) % 24)
        hourly[hour] += 1
        kinds[Int(message.kind.rawValue) % 7] += 1

        var length = 0
        var foreign = false
        var word: [UInt8] = []
        word.reserveCapacity(16)
        for byte in message.body.utf8 {
            length += 1
            if byte == UInt8(ascii: " ") {
                if !word.isEmpty, !dictionary.contains(word) { foreign = true }
                word.removeAll(keepingCapacity: true)
            } else {
                word.append(byte)
            }
        }
        if !word.isEmpty, !dictionary.contains(word) { foreign = true }
        if foreign { bodiesWithForeignWords += 1 }
        minBody = min(minBody, length)
        maxBody = max(maxBody, length)
        if length < 20 || length > 200 { bodiesOutOfRange += 1 }
    }

    /// Messages per conversation so far (index = conversation number − 1).
    package var messagesPerConversation: [Int32] { perConversation }

    package func report() -> ValidationReport {
        let configuration = catalog.configuration
        var figures: [ValidationFigure] = []
        func add(_ name: String, _ reference: String, _ value: String, _ rule: String, _ ok: Bool, _ number: Double? = nil) {
            figures.append(ValidationFigure(name: name, reference: reference, value: value, rule: rule, passed: ok, number: number))
        }
        func percent(_ x: Double) -> String { String(format1(x * 100)) + "%" }

        let usersSeen = senders.reduce(0) { $0 + ($1 ? 1 : 0) }
        add("users", "15,000", "\(grouped(configuration.users)) (\(grouped(usersSeen)) sent)",
            "configurable; every sender is one of them", orphanSenders == 0 && usersSeen > 0, Double(configuration.users))
        let active = perConversation.filter { $0 > 0 }.map { Int($0) }.sorted()
        add("conversations", "24,000", "\(grouped(active.count)) of \(grouped(configuration.conversations))",
            "configurable; none empty", active.count == configuration.conversations, Double(active.count))
        add("messages", "977,561", grouped(messages), "= configured (\(grouped(configuration.messages)))",
            messages == configuration.messages, Double(messages))
        let spanDays = messages > 0 ? Double(maxTime - minTime) / 86_400_000 : 0
        add("time span", "30 days", "\(format1(spanDays)) days", "within the configured \(configuration.days) days",
            messages > 0 && outOfSpan == 0 && spanDays > Double(configuration.days) * 0.9, spanDays)

        let total = Double(max(1, messages))
        let descending = Array(active.reversed())
        func topShare(_ fraction: Double) -> Double {
            let k = max(1, Int((Double(descending.count) * fraction).rounded()))
            return Double(descending.prefix(k).reduce(0, +)) / total
        }
        let top1 = topShare(0.01)
        let top5 = topShare(0.05)
        add("top 1% of conversations", "35.0%", percent(top1), "≥ 15% (aim 35%)", top1 >= 0.15, top1 * 100)
        add("top 5% of conversations", "44.5%", percent(top5), "≥ 30%", top5 >= 0.30, top5 * 100)
        func percentile(_ p: Double) -> Int {
            guard !active.isEmpty else { return 0 }
            let rank = Int((p * Double(active.count)).rounded(.up))
            return active[min(active.count - 1, max(0, rank - 1))]
        }
        let p50 = percentile(0.50)
        let p99 = percentile(0.99)
        let ratio = p50 > 0 ? Double(p99) / Double(p50) : 0
        add("p99 / p50 messages per conversation", "21.9×", "\(format1(ratio))× (\(p99) / \(p50))", "≥ 10×", ratio >= 10, ratio)
        let largest = active.last ?? 0
        add("largest conversation", "22,412", grouped(largest), "a heavy room of ≥ 10k messages", largest >= 10_000,
            Double(largest))

        var dm = 0
        var group = 0
        for (c, n) in perConversation.enumerated() where n > 0 {
            if catalog.types[c] == .directMessage { dm += 1 } else { group += 1 }
        }
        let typed = Double(max(1, dm + group))
        add("conversation types", "DM ~70%, group ~30%",
            "DM \(percent(Double(dm) / typed)), group \(percent(Double(group) / typed))", "both present",
            dm > 0 && group > 0, Double(dm) / typed * 100)

        let kindNames = ["?", "TEXT", "IMAGE", "FILE", "AUDIO", "VIDEO", "SYSTEM"]
        let kindParts = (1..<7).filter { kinds[$0] > 0 }.map { "\(kindNames[$0]) \(percent(Double(kinds[$0]) / total))" }
        let presentKinds = (1..<7).filter { kinds[$0] > 0 }.count
        add("message types", "TEXT ~85%, IMAGE ~10%, rest", kindParts.joined(separator: ", "), "several present (≥ 3)",
            presentKinds >= 3, Double(kinds[1]) / total * 100)

        let maxHourCount = hourly.max() ?? 0
        let minHourCount = hourly.min() ?? 0
        let peakHour = hourly.firstIndex(of: maxHourCount) ?? 0
        let hourRatio = minHourCount > 0 ? Double(maxHourCount) / Double(minHourCount) : (maxHourCount > 0 ? .infinity : 0)
        let peakOK = [9, 10, 11, 18, 19, 20].contains(peakHour)
        add("time of day", "peaks 9–11 and 18–20 h", "max/min \(format1(hourRatio))×, busiest hour \(peakHour) h",
            "hourly max/min ≥ 1.5×, busiest hour in a peak", hourRatio >= 1.5 && peakOK, hourRatio)

        add("content", "11-word dictionary", messages > 0 ? "\(minBody)–\(maxBody) chars, \(bodiesWithForeignWords) foreign" : "none",
            "20–200 characters, dictionary words only", bodiesOutOfRange == 0 && bodiesWithForeignWords == 0)
        add("ids", "synuser{N}", "\(orphanSenders) bad user ids, \(badMessageIDs) non-synmsg, \(duplicateIDs) duplicate",
            "synuser{N} users, unique message ids", orphanSenders == 0 && duplicateIDs == 0)
        add("integrity", "0 orphans", "\(orphanConversations + orphanSenders) orphans, \(nullKeys) null keys",
            "0 orphans, 0 null keys", orphanConversations == 0 && orphanSenders == 0 && nullKeys == 0,
            Double(orphanConversations + orphanSenders + nullKeys))
        return ValidationReport(figures: figures)
    }
}

/// `1234567` → `1,234,567`.
package func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return value < 0 ? "-" + out : out
}

/// One decimal, no Foundation.
package func format1(_ x: Double) -> String { formatFixed(x, decimals: 1) }

/// `decimals` decimals, no Foundation.
package func formatFixed(_ x: Double, decimals: Int) -> String {
    guard x.isFinite else { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(x) * scale).rounded()
    let integer = Int(scaled / scale)
    let fraction = Int(scaled - Double(integer) * scale)
    var s = (x < 0 && scaled > 0 ? "-" : "") + String(integer)
    if decimals > 0 {
        let f = String(fraction)
        s += "." + String(repeating: "0", count: decimals - f.count) + f
    }
    return s
}
