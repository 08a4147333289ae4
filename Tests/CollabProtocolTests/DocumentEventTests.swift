import CollabTestSupport
import XCTest
@testable import CollabProtocol
import CollabOT

/// `DocumentEvent.decode` is the fast path of `collab-ot-apply apply`; it must read `type`,
/// `rev`, `op` and `doc` exactly as `Message.decode` does.
final class DocumentEventTests: XCTestCase {

    func randomMessage(_ rng: inout SplitMix64) -> Message {
        var m = Message(rng.pick(MessageType.allCases))
        if rng.chance(0.5) { m.room = randomText(&rng, maxLength: 6) }
        if rng.chance(0.5) { m.user = randomText(&rng, maxLength: 6) }
        if rng.chance(0.4) { m.client = randomText(&rng, maxLength: 6) }
        if rng.chance(0.4) { m.seq = rng.int(0 ... 1000) }
        if rng.chance(0.4) { m.base = rng.int(0 ... 1000) }
        if rng.chance(0.6) { m.rev = rng.chance(0.1) ? rng.pick([Int.max, Int.min, -1]) : rng.int(0 ... 1000) }
        if rng.chance(0.6) { m.op = randomOp(&rng, length: rng.int(0 ... 20)) }
        if rng.chance(0.4) { m.doc = randomText(&rng, maxLength: 30) }
        if rng.chance(0.3) { m.ts = rng.int(0 ... 2_000_000_000_000) }
        if rng.chance(0.3) { m.cursor = Selection(anchor: rng.int(0 ... 50), head: rng.int(0 ... 50)) }
        if rng.chance(0.2) { m.typing = rng.chance(0.5) }
        if rng.chance(0.2) { m.fatal = rng.chance(0.5) }
        if rng.chance(0.2) {
            var member = Message(.join)
            member.user = randomText(&rng, maxLength: 4)
            m.members = [member]
        }
        if rng.chance(0.3) {
            m.extra = ["x": .array([.int(1), .string(randomText(&rng)), .object(["rev": .int(5), "op": .string("no")])]),
                       "doc2": .double(0.5)]
        }
        return m
    }

    func testAgreesWithMessageDecodeOnRandomMessages() throws {
        var rng = SplitMix64(seed: 0x5EED_0003)
        for i in 0 ..< 3000 {
            let m = randomMessage(&rng)
            var text = m.json
            if rng.chance(0.2) { text = "  " + text + " \t" }
            let full = try Message.decode(text)
            let event = try decodeEvent(text)
            XCTAssertEqual(event.type, full.type, "case \(i): \(text)")
            XCTAssertEqual(event.rev, full.rev, "case \(i): \(text)")
            XCTAssertEqual(event.op, full.op, "case \(i): \(text)")
            XCTAssertEqual(event.doc, full.doc, "case \(i): \(text)")
            XCTAssertEqual(full, m, "case \(i): \(text)")
        }
    }

