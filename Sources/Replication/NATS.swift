import CNATS
import Foundation

/// Why replication stopped or could not start: the NATS client's status and text, or a
/// condition of the replication protocol (README, "Replication"). `description` is the sentence
/// a tool prints.
public struct ReplicationError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// An option is out of range (the text says which).
        case invalidArgument
        /// The NATS server or cluster could not be reached, or a request timed out.
        case unavailable
        /// JetStream refused a request (its error code, e.g. 10071 for a publish whose expected
        /// last sequence did not match: another leader published first).
        case refused(code: Int)
        /// Another store leads the stream (this one may not publish, or must resync).
        case notLeader
        /// The stream no longer holds the changes this store needs (it fell out of the
        /// stream's retention): restore a backup of a replica, then follow again.
        case behindRetention
        /// This store's state does not fit the stream (e.g. it has data the stream never
        /// carried, or it is another stream's replica).
        case divergent
        /// A stream message this build cannot read.
        case malformed
        /// A change is larger than the NATS server accepts (`max_payload`, default 1 MiB):
        /// raise the server's limit or lower `StoreOptions.maxBodyBytes`. The leader stops at it.
        case changeTooLarge
        /// The store refused a change (its own error is in the text).
        case store
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    static func status(_ status: natsStatus, _ what: String, code: jsErrCode = jsErrCode(rawValue: 0)) -> ReplicationError {
        var text = String(cString: natsStatus_GetText(status))
        var last: natsStatus = NATS_OK
        if let detail = nats_GetLastError(&last), detail.pointee != 0 {
            let lastText = String(cString: detail)
            if lastText != text { text += ": " + lastText }
        }
        if code.rawValue != 0 { return ReplicationError(.refused(code: Int(code.rawValue)), "\(what): \(text) (JetStream error \(code.rawValue))") }
        return ReplicationError(.unavailable, "\(what): \(text)")
    }
}

/// One NATS connection and its JetStream context. Thread-safe as the C client is (a
/// connection and a context may be used from several threads).
final class NATSConnection: @unchecked Sendable {
    let connection: OpaquePointer
    let jetStream: OpaquePointer
    let servers: String

    /// Connects to `servers` (comma-separated `nats://host:port` URLs; the client reconnects
    /// to any of them forever). `ackHandler`: the context's asynchronous publish callback.
    init(servers: String, name: String, requestTimeoutMilliseconds: Int64,
         ackHandler: jsPubAckHandler? = nil, ackClosure: UnsafeMutableRawPointer? = nil, maxPending: Int64 = 4096) throws {
        self.servers = servers
        var options: OpaquePointer? = nil
        var status = natsOptions_Create(&options)
        guard status == NATS_OK, let options else { throw ReplicationError.status(status, "creating NATS options") }
        defer { natsOptions_Destroy(options) }
        let urls = servers.split(separator: ",").map { strdup(String($0)) }
        defer { for url in urls { free(url) } }
        var pointers: [UnsafePointer<CChar>?] = urls.map { UnsafePointer($0) }
        status = pointers.withUnsafeMutableBufferPointer { natsOptions_SetServers(options, $0.baseAddress, Int32($0.count)) }
        guard status == NATS_OK else { throw ReplicationError.status(status, "NATS servers \(servers)") }
        natsOptions_SetName(options, name)
        natsOptions_SetMaxReconnect(options, -1)
        natsOptions_SetReconnectWait(options, 250)
        natsOptions_SetTimeout(options, 2_000)
        var connection: OpaquePointer? = nil
        status = natsConnection_Connect(&connection, options)
        guard status == NATS_OK, let connection else { throw ReplicationError.status(status, "connecting to \(servers)") }
        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = requestTimeoutMilliseconds
        jsOptions.PublishAsync.MaxPending = maxPending
        jsOptions.PublishAsync.AckHandler = ackHandler
        jsOptions.PublishAsync.AckHandlerClosure = ackClosure
        jsOptions.PublishAsync.StallWait = requestTimeoutMilliseconds
        var context: OpaquePointer? = nil
        status = natsConnection_JetStream(&context, connection, &jsOptions)
        guard status == NATS_OK, let context else {
            natsConnection_Destroy(connection)
            throw ReplicationError.status(status, "opening JetStream on \(servers)")
        }
        self.connection = connection
        self.jetStream = context
    }

    deinit {
        jsCtx_Destroy(jetStream)
        natsConnection_Destroy(connection)
    }

    /// Closes the connection (pending publishes are abandoned).
    func close() { natsConnection_Close(connection) }

