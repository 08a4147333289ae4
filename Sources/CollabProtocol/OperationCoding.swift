import CollabOT

/// JSON form of text operations (ShareDB `text-unicode`): `[5, "hi", {"d": 2}]` keeps 5
/// scalars, inserts "hi", deletes 2. `{"d": "ab"}` (the deleted text) is accepted on input and
/// counts its scalars; what is written is always the number form.
extension TextOperation {
    /// Reads an op array at the scanner's position.
    public static func read(from scanner: inout JSONScanner) throws -> TextOperation {
        var op = TextOperation(reservingCapacity: 4) // most ops: keep, insert/delete, maybe one more
        var index = 0
        var inputLength = 0
        // Keeps and deletes past `maxInputLength` in all are refused here, so no decoded op makes
        // the OT arithmetic overflow (and trap) later: [9223372036854775807, 1] used to.
        func countInput(_ n: Int, at offset: Int) throws(OperationSyntaxError) {
            let (total, overflow) = inputLength.addingReportingOverflow(n)
            guard !overflow, total <= TextOperation.maxInputLength else {
                throw OperationSyntaxError(index: index, reason: "the op keeps and deletes more than \(TextOperation.maxInputLength) characters", offset: offset)
            }
            inputLength = total
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
                        guard s.peekIsNumber, let n = try s.readIntegerNumber() else {
                            throw OperationSyntaxError(index: index, reason: "a delete count must be an integer", offset: at)
                        }
                        count = n
                    }
                }
                guard let n = count else { throw OperationSyntaxError(index: index, reason: "a delete needs \"d\"", offset: at) }
                guard n > 0 else { throw OperationSyntaxError(index: index, reason: "a delete count must be positive, got \(n)", offset: at) }
                try countInput(n, at: at)
                op.delete(n)
            default:
                // Checked before reading: `[[]]` or `[true]` is valid JSON, so it is a bad op, not
                // the "invalid JSON" that `readIntegerNumber` would report.
                guard s.peekIsNumber, let n = try s.readIntegerNumber() else {
                    throw OperationSyntaxError(index: index, reason: "a keep count must be an integer", offset: at)
                }
                guard n > 0 else { throw OperationSyntaxError(index: index, reason: "a keep count must be positive, got \(n)", offset: at) }
                try countInput(n, at: at)
                op.retain(n)
            }
            index += 1
        }
        op.trimTrailingRetain() // retain/insert/delete keep the rest of the normal form
        return op
    }

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

extension JSONScanner {
    /// Whether the next value starts like a number (it may still be a malformed one).
    var peekIsNumber: Bool {
        mutating get {
            guard let p = peek() else { return false }
            return p == UInt8(ascii: "-") || p &- 0x30 < 10
        }
    }
}
