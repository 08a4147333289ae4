import CollabOT
import CollabPresence
import CollabProtocol
import CollabTestSupport
import XCTest

final class PresenceFeedTests: XCTestCase {
    /// Feeds NDJSON lines, each at its own time (`ts` if it has one, else the time before), and
    /// returns the lines written, as compact JSON.
    func run(_ feed: inout PresenceFeed, _ text: String, start: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        var written: [Message] = []
        var now = start
        for l in text.split(separator: "\n") {
            let m = try Message.decode(String(l))
            now = m.ts ?? now
            if let due = feed.nextTypingExpiry, due <= now { _ = feed.expireTyping(now: now, into: &written) }
            let outcome = feed.handle(m, now: now, into: &written)
            XCTAssertNil(outcome.problem, file: file, line: line)
        }
        return written.map(\.json)
    }

    func feed(document: Bool = false, room: String? = nil, typingTimeout: Int = 5_000) -> PresenceFeed {
        var o = PresenceFeed.Options()
        o.followDocument = document
        o.room = room
        o.typingTimeout = typingTimeout
        return PresenceFeed(options: o)
    }

    func testJoinPresenceLeaveAreWrittenWholeAndOnlyWhenSomethingChanged() throws {
        var f = feed()
        let out = try run(&f, """
        {"type":"join","room":"r","user":"ann","name":"Ann","color":"#c62828","initials":"A","client":"a"}
        {"type":"presence","room":"r","client":"a","status":"editing","ts":5}
        {"type":"presence","room":"r","client":"a","status":"editing","ts":6}
        {"type":"join","room":"r","user":"ann","name":"Ann","color":"#c62828","initials":"A","client":"a"}
        {"type":"leave","room":"r","client":"a","ts":9}
        {"type":"leave","room":"r","client":"a","ts":10}
        """)
        XCTAssertEqual(out, [
            ##"{"type":"join","room":"r","user":"ann","name":"Ann","color":"#c62828","initials":"A","client":"a","typing":false}"##,
            // Partial on the wire, whole in the output.
            ##"{"type":"presence","room":"r","user":"ann","name":"Ann","color":"#c62828","initials":"A","client":"a","typing":false,"status":"editing","ts":5}"##,
            ##"{"type":"leave","room":"r","user":"ann","name":"Ann","color":"#c62828","initials":"A","client":"a","ts":9}"##,
        ])
    }

