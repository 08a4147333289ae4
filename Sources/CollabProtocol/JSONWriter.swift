/// Appends JSON text to a byte buffer. Output is compact (no spaces), keys in the order written,
/// non-ASCII text written as UTF-8 (not escaped), so lines stay short and greppable.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]
    /// True right after `{` or `[`: the next member needs no comma.
    var first = true

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func comma() {
        if first { first = false } else { bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func beginObject() {
        comma()
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    public mutating func beginArray() {
        comma()
        bytes.append(UInt8(ascii: "["))
        first = true
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// Writes `"key":`; the value written next belongs to it.
    public mutating func key(_ k: StaticString) {
        comma()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    public mutating func key(_ k: String) {
        string(k)
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    public mutating func int(_ v: Int) {
        comma()
        if v == 0 { bytes.append(0x30); return }
        var v = v
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
            if v == .min { bytes.append(contentsOf: "9223372036854775808".utf8); return }
            v = -v
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes of scratch
        let n = withUnsafeMutableBytes(of: &digits) { buf -> Int in
            var k = 24
            while v > 0 {
                k -= 1
                buf[k] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
            }
            bytes.append(contentsOf: buf[k...])
            return 24 - k
        }
        _ = n
    }

    public mutating func double(_ v: Double) {
        comma()
        if v.isFinite, v == v.rounded(), abs(v) < 1e15 {
            first = true
            int(Int(v))
        } else if v.isFinite {
            bytes.append(contentsOf: "\(v)".utf8)
        } else {
            bytes.append(contentsOf: "null".utf8) // JSON has no NaN or infinity
        }
    }

    public mutating func bool(_ v: Bool) {
        comma()
        bytes.append(contentsOf: v ? "true".utf8 : "false".utf8)
    }

    public mutating func null() {
        comma()
        bytes.append(contentsOf: "null".utf8)
    }

    public mutating func string(_ s: String) {
        comma()
        var s = s
        s.withUTF8 { appendQuoted($0) }
    }

    /// Writes raw UTF-8 (already valid) as a JSON string.
    public mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
        comma()
        appendQuoted(utf8)
    }

    mutating func appendQuoted(_ utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for (k, b) in utf8.enumerated() where b < 0x20 || b == 0x22 || b == 0x5C {
            if runStart < k { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart ..< k])) }
            runStart = k + 1
            bytes.append(UInt8(ascii: "\\"))
            switch b {
            case 0x22: bytes.append(0x22)
            case 0x5C: bytes.append(0x5C)
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            default:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 15)]])
            }
        }
        if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .int(let i): int(i)
        case .double(let d):
            // `double` writes 1.0 as `1`, which reads back as `.int(1)`: a line passed through
            // (an event's payload, a newer peer's field) changed type. A fraction keeps it a double.
            double(d)
            if d.isFinite, d == d.rounded(), abs(d) < 1e15 { bytes.append(contentsOf: ".0".utf8) }
        case .string(let s): string(s)
        case .array(let a):
            beginArray()
            for e in a { value(e) }
            endArray()
        case .object(let o):
            beginObject()
            for f in o.fields {
                key(f.key)
                value(f.value)
            }
            endObject()
        }
    }

    /// Ends the current line (NDJSON record separator).
    public mutating func newline() {
        bytes.append(0x0A)
        first = true
    }

    public var string: String { String(decoding: bytes, as: UTF8.self) }
}

extension JSONValue {
    /// Compact JSON text of the value.
    public var jsonText: String {
        var w = JSONWriter()
        w.value(self)
        return w.string
    }
}
