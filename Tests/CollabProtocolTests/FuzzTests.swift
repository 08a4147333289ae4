import CollabTestSupport
import XCTest
import CollabOT
@testable import CollabProtocol

/// Seeded fuzzing that runs with every `swift test`: mutated valid messages, random bytes, deep
/// nesting, huge numbers, invalid UTF-8, and random ops against random documents, checked with
/// the properties of the libFuzzer targets (FuzzChecks.swift; Tests/Fuzz/fuzz.sh runs those
/// coverage-guided). A failure prints the input and `COLLAB_TEST_SEED`/`COLLAB_TEST_CASE` to
/// replay it; a trap prints the same from the crash handler of `forEachCase`.
final class FuzzTests: XCTestCase {
    static let cases = 2_000

    func testMessageLinesSurviveSplittingDecodingAndReencoding() {
        forEachCase("fuzz-message", count: Self.cases) { rng, label in
            var stream: [UInt8] = []
            for _ in 0 ..< rng.int(1 ... 4) {
                stream += Self.hostileLine(&rng)
                stream += rng.pick([[0x0A], [0x0D, 0x0A], [0x0A, 0x20, 0x09, 0x0A], []])
            }
            check(stream, label, FuzzChecks.message)
        }
    }

    func testPartialDecodersAgreeWithMessageDecode() {
        forEachCase("fuzz-partial", count: Self.cases) { rng, label in
            check(Self.hostileLine(&rng), label, FuzzChecks.partial)
        }
    }

    func testDecodedOpsKeepTheOTProperties() {
        forEachCase("fuzz-ot", count: Self.cases) { rng, label in
            let doc = randomText(&rng, maxLength: 30)
            var lines = [Array(doc.utf8)]
            let length = doc.unicodeScalars.count
            for _ in 0 ..< 2 {
                var op = Array(Self.opJSON(&rng, length: rng.chance(0.8) ? length : rng.int(0 ... 40)).utf8)
                if rng.chance(0.3) { op = Self.mutate(op, &rng) }
                lines.append(op)
            }
            lines.append(Array(String(rng.pick([0, length, rng.int(0 ... 50), Int.max, Int.max - 1])).utf8))
            let input = Array(lines.joined(separator: [0x0A]))
            check(input, label, FuzzChecks.operations)
        }
    }

    func check(_ input: [UInt8], _ label: CaseLabel, _ property: (UnsafeBufferPointer<UInt8>) throws(FuzzFailure) -> Void) {
        input.withUnsafeBufferPointer { buf in
            do throws(FuzzFailure) { try property(buf) } catch {
                XCTFail("\(label): \(error)\n  input (\(input.count) bytes): \(FuzzChecks.show(input))\n  bytes: \(input.prefix(200).map { String($0, radix: 16) }.joined(separator: " "))")
            }
        }
    }

    // MARK: Generators

    /// Valid lines of every shape the schema has, the start of most mutations.
    static let validLines: [String] = [
        #"{"type":"hello","user":"ann","name":"Ann","token":"t","client":"c1","since":3,"observer":false}"#,
        #"{"type":"welcome","room":"r","client":"c1","rev":4,"doc":"hé\nllo\u0000😀"}"#,
        #"{"type":"op","client":"c1","seq":1,"base":0,"op":[5," world",{"d":2}]}"#,
        #"{"type":"op","room":"r","user":"u","client":"c","seq":9,"rev":10,"op":["x",{"d":"abc"}],"ts":1732890000123}"#,
        #"{"type":"ack","room":"r","seq":1,"rev":5}"#,
        #"{"type":"presence","room":"r","user":"u","cursor":{"anchor":3,"head":5},"typing":true,"rev":2,"status":"away"}"#,
        ##"{"type":"join","room":"r","user":"u","name":"U","color":"#ff0000","initials":"UU","client":"c"}"##,
        #"{"type":"error","code":"bad-op","message":"no","seq":4,"fatal":true}"#,
        ##"{"type":"roster","room":"r","members":[{"user":"a"},{"type":"join","user":"b","color":"#123456"}]}"##,
        #"{"type":"event","event":{"kind":"ping","n":[1,2.5,-3e10,true,null,"s",1.0]},"x":-0.0}"#,
        #"{"type":"insert","pos":0,"text":"hi"}"#, #"{"type":"delete","pos":5,"len":2}"#,
        #"{"type":"cursor","anchor":3,"head":3}"#, #"{"type":"undo"}"#, #"[5," world",{"d":2}]"#,
    ]

