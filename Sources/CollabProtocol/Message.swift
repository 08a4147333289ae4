import CollabOT

#if canImport(Glibc)
import Glibc
#endif

/// The message types of the wire schema (man/collab-protocol.7). One schema on WebSocket frames,
/// pipes, Redis channels and journals.
public enum MessageType: String, Sendable, CaseIterable {
    // Client to server, and server to client.
    case hello, welcome, op, ack, presence, join, leave, error
    /// A document at a revision (`collab-ot-apply apply --follow`, journals' snapshots).
    case snapshot
    /// The current members of a room, sent after `welcome`.
    case roster
    /// An application's own message, relayed as is.
    case event
    // Convenience lines that collab-join turns into ops or presence.
    case insert, delete, replace, undo, redo, cursor, typing
}

extension MessageType {
    /// Matches the type name's bytes without making a String (the per-line hot path).
    init?(utf8 name: UnsafeBufferPointer<UInt8>) {
        // `op` first: by far the most frequent line.
        if name.count == 2, name[0] == UInt8(ascii: "o"), name[1] == UInt8(ascii: "p") {
            self = .op
            return
        }
        guard let t = MessageType(rawValue: String(decoding: name, as: UTF8.self)) else { return nil }
        self = t
    }
}

/// One message. Every field but `type` is optional; which ones a type uses is in the schema.
/// Fields this version does not know are kept in `extra`, in order, so tools pass them through.
public struct Message: Equatable, Sendable {
    public var type: MessageType
    public var room: String?
    public var user: String?
    public var name: String?
    public var color: String?
    /// One or two letters for an avatar (join, leave, presence, roster members).
    public var initials: String?
    public var client: String?
    public var token: String?
    public var seq: Int?
    public var base: Int?
    public var rev: Int?
    public var since: Int?
    public var op: TextOperation?
    public var doc: String?
    /// Milliseconds since the Unix epoch when the server committed or relayed the message.
    public var ts: Int?
    public var cursor: Selection?
    public var typing: Bool?
    public var status: String?
    public var code: String?
    public var message: String?
    public var fatal: Bool?
    /// In a hello: join to watch only (edit nothing, not listed in rosters), as collab-tap does.
    public var observer: Bool?
    // Convenience-line fields.
    public var pos: Int?
    public var len: Int?
    public var text: String?
    public var anchor: Int?
    public var head: Int?
    /// Members of a `roster`.
    public var members: [Message]?
    /// Unknown fields, in input order.
    public var extra: JSONObject?

    public init(_ type: MessageType) { self.type = type }
}

/// Why a line is not a valid message.
public enum MessageError: Error, Equatable, Sendable, CustomStringConvertible {
    case syntax(JSONSyntaxError)
    case notAnObject
    case missingType
    case unknownType(String)
    case badField(String, String)

    public var description: String {
        switch self {
        case .syntax(let e): return "invalid JSON: \(e)"
        case .notAnObject: return "a message must be a JSON object"
        case .missingType: return "message has no \"type\""
        case .unknownType(let t): return "unknown message type \"\(t)\""
        case let .badField(field, why): return "field \"\(field)\": \(why)"
        }
    }
}

extension MessageError {
    /// Classifies whatever reading a line threw.
    init(decoding error: any Error) {
        switch error {
        case let e as MessageError: self = e
        case let e as JSONSyntaxError: self = .syntax(e)
        case let e as OperationSyntaxError: self = .badField("op", e.description)
        default: self = .badField("?", "\(error)")
        }
    }
}

extension Message {
    /// Decodes one message from a complete JSON text (one NDJSON line, without the newline).
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(MessageError) -> Message {
        var scanner = JSONScanner(bytes)
        do {
            guard scanner.peek() == UInt8(ascii: "{") else {
                if scanner.peek() == nil { throw MessageError.syntax(JSONSyntaxError(reason: "empty line", offset: 0)) }
                _ = try scanner.readValue()
                try scanner.expectEnd()
                throw MessageError.notAnObject
            }
            let m = try read(from: &scanner)
            try scanner.expectEnd()
            return m
        } catch {
            throw MessageError(decoding: error)
        }
    }

