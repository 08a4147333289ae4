import CollabTestSupport
import XCTest
@testable import CollabProtocol

final class JSONWriterTests: XCTestCase {

    func testEscaping() {
        var w = JSONWriter()
        w.string("a\"b\\c/\n\r\t\u{8}\u{C}\u{0}\u{1F}\u{7F}é😀")
        XCTAssertEqual(w.string, #""a\"b\\c/\n\r\t\b\f\u0000\u001f"# + "\u{7F}é😀\"")
        // Output never contains a raw newline or control character: NDJSON-safe.
        var all = String.UnicodeScalarView()
        for v in 0 ..< 0x20 { all.append(Unicode.Scalar(UInt8(v))) }
        var w2 = JSONWriter()
        w2.string(String(all))
        XCTAssertFalse(w2.bytes.contains { $0 < 0x20 })
    }

    func testStringRoundTripRandom() throws {
        var rng = SplitMix64(seed: 0x5EED_0001)
        for i in 0 ..< 3000 {
            let s = randomText(&rng, maxLength: 40)
            var w = JSONWriter()
            w.string(s)
            XCTAssertFalse(w.bytes.contains(0x0A), "case \(i)")
            XCTAssertEqual(try parseJSON(w.bytes), .string(s), "case \(i): \(s.debugDescription)")
            // Also as a key.
            var k = JSONWriter()
            k.beginObject(); k.key(s); k.int(i); k.endObject()
            XCTAssertEqual(try parseJSON(k.bytes), .object(JSONObject(dictionaryLiteral: (s, .int(i)))), "case \(i)")
        }
    }

    func testIntegers() throws {
        for v in [0, 1, -1, 9, 10, -10, 123456789, Int.max, Int.min, Int.min + 1] {
            var w = JSONWriter()
            w.int(v)
            XCTAssertEqual(w.string, String(v))
            XCTAssertEqual(try parseJSON(w.bytes), .int(v))
        }
    }

    func testDoubles() throws {
        func text(_ d: Double) -> String { var w = JSONWriter(); w.double(d); return w.string }
        XCTAssertEqual(text(3), "3")
        XCTAssertEqual(text(-2), "-2")
        XCTAssertEqual(text(-0.0), "0")
        XCTAssertEqual(text(1.5), "1.5")
        XCTAssertEqual(text(.nan), "null")
        XCTAssertEqual(text(.infinity), "null")
        XCTAssertEqual(text(-.infinity), "null")
        // Whatever is written for finite doubles parses back to the same number.
        for d in [0.1, -0.25, 1e-7, Double.leastNonzeroMagnitude, 1e15, 1e300, -1.7976931348623157e308, 123456789.123, 1e21, 9007199254740992] {
            let back = try parseJSON(text(d))
            switch back {
            case .double(let x): XCTAssertEqual(x, d, text(d))
            case .int(let x): XCTAssertEqual(Double(x), d, text(d))
            default: XCTFail("\(d) → \(text(d))")
            }
        }
    }

    func testCommasInContainers() {
        var w = JSONWriter()
        w.beginArray()
        w.int(1); w.double(2); w.double(2.5); w.string("x"); w.bool(true); w.null()
        w.beginObject(); w.key("a"); w.beginArray(); w.endArray(); w.key("b"); w.beginObject(); w.endObject(); w.endObject()
        w.beginArray(); w.endArray()
        w.endArray()
        XCTAssertEqual(w.string, #"[1,2,2.5,"x",true,null,{"a":[],"b":{}},[]]"#)
        w.newline()
        w.int(5)
        XCTAssertEqual(w.string, #"[1,2,2.5,"x",true,null,{"a":[],"b":{}},[]]"# + "\n5")
    }

    /// Random JSONValue trees: write, parse, compare. Doubles are generated non-integral (the
    /// writer prints integral doubles as integers, which read back as `.int`).
    func testValueRoundTripRandom() throws {
        var rng = SplitMix64(seed: 0x5EED_0002)
        func value(_ depth: Int) -> JSONValue {
            switch rng.int(0 ..< (depth > 5 ? 5 : 7)) {
            case 0: return .null
            case 1: return .bool(rng.chance(0.5))
            case 2: return .int(rng.chance(0.1) ? rng.pick([Int.min, Int.max, 0]) : rng.int(-1_000_000 ... 1_000_000))
            case 3:
                var d = Double.random(in: -1e6 ... 1e6, using: &rng)
                if d == d.rounded() { d += 0.5 }
                if rng.chance(0.2) { d *= rng.pick([1e-300, 1e-20, 1e20, 1e300]) }
                return .double(d)
            case 4: return .string(randomText(&rng, maxLength: 10))
            case 5: return .array((0 ..< rng.int(0 ... 4)).map { _ in value(depth + 1) })
            default:
                var o = JSONObject()
                for _ in 0 ..< rng.int(0 ... 4) { o.fields.append((key: randomText(&rng, maxLength: 4), value: value(depth + 1))) }
                return .object(o)
            }
        }
        for i in 0 ..< 1500 {
            let v = value(0)
            let text = v.jsonText
            XCTAssertFalse(text.contains("\n"), "case \(i)")
            XCTAssertEqual(try parseJSON(text), v, "case \(i): \(text)")
            // And it is a fixed point: writing what was read gives the same text.
            XCTAssertEqual(try parseJSON(text).jsonText, text, "case \(i)")
        }
    }

    func testJSONObjectSubscript() {
        var o: JSONObject = ["a": .int(1), "b": .int(2)]
        o["a"] = .string("x")
        o["c"] = .null
        o["b"] = nil
        XCTAssertEqual(o.fields.map(\.key), ["a", "c"])
        XCTAssertEqual(JSONValue.object(o)["a"], .string("x"))
        XCTAssertEqual(JSONValue.double(4).intValue, 4)
        XCTAssertNil(JSONValue.double(4.5).intValue)
    }
}
