import Scrollback
import ScrollbackJSON

/// An error result of the `exec` contract: `{"ok":false,"error":{"code":…,"message":…}}`.
struct RequestError: Error, Equatable, CustomStringConvertible {
    /// One of the contract's codes.
    enum Code: String, Sendable, CaseIterable {
        case invalidRequest, invalidArgument, notFound, invalidCursor, corrupted, io
        /// An append of an id a live message of another conversation has.
        case idConflict
        /// A write on a store `exec --read-only` serves.
        case readOnly
        /// A change position older than the log the store keeps (`watch --from`).
        case positionExpired
        /// Another writer has the store open (not an answer of `exec`, which then cannot
        /// start; listed for completeness of the mapping).
        case storeLocked
    }

    var code: Code
    var message: String

    init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    var description: String { "\(code.rawValue): \(message)" }

    static func invalidRequest(_ message: String) -> RequestError { RequestError(code: .invalidRequest, message: message) }
    static func invalidArgument(_ message: String) -> RequestError { RequestError(code: .invalidArgument, message: message) }

    /// Maps an error thrown by the store onto the contract's codes:
    /// invalidArgument, limitExceeded → invalidArgument; notFound → notFound; invalidCursor →
    /// invalidCursor; idConflict → idConflict; corrupted, unsupportedVersion, notAStore → corrupted; readOnly →
    /// readOnly; storeLocked → storeLocked; positionExpired → positionExpired; io, refusesWrites, closed and anything unexpected
    /// → io.
    init(mapping error: any Error) {
        if let request = error as? RequestError {
            self = request
            return
        }
        guard let error = error as? ScrollbackError else {
            self.init(code: .io, message: String(describing: error))
            return
        }
        let code: Code
        switch error {
        case .invalidArgument, .limitExceeded: code = .invalidArgument
        case .notFound: code = .notFound
        case .invalidCursor: code = .invalidCursor
        case .idConflict: code = .idConflict
        case .corrupted, .unsupportedVersion, .notAStore: code = .corrupted
        case .io, .refusesWrites, .closed: code = .io
        case .readOnly: code = .readOnly
        case .storeLocked: code = .storeLocked
        case .positionExpired: code = .positionExpired
        }
        self.init(code: code, message: error.description)
    }

    /// The contract's error line (without the newline).
    var jsonLine: String {
        var w = JSONWriter()
        w.raw("{\"ok\":false,\"error\":{\"code\":")
        w.string(code.rawValue)
        w.raw(",\"message\":")
        w.string(message)
        w.raw("}}")
        return w.text
    }
}

/// Typed access to the members of a request object, throwing the contract's errors:
/// a missing member or one of the wrong JSON type is `invalidRequest`; a value of the right
/// type outside what the operation accepts (an unknown kind or order, an integer beyond
/// 64 bits) is `invalidArgument`.
struct Fields {
    let object: JSONObject
    /// Used in messages: `op "append": `.
    let context: String

    init(_ object: JSONObject, context: String) {
        self.object = object
        self.context = context
    }

    private func missing(_ key: String) -> RequestError {
        .invalidRequest("\(context)missing member \"\(key)\"")
    }

    private func wrongType(_ key: String, _ expected: String, _ value: JSONValue) -> RequestError {
        .invalidRequest("\(context)member \"\(key)\" must be \(expected), not \(value.typeName)")
    }

    func has(_ key: String) -> Bool { object[key] != nil }

    func string(_ key: String) throws(RequestError) -> String {
        guard let value = object[key] else { throw missing(key) }
        guard case .string(let s) = value else { throw wrongType(key, "a string", value) }
        return s
    }

    /// nil when absent or null.
    func optionalString(_ key: String) throws(RequestError) -> String? {
        guard let value = object[key] else { return nil }
        switch value {
        case .null: return nil
        case .string(let s): return s
        default: throw wrongType(key, "a string or null", value)
        }
    }

    func integer(_ key: String) throws(RequestError) -> Int64 {
        guard let value = object[key] else { throw missing(key) }
        return try Fields.integer(value, name: key, context: context)
    }

    func optionalInteger(_ key: String) throws(RequestError) -> Int64? {
        guard let value = object[key] else { return nil }
        if case .null = value { return nil }
        return try Fields.integer(value, name: key, context: context)
    }

    static func integer(_ value: JSONValue, name: String, context: String) throws(RequestError) -> Int64 {
        guard case .number(let text) = value else {
            throw .invalidRequest("\(context)member \"\(name)\" must be an integer, not \(value.typeName)")
        }
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            throw .invalidRequest("\(context)member \"\(name)\" must be an integer, not \(text)")
        }
        guard let n = Int64(text) else {
            throw .invalidArgument("\(context)member \"\(name)\" is out of range: \(text)")
        }
        return n
    }

    /// An integer that must also fit `Int` (limits, offsets).
    func int(_ key: String) throws(RequestError) -> Int {
        let n = try integer(key)
        guard let value = Int(exactly: n) else { throw .invalidArgument("\(context)member \"\(key)\" is out of range: \(n)") }
        return value
    }

    func optionalInt(_ key: String) throws(RequestError) -> Int? {
        guard let n = try optionalInteger(key) else { return nil }
        guard let value = Int(exactly: n) else { throw .invalidArgument("\(context)member \"\(key)\" is out of range: \(n)") }
        return value
    }

    func stringArray(_ key: String) throws(RequestError) -> [String] {
        guard let value = object[key] else { throw missing(key) }
        guard case .array(let elements) = value else { throw wrongType(key, "an array of strings", value) }
        var result: [String] = []
        result.reserveCapacity(elements.count)
        for (i, element) in elements.enumerated() {
            guard case .string(let s) = element else {
                throw .invalidRequest("\(context)element \(i) of \"\(key)\" must be a string, not \(element.typeName)")
            }
            result.append(s)
        }
        return result
    }

    func order(_ key: String) throws(RequestError) -> Order {
        let text = try string(key)
        switch text {
        case "newestFirst": return .newestFirst
        case "oldestFirst": return .oldestFirst
        default: throw .invalidArgument("\(context)member \"\(key)\" must be \"newestFirst\" or \"oldestFirst\", not \"\(text)\"")
        }
    }

    /// The message members of an append, read by the one message codec (`edited` is
    /// output-only and ignored here).
    func message() throws(RequestError) -> Message {
        do {
            return try MessageJSON.decode(object, .request).message
        } catch {
            let message = context + error.description
            throw error.kind == .invalidValue ? .invalidArgument(message) : .invalidRequest(message)
        }
    }
}
