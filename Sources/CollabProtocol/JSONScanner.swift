#if canImport(Glibc)
import Glibc
#endif

/// A malformed JSON text. `offset` is the byte offset in the input where it went wrong.
public struct JSONSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var offset: Int
    public var description: String { "\(reason) at byte \(offset + 1)" }
}

/// A strict RFC 8259 JSON reader over UTF-8 bytes that decodes straight into the caller's types.
///
/// Why hand-written: every tool's hot path is "parse a line, act on two or three fields". A
/// generic tree (Foundation's JSONSerialization) costs several microseconds a line; reading fields
/// in place costs a fraction of one, which is what lets `collab-ot-apply apply` take a million
/// op lines a second. It rejects what RFC 8259 rejects: invalid UTF-8 (checked in strings, the only
/// place non-ASCII may appear), control characters in strings, lone surrogates, leading zeros,
/// trailing garbage, and nesting deeper than `maxDepth` (so hostile input cannot exhaust the stack).
public struct JSONScanner {
    public static let defaultMaxDepth = 64

    let bytes: UnsafeBufferPointer<UInt8>
    var i: Int = 0
    var depth: Int = 0
    let maxDepth: Int

    public init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = JSONScanner.defaultMaxDepth) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    public var offset: Int { i }

    func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(reason: reason, offset: i) }

    @inline(__always)
    mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    /// The next significant byte, or nil at the end.
    public mutating func peek() -> UInt8? {
        skipWhitespace()
        return i < bytes.count ? bytes[i] : nil
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(JSONSyntaxError) {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == byte else {
            throw fail(i < bytes.count ? "expected \(what)" : "unexpected end of input, expected \(what)")
        }
        i += 1
    }

    /// Fails unless only whitespace is left.
    public mutating func expectEnd() throws(JSONSyntaxError) {
        skipWhitespace()
        if i < bytes.count { throw fail("unexpected data after the JSON value") }
    }

    // MARK: Objects and arrays

    /// Reads an object, calling `body` with each key; `body` must consume the value.
    public mutating func readObject(_ body: (inout JSONScanner, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), "'{'")
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try readString()
            try expect(UInt8(ascii: ":"), "':'")
            try body(&self, key)
            switch peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return
            case nil: throw fail("unexpected end of input in an object")
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// Like `readObject`, but hands `body` the key's UTF-8 bytes instead of a `String`: no
    /// allocation and no string comparison per key on the per-message hot path. The bytes are
    /// valid only during the call.
    public mutating func readObject(rawKeys body: (inout JSONScanner, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        try expect(UInt8(ascii: "{"), "'{'")
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "}") { i += 1; return }
        while true {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            // Plain keys (no escapes, ASCII) are used in place; others are decoded first.
            var j = i + 1
            while j < bytes.count, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\"), bytes[j] >= 0x20, bytes[j] < 0x80 { j += 1 }
            if j < bytes.count, bytes[j] == UInt8(ascii: "\"") {
                let key = UnsafeBufferPointer(rebasing: bytes[i + 1 ..< j])
                i = j + 1
                try expect(UInt8(ascii: ":"), "':'")
                try body(&self, key)
            } else {
                var key = try readString()
                try expect(UInt8(ascii: ":"), "':'")
                try key.withUTF8 { try body(&self, $0) }
            }
            switch peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return
            case nil: throw fail("unexpected end of input in an object")
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// Whether raw key bytes (from `readObject(rawKeys:)`) spell `name`.
    @inline(__always)
    public static func key(_ key: UnsafeBufferPointer<UInt8>, is name: StaticString) -> Bool {
        key.count == name.utf8CodeUnitCount && (key.count == 0 || memcmp(key.baseAddress!, name.utf8Start, key.count) == 0)
    }

    /// Reads an array, calling `body` once per element; `body` must consume the element.
    public mutating func readArray(_ body: (inout JSONScanner) throws -> Void) throws {
        try expect(UInt8(ascii: "["), "'['")
        try enter()
        defer { depth -= 1 }
        if peek() == UInt8(ascii: "]") { i += 1; return }
        while true {
            try body(&self)
            switch peek() {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return
            case nil: throw fail("unexpected end of input in an array")
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth) levels") }
    }

    // MARK: Scalars

    public mutating func readNull() throws(JSONSyntaxError) -> Bool {
        if peek() == UInt8(ascii: "n") { try literal("null"); return true }
        return false
    }

    mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw fail("invalid literal") }
        let p = word.utf8Start
        for k in 0 ..< n where bytes[i + k] != p[k] { throw fail("invalid literal") }
        i += n
    }

    public mutating func readBool() throws(JSONSyntaxError) -> Bool {
        switch peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw fail("expected true or false")
        }
    }

    /// Reads a number that must be an integer in the range of `Int`.
    public mutating func readInt() throws(JSONSyntaxError) -> Int {
        let start = i
        guard let v = try readIntegerNumber() else {
            i = start
            throw fail("expected an integer")
        }
        return v
    }

    /// Reads any JSON number; returns it if it is an integer in the range of `Int` (written
    /// without fraction or exponent), else nil (the number is consumed either way). Counts, seqs
    /// and revisions are read this way, without building a `JSONValue`.
    public mutating func readIntegerNumber() throws(JSONSyntaxError) -> Int? {
        skipWhitespace()
        let start = i
        var negative = false
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < bytes.count, bytes[i] &- 0x30 < 10 else {
            i = start
            throw fail("expected a number")
        }
        var value = 0
        if bytes[i] == 0x30 {
            i += 1
        } else {
            // Up to 18 digits cannot overflow: no checked arithmetic for the common case.
            let fastEnd = min(bytes.count, i + 18)
            while i < fastEnd, case let d = bytes[i] &- 0x30, d < 10 {
                value = value &* 10 &+ Int(d)
                i += 1
            }
        }
        if i < bytes.count, case let b = bytes[i], b &- 0x30 < 10 || b == UInt8(ascii: ".") || b | 0x20 == UInt8(ascii: "e") {
            // Long, fractional, exponent or malformed: the general reader decides.
            i = start
            if case .int(let v) = try readNumber() { return v }
            return nil
        }
        return negative ? -value : value
    }

    /// Reads any JSON number: `.int` when it is written as an integer that fits, else `.double`.
    public mutating func readNumber() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        let start = i
        var negative = false
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < bytes.count, bytes[i] &- 0x30 < 10 else { throw fail("expected a number") }
        var value = 0
        var overflow = false
        if bytes[i] == 0x30 {
            i += 1
            if i < bytes.count, bytes[i] &- 0x30 < 10 { throw fail("leading zeros are not allowed") }
        } else {
            // Accumulate with the sign applied: Int.min has no positive counterpart, so adding
            // then negating turned "-9223372036854775808" (which JSONWriter.int writes) into a
            // .double, breaking the .int round trip.
            // Up to 18 digits cannot overflow: no checked arithmetic for the common case.
            let fastEnd = min(bytes.count, i + 18)
            while i < fastEnd, case let d = bytes[i] &- 0x30, d < 10 {
                value = value &* 10 &+ (negative ? -Int(d) : Int(d))
                i += 1
            }
            while i < bytes.count, case let d = bytes[i] &- 0x30, d < 10 {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = negative ? m.subtractingReportingOverflow(Int(d)) : m.addingReportingOverflow(Int(d))
                overflow = overflow || o1 || o2
                value = a
                i += 1
            }
        }
        var isInteger = true
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard i < bytes.count, bytes[i] &- 0x30 < 10 else { throw fail("expected digits after '.'") }
            while i < bytes.count, bytes[i] &- 0x30 < 10 { i += 1 }
        }
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, bytes[i] &- 0x30 < 10 else { throw fail("expected digits in the exponent") }
            while i < bytes.count, bytes[i] &- 0x30 < 10 { i += 1 }
        }
        if isInteger && !overflow { return .int(value) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start ..< i]), as: UTF8.self)
        // Double("1e999") is +infinity, not nil: without the isFinite check out-of-range numbers
        // were accepted and later written back as `null`.
        guard let d = Double(text), d.isFinite else {
            i = start
            throw fail("number out of range")
        }
        return .double(d)
    }

    /// Reads a string, decoding escapes and rejecting invalid UTF-8.
    public mutating func readString() throws(JSONSyntaxError) -> String {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        let start = i
        var ascii = true
        // Fast path: no escapes. Most strings in messages are short identifiers.
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start ..< i])
                i += 1
                if ascii { return String(decoding: raw, as: UTF8.self) }
                guard let s = String(validating: raw, as: UTF8.self) else {
                    i = start
                    throw fail("invalid UTF-8 in a string")
                }
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("control character in a string (must be escaped)") }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        return try readEscapedString(from: start)
    }

    /// If the next value is a string of printable ASCII without escapes, consumes it and returns
    /// its bytes (valid while the input is); otherwise consumes nothing and returns nil.
    public mutating func readPlainString() -> UnsafeBufferPointer<UInt8>? {
        skipWhitespace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        while j < bytes.count {
            let b = bytes[j]
            if b == UInt8(ascii: "\"") {
                defer { i = j + 1 }
                return UnsafeBufferPointer(rebasing: bytes[i + 1 ..< j])
            }
            if b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80 { return nil }
            j += 1
        }
        return nil
    }

    /// Reads a string and appends its UTF-8 bytes to `out`, without making a `String`; returns the
    /// number of bytes appended. For bulk data (trace inserts) where a String per value would cost
    /// an allocation each.
    public mutating func readString(appendingTo out: inout [UInt8]) throws(JSONSyntaxError) -> Int {
        skipWhitespace()
        let save = i
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        var j = i + 1
        var ascii = true
        while j < bytes.count {
            let b = bytes[j]
            if b == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[i + 1 ..< j])
                if !ascii, String(validating: raw, as: UTF8.self) == nil { throw fail("invalid UTF-8 in a string") }
                out.append(contentsOf: raw)
                i = j + 1
                return raw.count
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { break }
            if b >= 0x80 { ascii = false }
            j += 1
        }
        i = save
        let s = try readString()
        out.append(contentsOf: s.utf8)
        return s.utf8.count
    }

    mutating func readEscapedString(from start: Int) throws(JSONSyntaxError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(i - start + 16)
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start ..< i]))
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw fail("invalid UTF-8 in a string")
                }
                return s
            case UInt8(ascii: "\\"):
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try readHex4()
                    if scalar >= 0xD800 && scalar < 0xDC00 {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let low = try readHex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if scalar >= 0xDC00 && scalar < 0xE000 {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
                default:
                    i -= 1
                    throw fail("invalid escape sequence")
                }
            default:
                if b < 0x20 { throw fail("control character in a string (must be escaped)") }
                out.append(b)
                i += 1
            }
        }
        throw fail("unterminated string")
    }

    mutating func readHex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let c = bytes[i]
            let d: UInt8
            switch c {
            case 0x30 ... 0x39: d = c - 0x30
            case 0x41 ... 0x46: d = c - 0x41 + 10
            case 0x61 ... 0x66: d = c - 0x61 + 10
            default: throw fail("invalid hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    // MARK: Any value

    /// Consumes one value of any kind, validating it, without building it.
    public mutating func skipValue() throws {
        switch peek() {
        case UInt8(ascii: "{"): try readObject(rawKeys: { s, _ in try s.skipValue() })
        case UInt8(ascii: "["): try readArray { try $0.skipValue() }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try readBool()
        case UInt8(ascii: "n"): try literal("null")
        case nil: throw fail("unexpected end of input, expected a value")
        default: _ = try readNumber()
        }
    }

    /// Consumes a string without building it (still rejecting invalid UTF-8 and bad escapes).
    mutating func skipString() throws(JSONSyntaxError) {
        let save = i
        i += 1
        var ascii = true
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                if !ascii {
                    guard String(validating: UnsafeBufferPointer(rebasing: bytes[save + 1 ..< i]), as: UTF8.self) != nil else {
                        i = save
                        throw fail("invalid UTF-8 in a string")
                    }
                }
                i += 1
                return
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { break }
            if b >= 0x80 { ascii = false }
            i += 1
        }
        i = save
        _ = try readString()
    }

    /// Reads any value into a `JSONValue` tree.
    public mutating func readValue() throws -> JSONValue {
        switch peek() {
        case UInt8(ascii: "{"):
            var object = JSONObject()
            try readObject { scanner, key in
                object.fields.append((key: key, value: try scanner.readValue()))
            }
            return .object(object)
        case UInt8(ascii: "["):
            var array: [JSONValue] = []
            try readArray { array.append(try $0.readValue()) }
            return .array(array)
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool(try readBool())
        case UInt8(ascii: "n"): try literal("null"); return .null
        case nil: throw fail("unexpected end of input, expected a value")
        case let c? where c == UInt8(ascii: "-") || c &- 0x30 < 10: return try readNumber()
        default: throw unexpectedCharacter()
        }
    }

    func unexpectedCharacter() -> JSONSyntaxError {
        let b = bytes[i]
        if b >= 0x20 && b < 0x7F { return fail("unexpected character '\(Character(Unicode.Scalar(b)))'") }
        return fail("unexpected byte 0x" + String(b, radix: 16, uppercase: true))
    }

    /// Parses a whole text as one JSON value.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws -> JSONValue {
        var scanner = JSONScanner(bytes)
        let v = try scanner.readValue()
        try scanner.expectEnd()
        return v
    }

    public static func parse(_ text: String) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse($0) }
    }
}