    /// The stream's first and last sequence and message count; nil when it does not exist.
    func streamState(_ stream: String) throws -> (first: UInt64, last: UInt64, messages: UInt64, bytes: UInt64)? {
        var info: UnsafeMutablePointer<jsStreamInfo>? = nil
        var code = jsErrCode(rawValue: 0)
        let status = js_GetStreamInfo(&info, jetStream, stream, nil, &code)
        if status == NATS_NOT_FOUND || code == JSStreamNotFoundErr { return nil }
        guard status == NATS_OK, let info else { throw ReplicationError.status(status, "reading stream \(stream)", code: code) }
        defer { jsStreamInfo_Destroy(info) }
        let state = info.pointee.State
        return (state.FirstSeq, state.LastSeq, state.Msgs, state.Bytes)
    }

    /// Creates the stream (subjects `<stream>.>`, file storage, `replicas` copies) unless it exists.
    func ensureStream(_ stream: String, replicas: Int, maxBytes: Int64, maxAgeSeconds: Int64) throws {
        if try streamState(stream) != nil { return }
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        let name = strdup(stream)
        let subject = strdup("\(stream).>")
        defer { free(name); free(subject) }
        var subjects: [UnsafePointer<CChar>?] = [UnsafePointer(subject)]
        var code = jsErrCode(rawValue: 0)
        let status = subjects.withUnsafeMutableBufferPointer { list -> natsStatus in
            config.Name = UnsafePointer(name)
            config.Subjects = list.baseAddress
            config.SubjectsLen = 1
            config.Storage = js_FileStorage
            config.Replicas = Int64(replicas)
            config.MaxBytes = maxBytes
            config.MaxAge = maxAgeSeconds > 0 ? maxAgeSeconds * 1_000_000_000 : 0
            config.Discard = js_DiscardOld
            var info: UnsafeMutablePointer<jsStreamInfo>? = nil
            let status = js_AddStream(&info, jetStream, &config, nil, &code)
            if let info { jsStreamInfo_Destroy(info) }
            return status
        }
        // Another process may have created it meanwhile: that is fine.
        if status != NATS_OK, try streamState(stream) == nil {
            throw ReplicationError.status(status, "creating stream \(stream)", code: code)
        }
    }

    /// The stream's message `sequence`, or the last one on `subject` (nil when there is none).
    func message(_ stream: String, sequence: UInt64? = nil, lastOn subject: String? = nil) throws -> StreamMessage? {
        var message: OpaquePointer? = nil
        var code = jsErrCode(rawValue: 0)
        let status: natsStatus
        if let subject {
            status = js_GetLastMsg(&message, jetStream, stream, subject, nil, &code)
        } else {
            status = js_GetMsg(&message, jetStream, stream, sequence ?? 0, nil, &code)
        }
        if status == NATS_NOT_FOUND || code == JSNoMessageFoundErr { return nil }
        guard status == NATS_OK, let message else {
            throw ReplicationError.status(status, "reading a message of stream \(stream)", code: code)
        }
        defer { natsMsg_Destroy(message) }
        return StreamMessage(message, sequence: sequence)
    }
}

/// A stream message copied out of the client's buffer: subject, headers of the protocol, data,
/// sequence and time.
struct StreamMessage: Sendable {
    var subject: String
    var leader: String?
    var position: String?
    /// Whether the message is its write's last change (header `Scrollback-End`).
    var endsWrite: Bool
    /// Its `Nats-Msg-Id`.
    var messageID: String?
    var data: [UInt8]
    var sequence: UInt64
    /// Nanoseconds since the epoch when the stream stored it (0 when unknown).
    var timestamp: Int64

    init(_ message: OpaquePointer, sequence known: UInt64? = nil) {
        subject = String(cString: natsMsg_GetSubject(message))
        func header(_ key: String) -> String? {
            var value: UnsafePointer<CChar>? = nil
            guard natsMsgHeader_Get(message, key, &value) == NATS_OK, let value else { return nil }
            return String(cString: value)
        }
        leader = header(ReplicationHeaders.leader)
        position = header(ReplicationHeaders.position)
        endsWrite = header(ReplicationHeaders.end) == "1"
        messageID = header("Nats-Msg-Id")
        let length = Int(natsMsg_GetDataLength(message))
        if length > 0, let bytes = natsMsg_GetData(message) {
            data = bytes.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
        } else {
            data = []
        }
        var meta: UnsafeMutablePointer<jsMsgMetaData>? = nil
        if natsMsg_GetMetaData(&meta, message) == NATS_OK, let meta {
            sequence = meta.pointee.Sequence.Stream
            timestamp = meta.pointee.Timestamp
            jsMsgMetaData_Destroy(meta)
        } else {
            sequence = known ?? natsMsg_GetSequence(message)
            timestamp = natsMsg_GetTime(message)
        }
    }
}
