import XCTest
@testable import CollabProtocol
import CollabOT

final class MessageTests: XCTestCase {

    func op(_ json: String) -> TextOperation { try! TextOperation(json: json) }

    /// Each type with its typical fields: write → decode gives the same message, and the text is
    /// what the schema says.
    func testRoundTripEveryType() throws {
        var samples: [Message] = []

        var hello = Message(.hello)
        hello.user = "ann"; hello.name = "Ann É"; hello.token = "t0k\"en"; hello.client = "c1"; hello.since = 12
        samples.append(hello)

        var welcome = Message(.welcome)
        welcome.room = "doc"; welcome.client = "c1"; welcome.rev = 3; welcome.doc = "line 1\nline 2 😀\n"
        samples.append(welcome)

        var opm = Message(.op)
        opm.room = "doc"; opm.user = "ann"; opm.client = "c1"; opm.seq = 7; opm.base = 2; opm.rev = 3
        opm.op = op(#"[3,"hé😀",{"d":2}]"#); opm.ts = 1_700_000_000_123
        samples.append(opm)

        var ack = Message(.ack)
        ack.room = "doc"; ack.seq = 7; ack.rev = 3
        samples.append(ack)

        var presence = Message(.presence)
        presence.room = "doc"; presence.user = "ann"; presence.name = "Ann"; presence.color = "#e6194b"
        presence.cursor = Selection(anchor: 2, head: 5); presence.typing = true; presence.rev = 3
        samples.append(presence)

        var join = Message(.join)
        join.room = "doc"; join.user = "bob"; join.name = "Bob"; join.color = "#3cb44b"; join.client = "c2"
        samples.append(join)

        var leave = Message(.leave)
        leave.room = "doc"; leave.user = "bob"; leave.client = "c2"
        samples.append(leave)
        samples.append(Message(.leave))

        samples.append(Message.error(code: .badOp, "op does not fit", seq: 7, room: "doc", fatal: false))
        samples.append(Message.error(code: .unauthorized, "bad token", fatal: true))

        var snapshot = Message(.snapshot)
        snapshot.rev = 0; snapshot.doc = ""
        samples.append(snapshot)

        var roster = Message(.roster)
        roster.room = "doc"
        var m1 = Message(.join); m1.user = "ann"; m1.name = "Ann"; m1.color = "#111111"; m1.client = "c1"
        var m2 = Message(.join); m2.user = "bob"; m2.client = "c2"; m2.cursor = Selection(caret: 4)
        roster.members = [m1, m2]
        samples.append(roster)
        var emptyRoster = Message(.roster)
        emptyRoster.members = []
        samples.append(emptyRoster)

        var event = Message(.event)
        event.room = "doc"; event.user = "ann"
        event.extra = ["zeta": .int(1), "alpha": .object(["x": .array([.null, .double(1.5), .string("é")])]), "mid": .bool(false)]
        samples.append(event)

        var insert = Message(.insert); insert.pos = 5; insert.text = "hi"
        var delete = Message(.delete); delete.pos = 5; delete.len = 2
        var replace = Message(.replace); replace.text = "all new"
        var cursor = Message(.cursor); cursor.anchor = 3; cursor.head = 4
        var typing = Message(.typing); typing.typing = false
        var status = Message(.hello); status.status = "away"
        samples += [insert, delete, replace, Message(.undo), Message(.redo), cursor, typing, status]

        XCTAssertEqual(Set(samples.map(\.type)), Set(MessageType.allCases), "a sample of every type")

        for m in samples {
            let text = m.json
            XCTAssertFalse(text.contains("\n"))
            XCTAssertEqual(try Message.decode(text), m, text)
            XCTAssertEqual(try Message.decode(text).json, text)
        }

        XCTAssertEqual(opm.json, #"{"type":"op","room":"doc","user":"ann","client":"c1","seq":7,"base":2,"rev":3,"op":[3,"hé😀",{"d":2}],"ts":1700000000123}"#)
        XCTAssertEqual(presence.json, ##"{"type":"presence","room":"doc","user":"ann","name":"Ann","color":"#e6194b","rev":3,"cursor":{"anchor":2,"head":5},"typing":true}"##)
        XCTAssertEqual(Message.error(code: .badOp, "x", seq: 1).json, #"{"type":"error","seq":1,"code":"bad-op","message":"x","fatal":false}"#)
        XCTAssertEqual(event.json, #"{"type":"event","room":"doc","user":"ann","zeta":1,"alpha":{"x":[null,1.5,"é"]},"mid":false}"#)
    }

    func testDecodeFromWireText() throws {
        let m = try Message.decode(#"  {"op":[1,"x"],"rev":4,"type":"op","client":"c","seq":2,"base":3,"ts":1.7e12}  "#)
        XCTAssertEqual(m.type, .op)
        XCTAssertEqual(m.op, op(#"[1,"x"]"#))
        XCTAssertEqual(m.rev, 4); XCTAssertEqual(m.seq, 2); XCTAssertEqual(m.base, 3)
        XCTAssertEqual(m.ts, 1_700_000_000_000)
        // Escaped key and type spellings are the same fields.
        let e = try Message.decode(#"{"typ\u0065":"\u006fp","r\u0065v":1}"#)
        XCTAssertEqual(e.type, .op); XCTAssertEqual(e.rev, 1)
        // Null means absent.
        let n = try Message.decode(#"{"type":"ack","seq":null,"room":null,"op":null,"cursor":null}"#)
        XCTAssertEqual(n, Message(.ack))
        // {"d":"text"} counts scalars, and ops are normalized.
        XCTAssertEqual(try Message.decode(#"{"type":"op","op":[1,1,"a","b",{"d":"é😀"},{"d":1},2]}"#).op,
                       op(#"[2,"ab",{"d":3}]"#))
        // A cursor with only one end is a caret.
        XCTAssertEqual(try Message.decode(#"{"type":"presence","cursor":{"head":4,"other":[1]}}"#).cursor, Selection(caret: 4))
        // Roster members without a type are joins.
        let r = try Message.decode(#"{"type":"roster","members":[{"user":"a"},{"type":"join","user":"b"}]}"#)
        XCTAssertEqual(r.members?.map(\.type), [.join, .join])
        XCTAssertEqual(r.members?.map(\.user), ["a", "b"])
    }

    func testUnknownFieldsPreservedInOrder() throws {
        let text = #"{"type":"event","z":1,"room":"r","a":{"k":[1,2,{"x":null}]},"m":"é","b":-2.5,"op":[1,"x"]}"#
        let m = try Message.decode(text)
        XCTAssertEqual(m.extra?.fields.map(\.key), ["z", "a", "m", "b"])
        XCTAssertEqual(m.extra?["a"], .object(["k": .array([.int(1), .int(2), .object(["x": .null])])]))
        XCTAssertEqual(m.json, #"{"type":"event","room":"r","op":[1,"x"],"z":1,"a":{"k":[1,2,{"x":null}]},"m":"é","b":-2.5}"#)
    }

    // MARK: Errors

    func assertDecodeError(_ text: String, _ expected: MessageError, file: StaticString = #filePath, line: UInt = #line) {
        assertDecodeError(Array(text.utf8), expected, file: file, line: line)
    }

    func assertDecodeError(_ bytes: [UInt8], _ expected: MessageError, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let m = try decodeMessage(bytes)
            XCTFail("accepted \(String(decoding: bytes, as: UTF8.self)) as \(m)", file: file, line: line)
        } catch {
            switch (error, expected) {
            case (.syntax, .syntax): break // the reason is checked by the scanner's tests
            case let (.badField(f, _), .badField(g, _)): XCTAssertEqual(f, g, "\(error)", file: file, line: line)
            default: XCTAssertEqual(error, expected, file: file, line: line)
            }
            XCTAssertFalse(error.description.isEmpty)
        }
    }

    var anySyntax: MessageError { .syntax(JSONSyntaxError(reason: "", offset: 0)) }

    func testMissingAndUnknownType() {
        assertDecodeError(#"{}"#, .missingType)
        assertDecodeError(#"{"rev":1,"op":[1]}"#, .missingType)
        assertDecodeError(#"{"type":"bogus"}"#, .unknownType("bogus"))
        assertDecodeError(#"{"type":"bogus","rev":1}"#, .unknownType("bogus"))
        assertDecodeError(#"{"rev":1,"type":"OP"}"#, .unknownType("OP"))
        assertDecodeError(#"{"type":""}"#, .unknownType(""))
        assertDecodeError(#"{"type":"b\u00f6gus"}"#, .unknownType("bögus"))
        assertDecodeError(#"{"type":"bögus"}"#, .unknownType("bögus"))
        assertDecodeError(#"{"type":1}"#, .badField("type", ""))
        assertDecodeError(#"{"type":["op"]}"#, .badField("type", ""))
        assertDecodeError(#"{"type":null}"#, .badField("type", ""))
        XCTAssertEqual(MessageError.unknownType("bogus").description, #"unknown message type "bogus""#)
    }

    func testNotAnObject() {
        for text in ["[1]", "\"op\"", "1", "null", "true", "[]"] { assertDecodeError(text, .notAnObject) }
        assertDecodeError("", anySyntax)
        assertDecodeError("   ", anySyntax)
        assertDecodeError("[1] x", anySyntax)
        assertDecodeError(#"{"type":"op"} {}"#, anySyntax)
        assertDecodeError(#"{"type":"op""#, anySyntax)
        assertDecodeError([0x7B, 0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D], anySyntax)
    }

    func testWrongFieldTypes() {
        assertDecodeError(#"{"type":"op","seq":"1"}"#, .badField("seq", ""))
        assertDecodeError(#"{"type":"op","seq":1.5}"#, .badField("seq", ""))
        assertDecodeError(#"{"type":"op","seq":true}"#, .badField("seq", ""))
        assertDecodeError(#"{"type":"op","seq":99999999999999999999}"#, .badField("seq", ""))
        assertDecodeError(#"{"type":"op","base":[]}"#, .badField("base", ""))
        assertDecodeError(#"{"type":"op","rev":"3"}"#, .badField("rev", ""))
        assertDecodeError(#"{"type":"op","ts":"now"}"#, .badField("ts", ""))
        assertDecodeError(#"{"type":"op","ts":1e300}"#, .badField("ts", ""))
        assertDecodeError(#"{"type":"op","room":5}"#, .badField("room", ""))
        assertDecodeError(#"{"type":"welcome","doc":{"text":"x"}}"#, .badField("doc", ""))
        assertDecodeError(#"{"type":"presence","typing":"yes"}"#, .badField("typing", ""))
        assertDecodeError(#"{"type":"error","fatal":1}"#, .badField("fatal", ""))
        assertDecodeError(#"{"type":"roster","members":{}}"#, .badField("members", ""))
        assertDecodeError(#"{"type":"roster","members":[1]}"#, .badField("members", ""))
        // A member's error is the roster's `members` field's (the roster's own type is fine).
        assertDecodeError(#"{"type":"roster","members":[{"type":"nope"}]}"#, .badField("members", ""))
    }

    func testBadOps() {
        assertDecodeError(#"{"type":"op","op":{"d":1}}"#, .badField("op", ""))
        assertDecodeError(#"{"type":"op","op":"x"}"#, .badField("op", ""))
        assertDecodeError(#"{"type":"op","op":3}"#, .badField("op", ""))
        for bad in [#"[0]"#, #"[-1]"#, #"[1.5]"#, #"[1e2]"#, #"[""]"#, #"[1,""]"#, #"[{"d":0}]"#, #"[{"d":-2}]"#,
                    #"[{"d":""}]"#, #"[{"d":1.5}]"#, #"[{"x":1}]"#, #"[{}]"#, #"[{"d":1,"e":2}]"#] {
            assertDecodeError(#"{"type":"op","op":"# + bad + "}", .badField("op", ""))
            XCTAssertThrowsError(try TextOperation(json: bad), bad)
        }
        for bad in [#"[null]"#, #"[true]"#, #"[[1]]"#, #"[1,]"#, #"[{"d":null}]"#, #"["\ud800"]"#] {
            XCTAssertThrowsError(try Message.decode(#"{"type":"op","op":"# + bad + "}"), bad)
            XCTAssertThrowsError(try TextOperation(json: bad), bad)
        }
        // The error names the component.
        do {
            _ = try Message.decode(#"{"type":"op","op":[1,"a",0]}"#)
            XCTFail()
        } catch {
            XCTAssertTrue(error.description.contains("op component 2"), error.description)
        }
    }

    func testBadCursor() {
        for bad in [#""3""#, #"[1,2]"#, #"3"#, #"{}"#, #"{"anchor":-1,"head":0}"#, #"{"anchor":1,"head":-1}"#,
                    #"{"anchor":"1","head":1}"#, #"{"anchor":1.5,"head":1}"#, #"{"x":1}"#] {
            XCTAssertThrowsError(try Message.decode(#"{"type":"presence","cursor":"# + bad + "}"), bad) { error in
                guard case .badField(let f, _) = error as? MessageError else { return XCTFail("\(bad): \(error)") }
                XCTAssertTrue(f.hasPrefix("cursor"), "\(bad): \(f)")
            }
        }
    }

    func testErrorCodes() throws {
        for code in ErrorCode.allCases {
            let m = Message.error(code: code, "why", room: "r")
            XCTAssertEqual(try Message.decode(m.json).code, code.rawValue)
            XCTAssertEqual(ErrorCode(rawValue: code.rawValue), code)
        }
    }
}
