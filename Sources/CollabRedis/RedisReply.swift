// Replies and errors. A RedisReply is a Swift copy of hiredis' redisReply tree.
import CHiredis

public enum RedisReply: Sendable, Equatable, CustomStringConvertible {
    case status(String)
    /// An error reply nested in an array (EXEC). A top-level error reply arrives as
    /// `RedisError.reply`.
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case array([RedisReply])
    case null

    /// Bulk or status text (bulk bytes decoded as UTF-8, invalid sequences repaired).
    public var string: String? {
        switch self {
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        default: return nil
        }
    }

    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let b): return b
        case .status(let s): return Array(s.utf8)
        default: return nil
        }
    }

    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool { self == .null }

    public var description: String {
        switch self {
        case .status(let s): return "+\(s)"
        case .error(let s): return "-\(s)"
        case .integer(let i): return ":\(i)"
        case .bulk(let b): return String(decoding: b, as: UTF8.self).debugDescription
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .null: return "(nil)"
        }
    }

    init(_ r: UnsafePointer<redisReply>) {
        let reply = r.pointee
        func text() -> String {
            guard let str = reply.str else { return "" }
            return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
        }
        switch reply.type {
        case REDIS_REPLY_STATUS: self = .status(text())
        case REDIS_REPLY_ERROR: self = .error(text())
        case REDIS_REPLY_INTEGER: self = .integer(Int64(reply.integer))
        case REDIS_REPLY_STRING:
            guard let str = reply.str else { self = .bulk([]); return }
            self = .bulk(Array(UnsafeRawBufferPointer(start: str, count: reply.len)))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(reply.elements)
            for i in 0..<reply.elements {
                if let e = reply.element[i] { items.append(RedisReply(e)) } else { items.append(.null) }
            }
            self = .array(items)
        default: self = .null
        }
    }
}

public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered with an error reply (`ERR ...`, `NOSCRIPT ...`, `WRONGTYPE ...`).
    case reply(String)
    /// No reply within the command's timeout. The connection stays usable; the late reply is
    /// discarded.
    case timeout
    /// There is no connection (waiting to reconnect); the command was not sent.
    case notConnected
    /// The connection (or the attempt to make one) ended; a command in flight may or may not have
    /// been executed by the server.
    case disconnected(String)
    /// AUTH or SELECT after connecting failed.
    case handshake(String)
    /// `close()` was called.
    case closed

    public var description: String {
        switch self {
        case .reply(let m): return m
        case .timeout: return "Redis command timed out"
        case .notConnected: return "not connected to Redis"
        case .disconnected(let m): return "Redis connection lost: \(m)"
        case .handshake(let m): return "Redis handshake failed: \(m)"
        case .closed: return "Redis connection closed"
        }
    }

    /// The error code of a reply error: "NOSCRIPT", "ERR", "WRONGTYPE" ...
    public var replyCode: String? {
        guard case .reply(let m) = self else { return nil }
        return m.split(separator: " ", maxSplits: 1).first.map(String.init)
    }
}