    public static func decode(_ text: String) throws(MessageError) -> Message {
        var text = text
        let result: Result<Message, MessageError> = text.withUTF8 { buf in
            do throws(MessageError) { return .success(try decode(buf)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// The fields this version knows. Matching key bytes against this list (see `Field.init`)
    /// avoids building a String per key.
    enum Field {
        case type, room, user, name, color, initials, client, token, doc, status, code, message, text
        case seq, base, rev, since, ts, pos, len, anchor, head, typing, fatal, observer, op, cursor, members

        init?(_ key: UnsafeBufferPointer<UInt8>) {
            @inline(__always) func eq(_ name: StaticString) -> Bool {
                memcmp(name.utf8Start, key.baseAddress!, key.count) == 0
            }
            switch key.count {
            case 2:
                if eq("op") { self = .op } else if eq("ts") { self = .ts } else { return nil }
            case 3:
                if eq("rev") { self = .rev } else if eq("seq") { self = .seq } else if eq("doc") { self = .doc }
                else if eq("pos") { self = .pos } else if eq("len") { self = .len } else { return nil }
            case 4:
                if eq("type") { self = .type } else if eq("room") { self = .room } else if eq("user") { self = .user }
                else if eq("base") { self = .base } else if eq("name") { self = .name } else if eq("code") { self = .code }
                else if eq("text") { self = .text } else if eq("head") { self = .head } else { return nil }
            case 5:
                if eq("since") { self = .since } else if eq("color") { self = .color } else if eq("token") { self = .token }
                else if eq("fatal") { self = .fatal } else { return nil }
            case 6:
                if eq("client") { self = .client } else if eq("cursor") { self = .cursor } else if eq("typing") { self = .typing }
                else if eq("status") { self = .status } else if eq("anchor") { self = .anchor } else { return nil }
            case 7:
                if eq("message") { self = .message } else if eq("members") { self = .members } else { return nil }
            case 8:
                if eq("initials") { self = .initials } else if eq("observer") { self = .observer } else { return nil }
            default:
                return nil
            }
        }
    }

    /// Reads a message object at the scanner's position.
    public static func read(from scanner: inout JSONScanner) throws -> Message {
        var type: MessageType?
        var m = Message(.op)
        try scanner.readObject(rawKeys: { s, key in
            guard let field = Field(key) else {
                // Appended in place: a copy appended and stored back left `m.extra` sharing the
                // array, so every unknown field copied all the ones before it (a line of many
                // short unknown fields took quadratic time).
                let value = try s.readValue()
                if m.extra == nil { m.extra = JSONObject() }
                m.extra!.fields.append((key: String(decoding: key, as: UTF8.self), value: value))
                return
            }
            switch field {
            case .type: type = try readType(&s)
            case .room: m.room = try optionalString(&s, "room")
            case .user: m.user = try optionalString(&s, "user")
            case .name: m.name = try optionalString(&s, "name")
            case .color: m.color = try optionalString(&s, "color")
            case .initials: m.initials = try optionalString(&s, "initials")
            case .client: m.client = try optionalString(&s, "client")
            case .token: m.token = try optionalString(&s, "token")
            case .doc: m.doc = try optionalString(&s, "doc")
            case .status: m.status = try optionalString(&s, "status")
            case .code: m.code = try optionalString(&s, "code")
            case .message: m.message = try optionalString(&s, "message")
            case .text: m.text = try optionalString(&s, "text")
            case .seq: m.seq = try optionalInt(&s, "seq")
            case .base: m.base = try optionalInt(&s, "base")
            case .rev: m.rev = try optionalInt(&s, "rev")
            case .since: m.since = try optionalInt(&s, "since")
            case .ts: m.ts = try optionalTimestamp(&s, "ts")
            case .pos: m.pos = try optionalInt(&s, "pos")
            case .len: m.len = try optionalInt(&s, "len")
            case .anchor: m.anchor = try optionalInt(&s, "anchor")
            case .head: m.head = try optionalInt(&s, "head")
            case .typing: m.typing = try optionalBool(&s, "typing")
            case .fatal: m.fatal = try optionalBool(&s, "fatal")
            case .observer: m.observer = try optionalBool(&s, "observer")
            case .op:
                if try s.readNull() { m.op = nil } else {
                    guard s.peek() == UInt8(ascii: "[") else { throw MessageError.badField("op", "must be an array") }
                    m.op = try TextOperation.read(from: &s)
                }
            case .cursor:
                if try s.readNull() { m.cursor = nil } else {
                    var anchor: Int?, head: Int?
                    guard s.peek() == UInt8(ascii: "{") else { throw MessageError.badField("cursor", "must be {\"anchor\":N,\"head\":N}") }
                    try s.readObject { s, k in
                        switch k {
                        case "anchor": anchor = try optionalInt(&s, "cursor.anchor")
                        case "head": head = try optionalInt(&s, "cursor.head")
                        default: try s.skipValue()
                        }
                    }
                    guard let a = anchor ?? head, let h = head ?? anchor, a >= 0, h >= 0 else {
                        throw MessageError.badField("cursor", "needs non-negative \"anchor\" and \"head\"")
                    }
                    m.cursor = Selection(anchor: a, head: h)
                }
            case .members:
                guard s.peek() == UInt8(ascii: "[") else { throw MessageError.badField("members", "must be an array") }
                var members: [Message] = []
                try s.readArray { s in members.append(try readMember(from: &s)) }
                m.members = members
            }
        })
        guard let type else { throw MessageError.missingType }
        m.type = type
        return m
    }

    /// Reads the value of `"type"`: an unknown name is `unknownType` (not a syntax error, since
    /// `readPlainString` has consumed it), a non-string is a bad field.
    static func readType(_ s: inout JSONScanner) throws -> MessageType {
        guard s.peek() == UInt8(ascii: "\"") else { throw MessageError.badField("type", "must be a string") }
        if let raw = s.readPlainString() {
            guard let t = MessageType(utf8: raw) else { throw MessageError.unknownType(String(decoding: raw, as: UTF8.self)) }
            return t
        }
        let name = try s.readString() // written with escapes or non-ASCII
        guard let t = MessageType(rawValue: name) else { throw MessageError.unknownType(name) }
        return t
    }

    /// A roster member: a message object whose `type` may be absent.
    static func readMember(from s: inout JSONScanner) throws -> Message {
        var member = JSONWriter()
        // Members are rare and small: read generically, then decode with a type of our own.
        let value = try s.readValue()
        guard case .object(var o) = value else { throw MessageError.badField("members", "each member must be an object") }
        if o["type"] == nil { o.fields.insert((key: "type", value: .string("join")), at: 0) }
        member.value(.object(o))
        // A member's own error is reported as the `members` field's: left as it was, a member
        // with `"type":5` read as a bad `type` of the roster itself, and its offsets pointed
        // into the re-encoded member rather than the line.
        do {
            return try member.bytes.withUnsafeBufferPointer { try Message.decode($0) }
        } catch {
            throw MessageError.badField("members", "a member: \(error)")
        }
    }

    static func optionalString(_ s: inout JSONScanner, _ key: String) throws -> String? {
        if try s.readNull() { return nil }
        guard s.peek() == UInt8(ascii: "\"") else { throw MessageError.badField(key, "must be a string") }
        return try s.readString()
    }

    static func optionalInt(_ s: inout JSONScanner, _ key: String) throws -> Int? {
        if try s.readNull() { return nil }
        guard let p = s.peek(), p == UInt8(ascii: "-") || p &- 0x30 < 10 else {
            throw MessageError.badField(key, "must be an integer")
        }
        guard let v = try s.readIntegerNumber() else { throw MessageError.badField(key, "must be an integer in range") }
        return v
    }

    static func optionalTimestamp(_ s: inout JSONScanner, _ key: String) throws -> Int? {
        if try s.readNull() { return nil }
        guard let p = s.peek(), p == UInt8(ascii: "-") || p &- 0x30 < 10 else {
            throw MessageError.badField(key, "must be a number (milliseconds since 1970)")
        }
        switch try s.readNumber() {
        case .int(let v): return v
        case .double(let d) where d.isFinite && abs(d) < 9e15: return Int(d)
        default: throw MessageError.badField(key, "out of range")
        }
    }

    static func optionalBool(_ s: inout JSONScanner, _ key: String) throws -> Bool? {
        if try s.readNull() { return nil }
        guard let p = s.peek(), p == UInt8(ascii: "t") || p == UInt8(ascii: "f") else {
            throw MessageError.badField(key, "must be true or false")
        }
        return try s.readBool()
    }
}

extension Message {
    /// Appends the message as one compact JSON object (no newline).
    public func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("type"); w.string(type.rawValue)
        if let room { w.key("room"); w.string(room) }
        if let user { w.key("user"); w.string(user) }
        if let name { w.key("name"); w.string(name) }
        if let color { w.key("color"); w.string(color) }
        if let initials { w.key("initials"); w.string(initials) }
        if let client { w.key("client"); w.string(client) }
        if let token { w.key("token"); w.string(token) }
        if let seq { w.key("seq"); w.int(seq) }
        if let base { w.key("base"); w.int(base) }
        if let rev { w.key("rev"); w.int(rev) }
        if let since { w.key("since"); w.int(since) }
        if let op { w.key("op"); op.write(to: &w) }
        if let doc { w.key("doc"); w.string(doc) }
        if let cursor {
            w.key("cursor")
            w.beginObject()
            w.key("anchor"); w.int(cursor.anchor)
            w.key("head"); w.int(cursor.head)
            w.endObject()
        }
        if let typing { w.key("typing"); w.bool(typing) }
        if let status { w.key("status"); w.string(status) }
        if let pos { w.key("pos"); w.int(pos) }
        if let len { w.key("len"); w.int(len) }
        if let text { w.key("text"); w.string(text) }
        if let anchor { w.key("anchor"); w.int(anchor) }
        if let head { w.key("head"); w.int(head) }
        if let members {
            w.key("members")
            w.beginArray()
            for m in members { m.write(to: &w) }
            w.endArray()
        }
        if let code { w.key("code"); w.string(code) }
        if let message { w.key("message"); w.string(message) }
        if let fatal { w.key("fatal"); w.bool(fatal) }
        if let observer { w.key("observer"); w.bool(observer) }
        if let ts { w.key("ts"); w.int(ts) }
        if let extra {
            for f in extra.fields {
                w.key(f.key)
                w.value(f.value)
            }
        }
        w.endObject()
    }

    /// The message as one line of JSON text, without the newline.
    public var json: String {
        var w = JSONWriter()
        write(to: &w)
        return w.string
    }
}

extension Message {
    /// An `error` message. `fatal` means the sender closes the connection after it.
    public static func error(code: ErrorCode, _ text: String, seq: Int? = nil, room: String? = nil, fatal: Bool = false) -> Message {
        var m = Message(.error)
        m.room = room
        m.code = code.rawValue
        m.message = text
        m.seq = seq
        m.fatal = fatal
        return m
    }
}

/// The `code` of an `error` message: short, stable, for programs to branch on.
public enum ErrorCode: String, Sendable, CaseIterable {
    case badMessage = "bad-message"
    case badOp = "bad-op"
    case badRoom = "bad-room"
    case conflict
    case tooLarge = "too-large"
    case rateLimited = "rate-limited"
    case slowConsumer = "slow-consumer"
    case unauthorized
    case forbidden
    case unavailable
    case historyUnavailable = "history-unavailable"
    case internalError = "internal"
}

/// The few fields a document follower needs (`type`, `rev`, `op`, `doc`), read without building a
/// whole `Message`: other fields are validated and skipped. This is what lets
/// `collab-ot-apply apply` take a million op lines a second.
public struct DocumentEvent: Sendable {
    public var type: MessageType
    public var rev: Int?
    public var op: TextOperation?
    public var doc: String?

    /// Decodes a line: a message object, or a bare op array (an `op`).
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(MessageError) -> DocumentEvent {
        try Message.decodeLine(bytes, DocumentEvent(type: .op),
                               bareOp: { DocumentEvent(type: .op, op: try TextOperation.read(from: &$0)) },
                               type: { $0.type = $1 },
                               field: { event, s, field in
            switch field {
            case .rev: event.rev = try Message.optionalInt(&s, "rev")
            case .doc: event.doc = try Message.optionalString(&s, "doc")
            case .op:
                if try s.readNull() { event.op = nil } else {
                    guard s.peek() == UInt8(ascii: "[") else { throw MessageError.badField("op", "must be an array") }
                    event.op = try TextOperation.read(from: &s)
                }
            default: try s.skipValue()
            }
        })
    }
}

extension Message {
    /// What the partial decoders of a line (`DocumentEvent`, `MessageHeader`) share: a bare op
    /// array goes to `bareOp`; an object's `type` to `type` and its other known fields to
    /// `field`, which must consume the value; unknown fields are validated and skipped. Anything
    /// else is the error `Message.decode` gives. Inlined, so the closures cost no calls on the
    /// per-line hot path.
    @inline(__always)
    static func decodeLine<T>(_ bytes: UnsafeBufferPointer<UInt8>, _ initial: T,
                              bareOp: (inout JSONScanner) throws -> T,
                              type: (inout T, MessageType) -> Void,
                              field: (inout T, inout JSONScanner, Field) throws -> Void) throws(MessageError) -> T {
        var scanner = JSONScanner(bytes)
        do {
            switch scanner.peek() {
            case UInt8(ascii: "[")?:
                let value = try bareOp(&scanner)
                try scanner.expectEnd()
                return value
            case UInt8(ascii: "{")?:
                var value = initial
                var sawType = false
                try scanner.readObject(rawKeys: { s, key in
                    guard let f = Field(key) else { return try s.skipValue() }
                    if case .type = f {
                        type(&value, try readType(&s))
                        sawType = true
                    } else {
                        try field(&value, &s, f)
                    }
                })
                try scanner.expectEnd()
                guard sawType else { throw MessageError.missingType }
                return value
            case nil:
                throw MessageError.syntax(JSONSyntaxError(reason: "empty line", offset: 0))
            default:
                _ = try scanner.readValue()
                try scanner.expectEnd()
                throw MessageError.notAnObject
            }
        } catch {
            throw MessageError(decoding: error)
        }
    }
}