    static let hostileTokens: [[UInt8]] = [
        Array("9223372036854775807".utf8), Array("-9223372036854775808".utf8), Array("99999999999999999999999".utf8),
        Array("1e999".utf8), Array("-0.0".utf8), Array("1.0".utf8), Array("5e-324".utf8), Array("01".utf8),
        Array(#""\ud800""#.utf8), Array(#""\udc00\ud800""#.utf8), Array(#""\ud83d\ude00""#.utf8), Array(#""\u0000""#.utf8),
        [0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x00], [0x0A], [0x0D],
        Array("null".utf8), Array("true".utf8), Array("[".utf8), Array("]".utf8), Array("{".utf8), Array("}".utf8),
        Array(",".utf8), Array(":".utf8), Array("\"".utf8), Array("\\".utf8), Array(#"{"d":1}"#.utf8),
        Array(#""type":"op""#.utf8), Array(#""members":[{}]"#.utf8), Array(#""op":[1,"x"]"#.utf8),
    ]

    static func hostileLine(_ rng: inout SplitMix64) -> [UInt8] {
        switch rng.int(0 ..< 10) {
        case 0: return (0 ..< rng.int(0 ... 40)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
        case 1: return nested(&rng)
        case 2:
            let digits = (0 ..< rng.int(1 ... 400)).map { _ in UInt8(0x30 + rng.int(0 ... 9)) }
            let number = (rng.chance(0.5) ? [UInt8(ascii: "-")] : []) + digits + (rng.chance(0.3) ? Array("e\(rng.int(-400 ... 400))".utf8) : [])
            return Array(#"{"type":"op","\#(rng.pick(["rev", "seq", "ts", "x"]))":"#.utf8) + number + [UInt8(ascii: "}")]
        case 3:
            var m = Message(rng.pick(MessageType.allCases))
            m.room = randomText(&rng)
            m.doc = randomText(&rng, maxLength: 20)
            m.rev = rng.chance(0.5) ? rng.int(0 ... 100) : nil
            m.op = randomOp(&rng, length: rng.int(0 ... 10))
            return Array(m.json.utf8)
        default:
            var line = Array(rng.pick(validLines).utf8)
            for _ in 0 ..< rng.int(1 ... 3) { line = mutate(line, &rng) }
            return line
        }
    }

    static func nested(_ rng: inout SplitMix64) -> [UInt8] {
        let depth = rng.int(1 ... 200)
        let open = rng.chance(0.5) ? Array("[".utf8) : Array(#"{"a":"#.utf8)
        let close = open.count == 1 ? Array("]".utf8) : Array("}".utf8)
        let inner = Array(repeating: open, count: depth).joined() + Array("1".utf8) + Array(repeating: close, count: rng.chance(0.9) ? depth : rng.int(0 ... depth)).joined()
        return Array(rng.pick([#"{"type":"event","e":"#, #"{"type":"op","op":"#, ""]).utf8) + inner + (rng.chance(0.5) ? Array("}".utf8) : [])
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var line = input
        let at = rng.int(0 ... line.count)
        switch rng.int(0 ..< 6) {
        case 0 where !line.isEmpty: line[min(at, line.count - 1)] ^= UInt8(1) << UInt8(rng.int(0 ... 7))
        case 1: line.removeSubrange(at...) // truncated
        case 2: line.insert(contentsOf: rng.pick(hostileTokens), at: at)
        case 3 where !line.isEmpty:
            let end = min(line.count, at + rng.int(1 ... 8))
            line.removeSubrange(min(at, end) ..< end)
        case 4:
            let end = min(line.count, at + rng.int(1 ... 16))
            line.insert(contentsOf: line[min(at, end) ..< end], at: at)
        default:
            // A hostile token in place of a value: after a colon or comma.
            if let colon = line.indices.filter({ line[$0] == UInt8(ascii: ":") || line[$0] == UInt8(ascii: ",") }).randomElement(using: &rng) {
                line.insert(contentsOf: rng.pick(hostileTokens), at: colon + 1)
            }
        }
        return line
    }

    /// An op as JSON: mostly one that fits `length`, sometimes with hostile counts and components.
    static func opJSON(_ rng: inout SplitMix64, length: Int) -> String {
        if rng.chance(0.6) { return randomOp(&rng, length: length).json }
        var parts: [String] = []
        for _ in 0 ..< rng.int(0 ... 6) {
            switch rng.int(0 ..< 8) {
            case 0: parts.append(String(rng.pick([1, 2, length, Int.max, Int.max - 1, 1 << 53, 0, -1])))
            case 1: parts.append(#"{"d":\#(rng.pick([1, length, Int.max, 1 << 53, 0]))}"#)
            case 2: parts.append(#"{"d":\#(JSONValue.string(randomText(&rng, maxLength: 4)).jsonText)}"#)
            case 3: parts.append(rng.pick([#""""#, "null", "[]", "1.5", #"{}"#, #"{"e":1}"#, #""\ud800""#]))
            default: parts.append(JSONValue.string(randomText(&rng, maxLength: 4).isEmpty ? "x" : randomText(&rng, maxLength: 4)).jsonText)
            }
        }
        return "[" + parts.joined(separator: ",") + "]"
    }
}

extension JSONValue {
    var jsonText: String {
        var w = JSONWriter()
        w.value(self)
        return w.string
    }
}