    func testAFirstPresenceFromAStreamPickedUpMidwayIsAJoin() throws {
        var f = feed()
        let out = try run(&f, ##"{"type":"presence","room":"r","user":"bob","color":"#0097a7","client":"b","cursor":{"anchor":3,"head":3},"rev":7,"typing":false,"ts":1}"##)
        XCTAssertEqual(out, [##"{"type":"join","room":"r","user":"bob","color":"#0097a7","client":"b","rev":7,"cursor":{"anchor":3,"head":3},"typing":false,"ts":1}"##])
    }

    func testTypingLinesMarkEveryStartAndStop() throws {
        var f = feed(typingTimeout: 1_000)
        let out = try run(&f, """
        {"type":"join","room":"r","user":"ann","client":"a","typing":true,"ts":100}
        {"type":"presence","room":"r","client":"a","typing":true,"ts":500}
        {"type":"presence","room":"r","client":"a","typing":false,"ts":600}
        {"type":"presence","room":"r","client":"a","typing":true,"ts":700}
        {"type":"op","room":"r","rev":1,"op":["x"],"ts":2000}
        {"type":"presence","room":"r","client":"a","typing":true,"ts":2100}
        {"type":"leave","room":"r","client":"a","ts":2200}
        """).filter { $0.contains(#""type":"typing""#) }
        XCTAssertEqual(out, [
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":true,"ts":100}"#,
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":false,"ts":600}"#,
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":true,"ts":700}"#,
            // Ran out here (700 + 1000), stamped with when it ran out, before the op at 2000.
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":false,"ts":1700}"#,
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":true,"ts":2100}"#,
            // Leaving while typing is a stop.
            #"{"type":"typing","room":"r","user":"ann","client":"a","typing":false,"ts":2200}"#,
        ])
        XCTAssertNil(f.nextTypingExpiry)
    }

    func testExpiryWritesTheWholePresenceThenTheStop() throws {
        var f = feed(typingTimeout: 1_000)
        var out: [Message] = []
        var m = Message(.presence)
        m.room = "r"
        m.client = "a"
        m.user = "ann"
        m.typing = true
        _ = f.handle(m, now: 50, into: &out)
        XCTAssertEqual(f.nextTypingExpiry, 1_050)
        out = []
        XCTAssertEqual(f.expireTyping(now: 1_049, into: &out), [])
        XCTAssertEqual(f.expireTyping(now: 3_000, into: &out), [0])
        XCTAssertEqual(out.map(\.type), [.presence, .typing])
        XCTAssertEqual(out.map(\.ts), [1_050, 1_050])
        XCTAssertEqual(out[0].typing, false)
    }

    func testARosterLineWritesOnlyTheDifferences() throws {
        var f = feed()
        let out = try run(&f, """
        {"type":"welcome","room":"r","client":"a","rev":0,"doc":""}
        {"type":"roster","room":"r","members":[{"user":"ann","client":"a"},{"user":"bob","client":"b","typing":true}]}
        {"type":"welcome","room":"r","client":"a","rev":0,"since":0}
        {"type":"roster","room":"r","members":[{"user":"ann","client":"a"},{"user":"bob","client":"b","typing":true}]}
        {"type":"roster","room":"r","members":[{"user":"ann","client":"a","status":"away"},{"user":"carol","client":"c"}]}
        """)
        XCTAssertEqual(out, [
            #"{"type":"join","room":"r","user":"ann","client":"a","typing":false}"#,
            #"{"type":"join","room":"r","user":"bob","client":"b","typing":true}"#,
            #"{"type":"typing","room":"r","user":"bob","client":"b","typing":true}"#,
            // The reconnect's identical roster: nothing. Then bob is gone, ann changed, carol is new.
            #"{"type":"typing","room":"r","user":"bob","client":"b","typing":false}"#,
            #"{"type":"leave","room":"r","user":"bob","client":"b"}"#,
            #"{"type":"presence","room":"r","user":"ann","client":"a","typing":false,"status":"away"}"#,
            #"{"type":"join","room":"r","user":"carol","client":"c","typing":false}"#,
        ])
        XCTAssertEqual(f.rooms.values[0].ownClient, "a")
    }

    func testCursorsFollowTheOpsAndALatePresenceIsBroughtForward() throws {
        var f = feed(document: true)
        let out = try run(&f, """
        {"type":"welcome","room":"r","client":"a","rev":1,"doc":"hello\\nworld\\n"}
        {"type":"roster","room":"r","members":[{"user":"ann","client":"a"},{"user":"bob","client":"b","cursor":{"anchor":8,"head":8},"rev":1}]}
        {"type":"op","room":"r","client":"a","rev":2,"op":["abc\\n"],"ts":10}
        {"type":"op","room":"r","client":"a","rev":3,"op":[4,"é"],"ts":11}
        {"type":"presence","room":"r","client":"a","cursor":{"anchor":0,"head":4},"rev":2,"ts":12}
        """)
        // Ops write nothing. Ann's presence made at revision 2 arrives after op 3 (her own
        // insert at 4) and is brought forward: her own insert pushes her caret past it.
        XCTAssertEqual(out.count, 3)
        let ann = try Message.decode(out[2])
        XCTAssertEqual(ann.cursor, Selection(anchor: 0, head: 5))
        XCTAssertEqual(ann.rev, 3)
        var room = f.rooms.values[0]
        XCTAssertEqual(room.roster["b"]?.cursor?.head, 13)
        XCTAssertEqual(room.document?.document.string, "abc\néhello\nworld\n")
        let positions = room.positions()
        XCTAssertEqual(positions["b"]?.head, LineColumn(line: 3, column: 3))
        XCTAssertEqual(positions["a"]?.anchor, LineColumn(line: 1, column: 1))
        XCTAssertEqual(positions["a"]?.head, LineColumn(line: 2, column: 2))

        let snapshot = room.snapshot(now: 20)
        XCTAssertEqual(snapshot.json, #"{"type":"roster","room":"r","rev":3,"members":[{"type":"join","user":"ann","client":"a","rev":3,"cursor":{"anchor":0,"head":5},"typing":false,"line":2,"column":2,"idle":8},{"type":"join","user":"bob","client":"b","rev":3,"cursor":{"anchor":13,"head":13},"typing":false,"line":3,"column":3,"idle":20}],"ts":20}"#)
    }

    func testAGapDropsTheTextAndTheCursorsItCannotPlace() throws {
        var f = feed(document: true)
        var out: [Message] = []
        for line in [
            #"{"type":"snapshot","rev":1,"doc":"abc"}"#,
            #"{"type":"presence","client":"b","user":"bob","cursor":{"anchor":1,"head":1},"rev":1}"#,
        ] { XCTAssertNil(f.handle(try Message.decode(line), now: 0, into: &out).problem) }
        XCTAssertEqual(out.map(\.type), [.join])
        out = []
        let repeated = f.handle(try Message.decode(#"{"type":"op","rev":1,"op":["x"]}"#), now: 0, into: &out)
        XCTAssertEqual(repeated.problem, "revision 1 repeats (the room is at revision 1); skipped")
        let gap = f.handle(try Message.decode(#"{"type":"op","rev":3,"op":["x"]}"#), now: 0, into: &out)
        XCTAssertEqual(gap.problem, "revision gap: expected 2, got 3; cursors placed before it are dropped, and line:column is unknown until the next welcome or snapshot with the text")
        XCTAssertNil(f.rooms.values[0].document)
        XCTAssertNil(f.rooms.values[0].roster["b"]?.cursor)
        // An op that does not fit the text also makes it unknown.
        _ = f.handle(try Message.decode(#"{"type":"snapshot","rev":5,"doc":"abc"}"#), now: 0, into: &out)
        let misfit = f.handle(try Message.decode(#"{"type":"op","rev":6,"op":[9,"x"]}"#), now: 0, into: &out)
        XCTAssertNotNil(misfit.problem)
        XCTAssertNil(f.rooms.values[0].document)
        XCTAssertEqual(f.rooms.values[0].roster.revision, 6)
        // Bare ops (no rev) are the next revisions.
        _ = f.handle(try Message.decode(#"{"type":"snapshot","rev":0,"doc":""}"#), now: 0, into: &out)
        for op in [#"["ab"]"#, #"[2,"\nc"]"#] {
            var m = Message(.op)
            m.op = try TextOperation(json: op)
            XCTAssertNil(f.handle(m, now: 0, into: &out).problem)
        }
        XCTAssertEqual(f.rooms.values[0].document?.document.string, "ab\nc")
        XCTAssertEqual(f.rooms.values[0].roster.revision, 2)
        XCTAssertTrue(out.isEmpty, "ops write nothing: \(out.map(\.json))")
    }

    func testRoomsAreKeptApartAndRoomlessLinesBelongToTheLastNamedRoom() throws {
        var f = feed()
        let out = try run(&f, """
        {"type":"join","room":"one","user":"ann","client":"a"}
        {"type":"presence","client":"a","status":"here"}
        {"type":"join","room":"two","user":"ann","client":"a"}
        {"type":"leave","room":"one","client":"a"}
        """)
        XCTAssertEqual(out, [
            #"{"type":"join","room":"one","user":"ann","client":"a","typing":false}"#,
            #"{"type":"presence","room":"one","user":"ann","client":"a","typing":false,"status":"here"}"#,
            #"{"type":"join","room":"two","user":"ann","client":"a","typing":false}"#,
            #"{"type":"leave","room":"one","user":"ann","client":"a"}"#,
        ])
        XCTAssertEqual(f.rooms.keys.elements, ["one", "two"])
        XCTAssertEqual(f.rooms.values.map(\.roster.count), [0, 1])

        var only = feed(room: "two")
        let filtered = try run(&only, """
        {"type":"join","room":"one","user":"ann","client":"a"}
        {"type":"presence","client":"a","status":"here"}
        {"type":"join","room":"two","user":"bob","client":"b"}
        {"type":"presence","client":"b","status":"there"}
        """)
        XCTAssertEqual(filtered, [
            #"{"type":"join","room":"two","user":"bob","client":"b","typing":false}"#,
            #"{"type":"presence","room":"two","user":"bob","client":"b","typing":false,"status":"there"}"#,
        ])
        XCTAssertEqual(only.rooms.keys.elements, ["two"])

        // Without any room name: one unnamed room.
        var plain = feed()
        _ = try run(&plain, #"{"type":"join","user":"ann","client":"a"}"#)
        XCTAssertEqual(plain.rooms.keys.elements, [nil])
    }

    func testTheViewIgnoresTimesAndRevisions() throws {
        var f = feed(document: true)
        _ = try run(&f, """
        {"type":"snapshot","room":"r","rev":0,"doc":"abc"}
        {"type":"presence","room":"r","client":"b","user":"bob","cursor":{"anchor":1,"head":1},"rev":0,"ts":5}
        """)
        let before = f.rooms.values[0].view
        _ = try run(&f, #"{"type":"op","room":"r","rev":1,"op":[2,"x"],"ts":9}"#)
        XCTAssertEqual(f.rooms.values[0].view, before, "an op after the cursor changes nothing shown")
        _ = try run(&f, #"{"type":"op","room":"r","rev":2,"op":["x"],"ts":10}"#)
        XCTAssertNotEqual(f.rooms.values[0].view, before)
    }
}

final class TextPositionsTests: XCTestCase {
    func testLinesAndColumnsCountScalarsFromOne() {
        let doc = TextRope("ab\né😀x\n\nz")
        let offsets = [0, 2, 3, 4, 5, 6, 7, 8, 9, 99]
        let found = TextPositions.lineColumns(of: offsets, in: doc).map(\.description)
        XCTAssertEqual(found, ["1:1", "1:3", "2:1", "2:2", "2:3", "2:4", "3:1", "4:1", "4:2", "4:2"])
        // Any order, repeats.
        XCTAssertEqual(TextPositions.lineColumns(of: [8, 0, 8], in: doc).map(\.description), ["4:1", "1:1", "4:1"])
        XCTAssertEqual(TextPositions.lineColumns(of: [0, 3], in: TextRope()).map(\.description), ["1:1", "1:1"])
        XCTAssertEqual(TextPositions.lineColumns(of: [], in: doc), [])
    }

    func testRandomTextsAndOffsetsAgreeWithAPlainCount() {
        var rng = SplitMix64(seed: 7)
        let alphabet: [Character] = ["a", "b", "\n", "é", "😀", "漢", " "]
        for round in 0 ..< 200 {
            let length = rng.int(0 ... 4_000)
            let text = String((0 ..< length).map { _ in rng.pick(alphabet) })
            // Edits leave chunks of every size, not just the ones a fresh rope is cut into.
            var doc = TextRope()
            var pending = Array(text.unicodeScalars)
            var built: [Unicode.Scalar] = []
            while !pending.isEmpty {
                let n = min(pending.count, rng.int(1 ... 300))
                let at = rng.int(0 ... built.count)
                let piece = pending.prefix(n)
                doc.insert(String(String.UnicodeScalarView(piece)), at: at)
                built.insert(contentsOf: piece, at: at)
                pending.removeFirst(n)
            }
            let offsets = (0 ..< rng.int(1 ... 6)).map { _ in rng.int(0 ... built.count + 2) }
            let found = TextPositions.lineColumns(of: offsets, in: doc)
            for (offset, position) in zip(offsets, found) {
                let before = built[..<min(offset, built.count)]
                let line = before.filter { $0 == "\n" }.count + 1
                let column = before.count - (before.lastIndex(of: "\n").map { $0 + 1 } ?? 0) + 1
                XCTAssertEqual(position, LineColumn(line: line, column: column), "round \(round), offset \(offset)")
            }
        }
    }

    func testResumingAfterEditsFurtherOnAgreesWithAFreshWalk() {
        var rng = SplitMix64(seed: 13)
        let alphabet: [Character] = ["a", "\n", "é", "😀"]
        var doc = TextRope(String((0 ..< 3_000).map { _ in rng.pick(alphabet) }))
        var checkpoint: TextPositions.Walk?
        var resumed = 0
        for step in 0 ..< 2_000 {
            // Edits near the cursors, as people make them.
            let at = min(doc.count, max(0, 1_500 + rng.int(-200 ... 200)))
            if rng.chance(0.7) || doc.count == at {
                doc.insert(String((0 ..< rng.int(1 ... 3)).map { _ in rng.pick(alphabet) }), at: at)
            } else {
                doc.remove(at ..< min(doc.count, at + rng.int(1 ... 3)))
            }
            if let c = checkpoint, at < c.scalar { checkpoint = nil }
            if checkpoint != nil { resumed += 1 }
            let offsets = (0 ..< 3).map { _ in min(doc.count, max(0, at + rng.int(-300 ... 300))) }
            let (found, next) = TextPositions.lineColumns(of: offsets, in: doc, resumingAt: checkpoint)
            XCTAssertEqual(found, TextPositions.lineColumns(of: offsets, in: doc), "step \(step)")
            checkpoint = next
        }
        XCTAssertGreaterThan(resumed, 500, "the checkpoint should survive most edits here")
    }

    func testAcrossChunks() {
        // Many chunks (a chunk holds at most 1 KiB): compare with a plain count.
        var text = ""
        for i in 0 ..< 3_000 { text += i % 7 == 0 ? "\n" : (i % 5 == 0 ? "é" : "x") }
        let doc = TextRope(text)
        let scalars = Array(text.unicodeScalars)
        let offsets = [0, 1, 999, 1_000, 1_024, 2_047, 2_999, 3_000]
        for (offset, found) in zip(offsets, TextPositions.lineColumns(of: offsets, in: doc)) {
            let before = scalars[..<offset]
            let line = before.filter { $0 == "\n" }.count + 1
            let column = offset - (before.lastIndex(of: "\n").map { $0 + 1 } ?? 0) + 1
            XCTAssertEqual(found, LineColumn(line: line, column: column), "offset \(offset)")
        }
    }
}
