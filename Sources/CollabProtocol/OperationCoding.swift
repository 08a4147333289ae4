import CollabOT

/// JSON form of text operations (ShareDB `text-unicode`): `[5, "hi", {"d": 2}]` keeps 5
/// scalars, inserts "hi", deletes 2. `{"d": "ab"}` (the deleted text) is accepted on input and
/// counts its scalars; what is written is always the number form.
extension TextOperation {
    /// Reads an op array at the scanner's position.
    public static func read(from scanner: inout JSONScanner) throws -> TextOperation {
        var op = TextOperation(reservingCapacity: 4) // most ops: keep, insert/delete, maybe one more
        var index = 0
        // Keeps and deletes together may not pass 2^53 - 1 (what JavaScript's numbers hold
        // exactly): every sum of positions made from them later (merging adjacent components,
        // an op's input length, transforms) then stays far from overflow. Without it one op of
        // two keeps of Int.max trapped the server.
        var consumed = 0
        func consume(_ n: Int, at offset: Int) throws {
            consumed += min(n, Self.maxInputLength + 1)
            guard consumed <= Self.maxInputLength else {
                throw OperationSyntaxError(index: index, reason: "keeps and deletes add up to more than \(Self.maxInputLength) characters", offset: offset)
            }
        }
        try scanner.readArray { s in
            let at = s.offset
            switch s.peek() {
            case UInt8(ascii: "\""):
                let text = try s.readString()
                guard !text.isEmpty else { throw OperationSyntaxError(index: index, reason: "an insert must not be empty", offset: at) }
                op.insert(text)
            case UInt8(ascii: "{"):
                var count: Int?
                try s.readObject { s, key in
                    guard key == "d" else {
                        throw OperationSyntaxError(index: index, reason: "unknown key \"\(key)\" (a delete is {\"d\": N})", offset: at)
                    }
                    if s.peek() == UInt8(ascii: "\"") {
                        let text = try s.readString()
                        count = text.unicodeScalars.count
                    } else {
                        guard let n = try s.readIntegerNumber() else {
                            throw OperationSyntaxError(index: index, reason: "a delete count must be an integer", offset: at)
                        }
                        count = n
                    }
                }
                guard let n = count else { throw OperationSyntaxError(index: index, reason: "a delete needs \"d\"", offset: at) }
                guard n > 0 else { throw OperationSyntaxError(index: index, reason: "a delete count must be positive, got \(n)", offset: at) }
                try consume(n, at: at)
                op.delete(n)
            default:
                guard let n = try s.readIntegerNumber() else {
                    throw OperationSyntaxError(index: index, reason: "a keep count must be an integer", offset: at)
                }
                guard n > 0 else { throw OperationSyntaxError(index: index, reason: "a keep count must be positive, got \(n)", offset: at) }
                try consume(n, at: at)
                op.retain(n)
            }
            index += 1
        }
        op.trimTrailingRetain() // retain/insert/delete keep the rest of the normal form
        return op
    }

    /// The most characters an op read from JSON may keep and delete in all: 2^53 - 1.
    public static let maxInputLength = (1 << 53) - 1

    /// Parses an op from JSON text such as `[3,"x",{"d":1}]`.
    public init(json: String) throws {
        var text = json
        self = try text.withUTF8 { buf in
            var scanner = JSONScanner(buf)
            let op = try TextOperation.read(from: &scanner)
            try scanner.expectEnd()
            return op
        }
    }

    public func write(to w: inout JSONWriter) {
        w.beginArray()
        for c in components {
            switch c {
            case .retain(let n): w.int(n)
            case .insert(let s): w.string(s)
            case .delete(let n):
                w.beginObject()
                w.key("d")
                w.int(n)
                w.endObject()
            }
        }
        w.endArray()
    }

    /// Compact JSON text of the op.
    public var json: String {
        var w = JSONWriter(capacity: 32)
        write(to: &w)
        return w.string
    }
}

/// A component of an op array that is not valid.
public struct OperationSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var index: Int
    public var reason: String
    public var offset: Int
    public var description: String { "op component \(index): \(reason)" }
}
