import XCTest
@testable import CollabProtocol

/// RFC 8259 conformance of the hand-written scanner: what it must accept, and what it must reject
/// with a clear reason (and never crash on).
final class JSONScannerTests: XCTestCase {

    // MARK: Valid documents

    func testScalars() throws {
        XCTAssertEqual(try parseJSON("null"), .null)
        XCTAssertEqual(try parseJSON("true"), .bool(true))
        XCTAssertEqual(try parseJSON(" false "), .bool(false))
        XCTAssertEqual(try parseJSON("\"\""), .string(""))
        XCTAssertEqual(try parseJSON("\"abc\""), .string("abc"))
        XCTAssertEqual(try parseJSON("\t\r\n 42 \n"), .int(42))
    }

    func testNested() throws {
        let v = try parseJSON(#"{"a":[1,{"b":null,"c":[true,false,[]]},{}],"d":{"e":{"f":"g"}},"":-0.5}"#)
        let expected: JSONValue = .object([
            "a": .array([.int(1), .object(["b": .null, "c": .array([.bool(true), .bool(false), .array([])])]), .object([:])]),
            "d": .object(["e": .object(["f": .string("g")])]),
            "": .double(-0.5),
        ])
        XCTAssertEqual(v, expected)
        // Whitespace everywhere it is allowed.
        XCTAssertEqual(try parseJSON(" { \"a\" : [ 1 , 2 ] , \"b\" : { } } "),
                       .object(["a": .array([.int(1), .int(2)]), "b": .object([:])]))
        // 64 levels are allowed.
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNoThrow(try parseJSON(deep))
    }

    func testObjectsKeepKeyOrderAndDuplicates() throws {
        guard case .object(let o) = try parseJSON(#"{"z":1,"a":2,"m":3,"a":4}"#) else { return XCTFail() }
        XCTAssertEqual(o.fields.map(\.key), ["z", "a", "m", "a"])
    }

    func testEscapes() throws {
        XCTAssertEqual(try parseJSON(#""\"\\\/\b\f\n\r\t""#), .string("\"\\/\u{8}\u{C}\n\r\t"))
        XCTAssertEqual(try parseJSON(#""\u0041\u00e9\u20AC\u0000""#), .string("Aé€\u{0}"))
        // Surrogate pairs, upper and lower case hex.
        XCTAssertEqual(try parseJSON(#""\ud83d\ude00""#), .string("😀"))
        XCTAssertEqual(try parseJSON(#""x\uD834\uDD1Ey""#), .string("x𝄞y"))
        // Escapes mixed with raw UTF-8, and escaped keys.
        XCTAssertEqual(try parseJSON(#"{"k\u00e9y":"é\n😀"}"#), .object(["kéy": .string("é\n😀")]))
        // Raw non-ASCII in every UTF-8 length.
        XCTAssertEqual(try parseJSON("\"é€😀\u{10FFFF}\""), .string("é€😀\u{10FFFF}"))
    }

    func testNumbers() throws {
        XCTAssertEqual(try parseJSON("0"), .int(0))
        XCTAssertEqual(try parseJSON("-0"), .int(0))
        XCTAssertEqual(try parseJSON("7"), .int(7))
        XCTAssertEqual(try parseJSON("-123"), .int(-123))
        XCTAssertEqual(try parseJSON("9223372036854775807"), .int(Int.max))
        XCTAssertEqual(try parseJSON("-9223372036854775808"), .int(Int.min))
        XCTAssertEqual(try parseJSON("1.5"), .double(1.5))
        XCTAssertEqual(try parseJSON("-0.25"), .double(-0.25))
        XCTAssertEqual(try parseJSON("0.1"), .double(0.1))
        XCTAssertEqual(try parseJSON("1e3"), .double(1000))
        XCTAssertEqual(try parseJSON("1E+3"), .double(1000))
        XCTAssertEqual(try parseJSON("25e-2"), .double(0.25))
        XCTAssertEqual(try parseJSON("-1.5e2"), .double(-150))
        XCTAssertEqual(try parseJSON("0e0"), .double(0))
        XCTAssertEqual(try parseJSON("1e-400"), .double(0)) // underflow rounds to zero
        // Integers beyond 64 bits become doubles.
        XCTAssertEqual(try parseJSON("9223372036854775808"), .double(9223372036854775808.0))
        XCTAssertEqual(try parseJSON("-9223372036854775809"), .double(-9223372036854775809.0))
        XCTAssertEqual(try parseJSON("123456789012345678901234567890"), .double(1.2345678901234568e29))
        XCTAssertEqual(try parseJSON("[1,-2,3.5]"), .array([.int(1), .int(-2), .double(3.5)]))
    }

    func testReadIntRejectsNonIntegers() throws {
        for text in ["1.0", "1e2", "99999999999999999999"] {
            var bytes = Array(text.utf8)
            try bytes.withUnsafeMutableBufferPointer { buf in
                var s = JSONScanner(UnsafeBufferPointer(buf))
                XCTAssertThrowsError(try s.readInt(), text)
                XCTAssertEqual(s.offset, 0, "readInt must not consume \(text) when it fails")
            }
        }
    }

    // MARK: Invalid documents

    func testTruncated() {
        assertSyntaxError("", "unexpected end")
        assertSyntaxError("   ", "unexpected end")
        assertSyntaxError("{", "expected a string key")
        assertSyntaxError(#"{"a""#, "':'")
        assertSyntaxError(#"{"a":"#, "unexpected end")
        assertSyntaxError(#"{"a":1"#, "unexpected end of input in an object")
        assertSyntaxError(#"{"a":1,"#, "expected a string key")
        assertSyntaxError("[", "unexpected end")
        assertSyntaxError("[1,", "unexpected end")
        assertSyntaxError("[1", "unexpected end of input in an array")
        assertSyntaxError("\"abc", "unterminated string")
        assertSyntaxError("\"ab\\", "unterminated string")
        assertSyntaxError("\"\\u12", "truncated \\u escape")
        assertSyntaxError("tru", "invalid literal")
        assertSyntaxError("nul", "invalid literal")
        assertSyntaxError("-", "expected a number")
        assertSyntaxError("1.", "expected digits after '.'")
        assertSyntaxError("1e", "expected digits in the exponent")
        assertSyntaxError("1e+", "expected digits in the exponent")
    }

    func testTrailingGarbage() {
        assertSyntaxError("1 2", "unexpected data after the JSON value")
        assertSyntaxError("{} x", "unexpected data after")
        assertSyntaxError("[]]", "unexpected data after")
        assertSyntaxError("nullx", "unexpected data after")
        assertSyntaxError("\"a\"\"b\"", "unexpected data after")
        assertSyntaxError("[1,]", "unexpected character ']'")
        assertSyntaxError(#"{"a":1,}"#, "expected a string key")
        assertSyntaxError("[1 2]", "expected ',' or ']'")
        assertSyntaxError(#"{"a":1 "b":2}"#, "expected ',' or '}'")
        assertSyntaxError(#"{"a" 1}"#, "expected ':'")
    }

    func testBadNumbers() {
        assertSyntaxError("01", "leading zeros")
        assertSyntaxError("-01", "leading zeros")
        assertSyntaxError("00", "leading zeros")
        assertSyntaxError("[007]", "leading zeros")
        assertSyntaxError("+1", "unexpected character '+'")
        assertSyntaxError(".5", "unexpected character '.'")
        assertSyntaxError("-.5", "expected a number")
        assertSyntaxError("NaN", "unexpected character 'N'")
        assertSyntaxError("[NaN]", "unexpected character 'N'")
        assertSyntaxError("Infinity", "unexpected character 'I'")
        assertSyntaxError("-Infinity", "expected a number")
        assertSyntaxError("0x10", "unexpected data after")
        // Out of the range of a Double: an error, not infinity (which JSON cannot express).
        assertSyntaxError("1e999", "number out of range")
        assertSyntaxError("-1e999", "number out of range")
        assertSyntaxError("[" + String(repeating: "9", count: 400) + "]", "number out of range")
    }

    func testBadStrings() {
        assertSyntaxError("'a'", "unexpected character '''")
        assertSyntaxError(#"{'a':1}"#, "expected a string key")
        assertSyntaxError(#"{a:1}"#, "expected a string key")
        assertSyntaxError(#""\x41""#, "invalid escape sequence")
        assertSyntaxError(#""\U0041""#, "invalid escape sequence")
        assertSyntaxError(#""\u00g1""#, "invalid hex digit")
        // Raw control characters, with and without escapes before them.
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            assertSyntaxError([0x22, 0x61, c, 0x22], "control character")
            assertSyntaxError([0x22, 0x5C, 0x6E, c, 0x22], "control character")
        }
        // DEL is not a control character for JSON.
        XCTAssertEqual(try parseJSON([0x22, 0x7F, 0x22]), .string("\u{7F}"))
    }

    func testLoneSurrogates() {
        assertSyntaxError(#""\ud800""#, "unpaired surrogate")
        assertSyntaxError(#""\ud800x""#, "unpaired surrogate")
        assertSyntaxError(#""\udc00""#, "unpaired surrogate")
        assertSyntaxError(#""\ude00\ud83d""#, "unpaired surrogate")
        assertSyntaxError(#""\ud83d\u0041""#, "unpaired surrogate")
        assertSyntaxError(#""\ud83d\ud83d""#, "unpaired surrogate")
        assertSyntaxError(#""\ud83d\n""#, "unpaired surrogate")
        assertSyntaxError(#""\ud83d"#, "unpaired surrogate")
    }

    func testInvalidUTF8() throws {
        let bad: [[UInt8]] = [
            [0xC3, 0x28],             // 2-byte lead followed by ASCII
            [0xC3],                   // truncated sequence
            [0xE2, 0x82],             // truncated 3-byte
            [0xC0, 0x80],             // overlong NUL
            [0xC1, 0xBF],             // overlong
            [0xE0, 0x80, 0xAF],       // overlong '/'
            [0xF0, 0x80, 0x80, 0xAF], // overlong '/'
            [0xED, 0xA0, 0x80],       // UTF-8-encoded surrogate
            [0xF4, 0x90, 0x80, 0x80], // beyond U+10FFFF
            [0xFF], [0xFE], [0xF8, 0x88, 0x80, 0x80, 0x80],
            [0x80],                   // lone continuation byte
        ]
        for b in bad {
            // Inside a string: plain, after an escape, as an object key, and skipped by skipValue.
            assertSyntaxError([0x22] + b + [0x22], "invalid UTF-8")
            assertSyntaxError([0x22, 0x5C, 0x6E] + b + [0x22], "invalid UTF-8")
            assertSyntaxError([0x7B, 0x22] + b + [0x22, 0x3A, 0x31, 0x7D], "invalid UTF-8")
            var bytes: [UInt8] = [0x5B, 0x22] + b + [0x22, 0x5D]
            try bytes.withUnsafeMutableBufferPointer { buf in
                var s = JSONScanner(UnsafeBufferPointer(buf))
                XCTAssertThrowsError(try s.skipValue(), "skipValue accepted \(b)")
                var t = JSONScanner(UnsafeBufferPointer(buf))
                var out: [UInt8] = []
                XCTAssertThrowsError(try t.readArray { _ = try $0.readString(appendingTo: &out) }, "readString(appendingTo:) accepted \(b)")
            }
            // Outside strings: never valid.
            assertSyntaxError(b, "unexpected byte")
            assertSyntaxError([0x5B] + b + [0x5D], "unexpected byte")
        }
        // A byte order mark is not JSON text (RFC 8259 §8.1 lets a parser ignore it; this one
        // is strict and says so).
        assertSyntaxError([0xEF, 0xBB, 0xBF, 0x31], "unexpected byte 0xEF")
    }

    func testDepthLimit() throws {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let ok = String(repeating: open, count: 64) + "1" + String(repeating: close, count: 64)
            XCTAssertNoThrow(try parseJSON(ok))
            let tooDeep = String(repeating: open, count: 65) + "1" + String(repeating: close, count: 65)
            assertSyntaxError(tooDeep, "nesting deeper than 64 levels")
            // Far deeper: must throw, not overflow the stack; also when unterminated.
            let huge = String(repeating: open, count: 100_000) + String(repeating: close, count: 100_000)
            assertSyntaxError(huge, "nesting deeper than 64 levels")
            assertSyntaxError(String(repeating: open, count: 100_000), "nesting deeper than 64 levels")
        }
        // skipValue is limited the same way.
        var bytes = Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        try bytes.withUnsafeMutableBufferPointer { buf in
            var s = JSONScanner(UnsafeBufferPointer(buf))
            XCTAssertThrowsError(try s.skipValue())
        }
    }

    func testErrorOffsetAndDescription() {
        do {
            _ = try parseJSON(#"{"a":tru}"#)
            XCTFail()
        } catch let e as JSONSyntaxError {
            XCTAssertEqual(e.offset, 5)
            XCTAssertEqual(e.description, "invalid literal at byte 6")
        } catch { XCTFail("\(error)") }
    }
}
