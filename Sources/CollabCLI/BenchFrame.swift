import CollabProtocol

/// What collab-bench needs from a server message, read in place: the type, and for ops, acks,
/// welcomes and errors the few fields it uses. Everything else is skipped without being built,
/// and join, leave, presence and roster messages (a roster of a big room is large, and every
/// client gets one per newcomer's join) are dropped as soon as their type is read, which the
/// server writes first. Thousands of mostly idle clients then cost little CPU.
public struct BenchFrame: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case op, ack, welcome, error, other }

    public var kind: Kind = .other
    public var rev = -1
    public var seq = -1
    /// For ops: the sender's index when its client id is `clientPrefix` + decimal index, -1 when
    /// it is someone else's (a client that is not part of this run).
    public var sender = -1
    /// For a welcome, when asked for: the document's length in Unicode scalars.
    public var documentLength = -1
    public var fatal = false
    public var code = ""
    public var message = ""

    public init() {}

    private struct Done: Error {}

    /// Reads a server message. `countDocument`: measure the welcome's document (only writers need
    /// it; idle clients skip it). Throws on invalid JSON.
    public static func read(_ bytes: UnsafeBufferPointer<UInt8>, clientPrefix: UnsafeBufferPointer<UInt8>,
                            countDocument: Bool) throws -> BenchFrame {
        var f = BenchFrame()
        var scanner = JSONScanner(bytes)
        do {
            try scanner.readObject(rawKeys: { s, key in
                switch key.count {
                case 4 where JSONScanner.key(key, is: "type"):
                    guard let t = s.readPlainString() else { try s.skipValue(); return }
                    f.kind = kind(t)
                    if f.kind == .other { throw Done() }
                case 3 where JSONScanner.key(key, is: "rev"):
                    f.rev = try s.readIntegerNumber() ?? -1
                case 3 where JSONScanner.key(key, is: "seq"):
                    f.seq = try s.readIntegerNumber() ?? -1
                case 6 where JSONScanner.key(key, is: "client"):
                    if let c = s.readPlainString() {
                        f.sender = senderIndex(c, prefix: clientPrefix)
                    } else {
                        try s.skipValue()
                    }
                case 3 where countDocument && JSONScanner.key(key, is: "doc"):
                    f.documentLength = try s.readString().unicodeScalars.count
                case 5 where JSONScanner.key(key, is: "fatal"):
                    f.fatal = (try? s.readBool()) ?? false
                case 4 where JSONScanner.key(key, is: "code"):
                    f.code = try s.readString()
                case 7 where JSONScanner.key(key, is: "message"):
                    f.message = try s.readString()
                default:
                    try s.skipValue()
                }
            })
        } catch is Done {
            return f
        }
        return f
    }

    static func kind(_ t: UnsafeBufferPointer<UInt8>) -> Kind {
        if JSONScanner.key(t, is: "op") { return .op }
        if JSONScanner.key(t, is: "ack") { return .ack }
        if JSONScanner.key(t, is: "welcome") { return .welcome }
        if JSONScanner.key(t, is: "error") { return .error }
        return .other
    }

    /// `prefix` followed by decimal digits → that number; anything else → -1.
    static func senderIndex(_ client: UnsafeBufferPointer<UInt8>, prefix: UnsafeBufferPointer<UInt8>) -> Int {
        guard client.count > prefix.count, client.count - prefix.count <= 9 else { return -1 }
        for i in 0 ..< prefix.count where client[i] != prefix[i] { return -1 }
        var n = 0
        for i in prefix.count ..< client.count {
            let d = client[i] &- 0x30
            guard d < 10 else { return -1 }
            n = n * 10 + Int(d)
        }
        return n
    }
}