    func testBareArrayIsAnOp() throws {
        let e = try decodeEvent(#" [2,"x",{"d":1}] "#)
        XCTAssertEqual(e.type, .op)
        XCTAssertEqual(e.op, try TextOperation(json: #"[2,"x",{"d":1}]"#))
        XCTAssertNil(e.rev)
        XCTAssertEqual(try decodeEvent("[]").op, TextOperation())
        XCTAssertThrowsError(try decodeEvent("[1] 2"))
        XCTAssertThrowsError(try decodeEvent("[0]"))
    }

    /// Bad lines that concern what both decoders read are rejected by both, with the same kind of
    /// error. (Fields only `Message` reads, like `seq`, are only checked to be valid JSON here.)
    func testRejectsTheSameBadLines() {
        let texts: [String] = [
            "", " ", "{", "}", "x", "nul", "\"op\"", "1", "null", "{} {}", "{\"type\":\"op\"} x",
            #"{"rev":1}"#, #"{"type":"bogus"}"#, #"{"type":"bogus","rev":2,"op":[1]}"#, #"{"type":"b\u00e4d"}"#,
            #"{"type":1}"#, #"{"type":null}"#, #"{"type":"op","rev":"1"}"#, #"{"type":"op","rev":1.5}"#,
            #"{"type":"op","rev":1e30}"#, #"{"type":"op","op":{"d":1}}"#, #"{"type":"op","op":"x"}"#,
            #"{"type":"op","op":[0]}"#, #"{"type":"op","op":[-3]}"#, #"{"type":"op","op":[2.5]}"#,
            #"{"type":"op","op":[""]}"#, #"{"type":"op","op":[{"d":0}]}"#, #"{"type":"op","op":[{"q":1}]}"#,
            #"{"type":"op","op":[null]}"#, #"{"type":"welcome","doc":7}"#, #"{"type":"welcome","doc":"\ud800"}"#,
            #"{"type":"op","x":[1,]}"#, #"{"type":"op","x":01}"#, #"{"type":"op","x":1e999}"#, #"{"type":"op","x":'a'}"#,
            #"{"type":"op","x":NaN}"#, #"{"type":"op","x":"a"#, #"{"type":"op",}"#,
            String(repeating: "{\"a\":", count: 70) + "1" + String(repeating: "}", count: 70),
            #"{"type":"op","x":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}",
        ]
        let raw: [[UInt8]] = [
            [0x7B, 0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3A, 0x22, 0x6F, 0x70, 0xFF, 0x22, 0x7D],            // {"type":"op\xFF"}
            Array(#"{"type":"op","x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8),                            // invalid UTF-8 in a skipped field
            Array(#"{"type":"op","x":""#.utf8) + [0xC0, 0x80] + Array(#""}"#.utf8),                            // overlong
            Array(#"{"type":"welcome","doc":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8),               // encoded surrogate
            Array(#"{"type":"op","x":"#.utf8) + [0xFF] + Array("}".utf8),                                      // 0xFF outside strings
            Array(#"{"type":"op","x":"a"#.utf8) + [0x0A] + Array(#""}"#.utf8),                                  // raw newline in a string
        ]
        let bad = texts.map { Array($0.utf8) } + raw
        for line in bad {
            let shown = String(decoding: line, as: UTF8.self).prefix(80).debugDescription
            var full: MessageError?
            var fast: MessageError?
            do { _ = try decodeMessage(line) } catch { full = error }
            do { _ = try decodeEvent(line) } catch { fast = error }
            guard let full, let fast else {
                XCTFail("\(shown): Message.decode \(full.map { "\($0)" } ?? "accepted"), DocumentEvent.decode \(fast.map { "\($0)" } ?? "accepted")")
                continue
            }
            switch (full, fast) {
            case (.syntax, .syntax), (.notAnObject, .notAnObject), (.missingType, .missingType): break
            case let (.unknownType(a), .unknownType(b)): XCTAssertEqual(a, b, shown)
            case let (.badField(a, _), .badField(b, _)): XCTAssertEqual(a, b, shown)
            // Both reject; they may meet trailing garbage and a missing type in either order.
            case (.missingType, .syntax), (.syntax, .missingType): break
            default: XCTFail("\(shown): \(full) vs \(fast)")
            }
        }
    }

    func testErrorsNameTheProblem() {
        XCTAssertThrowsError(try decodeEvent(#"{"type":"bogus","rev":1}"#)) {
            XCTAssertEqual($0 as? MessageError, .unknownType("bogus"))
        }
        XCTAssertThrowsError(try decodeEvent(#"{"rev":1}"#)) { XCTAssertEqual($0 as? MessageError, .missingType) }
        XCTAssertThrowsError(try decodeEvent(#""x""#)) { XCTAssertEqual($0 as? MessageError, .notAnObject) }
        XCTAssertThrowsError(try decodeEvent(#"{"type":"op","op":[1,0]}"#)) {
            XCTAssertEqual("\($0)", #"field "op": op component 1: a keep count must be positive, got 0"#)
        }
    }
}
