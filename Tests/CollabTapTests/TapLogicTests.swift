import CollabCLI
import CollabOT
import CollabPresence
import CollabProtocol
import XCTest

/// The human view, filters and statistics of collab-tap, on fixed messages and a clock of the
/// test's own.
final class TapFormatTests: XCTestCase {
    func message(_ json: String) throws -> Message { try Message.decode(json) }

    func summary(_ json: String) throws -> String { TapSummary.summary(of: try message(json)) }

    func testOpComponentsAtTheirPositions() throws {
        XCTAssertEqual(try summary(#"{"type":"op","op":[17,"abc"],"rev":4}"#), #"+3 "abc" @17 rev 4"#)
        XCTAssertEqual(try summary(#"{"type":"op","op":[5,{"d":2}]}"#), "-2 @5")
        // An insert moves past its text; a delete stays where it is.
        XCTAssertEqual(try summary(#"{"type":"op","op":["ab",3,{"d":2},4,"z"]}"#), #"+2 "ab" @0 -2 @5 +1 "z" @9"#)
        // Normalized on decode: the insert comes before the delete it followed.
        XCTAssertEqual(try summary(#"{"type":"op","op":[2,{"d":1},"x"]}"#), #"+1 "x" @2 -1 @3"#)
        XCTAssertEqual(try summary(#"{"type":"op","op":[]}"#), "noop")
        XCTAssertEqual(try summary(#"{"type":"op"}"#), "(no op)")
        // Positions count scalars.
        XCTAssertEqual(try summary(#"{"type":"op","op":["é😀",1,"x"]}"#), #"+2 "é😀" @0 +1 "x" @3"#)
    }

    func testInsertedTextIsEscapedAndCut() throws {
        XCTAssertEqual(try summary(#"{"type":"op","op":["a\nb\t\"c\\"]}"#), #"+7 "a\nb\t\"c\\" @0"#)
        XCTAssertEqual(try summary(#"{"type":"op","op":["\u001b[31m"]}"#), #"+5 "\u001b[31m" @0"#)
        XCTAssertEqual(try summary(#"{"type":"op","op":["a\u0085\u007fé"]}"#), #"+4 "a\u0085\u007fé" @0"#)
        let long = String(repeating: "x", count: 30)
        XCTAssertEqual(try summary(#"{"type":"op","op":["\#(long)"]}"#), "+30 \"\(String(repeating: "x", count: 23))…\" @0")
        let exact = String(repeating: "y", count: TapSummary.textLimit)
        XCTAssertEqual(try summary(#"{"type":"op","op":["\#(exact)"]}"#), "+24 \"\(exact)\" @0")
    }

    func testOtherTypes() throws {
        XCTAssertEqual(try summary(#"{"type":"presence","cursor":{"anchor":12,"head":12}}"#), "cursor 12")
        XCTAssertEqual(try summary(#"{"type":"presence","cursor":{"anchor":9,"head":3},"typing":true,"status":"on it"}"#),
                       #"sel 3-9 typing status "on it""#)
        XCTAssertEqual(try summary(#"{"type":"presence","typing":false}"#), "idle")
        XCTAssertEqual(try summary(#"{"type":"join","user":"ann","name":"Ann Lee"}"#), "joined (Ann Lee)")
        XCTAssertEqual(try summary(#"{"type":"leave","user":"ann"}"#), "left")
        XCTAssertEqual(try summary(#"{"type":"ack","seq":3,"rev":9}"#), "seq 3 → rev 9")
        XCTAssertEqual(try summary(#"{"type":"error","code":"forbidden","message":"no","seq":2,"fatal":true}"#),
                       "forbidden: no (seq 2) (fatal)")
        XCTAssertEqual(try summary(#"{"type":"welcome","rev":4,"doc":"héllo"}"#), "rev 4, document of 5 characters")
        XCTAssertEqual(try summary(#"{"type":"welcome","rev":9,"since":4}"#), "rev 9, catching up from 4")
        XCTAssertEqual(try summary(#"{"type":"roster","members":[{"user":"a"},{"user":"b"}]}"#), "2 members: a, b")
        XCTAssertEqual(try summary(#"{"type":"event","room":"r","user":"u","ts":5,"kind":"build","ok":true}"#), #""kind":"build","ok":true"#)
        XCTAssertEqual(try summary(#"{"type":"insert","pos":4,"text":"hi"}"#), #"+2 "hi" @4"#)
        XCTAssertEqual(try summary(#"{"type":"delete","pos":4,"len":2}"#), "-2 @4")
        XCTAssertEqual(try summary(#"{"type":"cursor","anchor":4,"head":6}"#), "sel 4-6")
        XCTAssertEqual(try summary(#"{"type":"hello","user":"u","observer":true}"#), "observer")
        XCTAssertEqual(try summary(#"{"type":"undo"}"#), "")
    }

    func testLineColumnsAndTime() throws {
        var f = TapFormatter(color: false, utcOffset: { _ in 3600 })
        // 1970-01-01 00:00:01.042 UTC is 01:00:01.042 at UTC+1.
        let op = try message(#"{"type":"op","room":"notes","user":"ann","op":[2,"x"],"rev":3,"ts":1042}"#)
        XCTAssertEqual(f.line(op, arrivalMillis: 999_999), #"01:00:01.042 notes op       ann +1 "x" @2 rev 3"#)
        // No ts: the arrival time. No user: "-". Columns widen to what has been seen.
        let ack = try message(#"{"type":"ack","room":"n","seq":1,"rev":3}"#)
        XCTAssertEqual(f.line(ack, arrivalMillis: 7_205_007), "03:00:05.007 n     ack      -   seq 1 → rev 3")
        // Before 1970 the time of day is still right.
        XCTAssertEqual(f.line(try message(#"{"type":"undo","ts":-1}"#), arrivalMillis: 0), "00:59:59.999 -     undo     -")
        var g = TapFormatter(color: false, defaultRoom: "fromurl", utcOffset: { _ in 0 })
        XCTAssertEqual(g.line(try message(#"{"type":"typing","ts":0}"#), arrivalMillis: 0), "00:00:00.000 fromurl typing   - typing")
    }

    func testUserColour() throws {
        var f = TapFormatter(color: true, utcOffset: { _ in 0 })
        let stamped = try message(##"{"type":"leave","user":"ann","color":"#c62828","ts":0}"##)
        XCTAssertEqual(f.line(stamped, arrivalMillis: 0), "00:00:00.000 - leave    \u{1B}[38;2;198;40;40mann\u{1B}[0m left")
        // Without a colour in the message: the palette's choice for the user.
        let bare = try message(#"{"type":"leave","user":"bob","ts":0}"#)
        let (r, g, b) = Palette.components(Palette.color(for: "bob"))!
        XCTAssertEqual(f.line(bare, arrivalMillis: 0), "00:00:00.000 - leave    \u{1B}[38;2;\(r);\(g);\(b)mbob\u{1B}[0m left")
    }

    func testFilters() {
        let f = TapFilter(types: ["op", "pres*"], users: ["a*", "bob"], rooms: [])
        XCTAssertTrue(f.accepts(type: .op, room: nil, user: "ann"))
        XCTAssertTrue(f.accepts(type: .presence, room: "x", user: "bob"))
        XCTAssertFalse(f.accepts(type: .join, room: "x", user: "ann"))
        XCTAssertFalse(f.accepts(type: .op, room: "x", user: "carol"))
        XCTAssertFalse(f.accepts(type: .op, room: "x", user: nil)) // no user: matched as ""
        XCTAssertTrue(TapFilter(users: ["*"]).accepts(type: .ack, room: nil, user: nil))
        let rooms = TapFilter(rooms: ["team-[ab]", "notes"])
        XCTAssertTrue(rooms.accepts(type: .op, room: "team-a", user: nil))
        XCTAssertFalse(rooms.accepts(type: .op, room: "team-c", user: nil))
        XCTAssertTrue(rooms.accepts(type: .op, room: "notes", user: nil))
        XCTAssertTrue(TapFilter().accepts(type: .op, room: nil, user: nil))
        XCTAssertNil(TapFilter.problem(withTypes: ["op", "p*", "[ej]*"]))
        XCTAssertNotNil(TapFilter.problem(withTypes: ["opp"]))
    }

    func testSources() {
        XCTAssertEqual(try TapSource.parse([]).get(), .stdin)
        XCTAssertEqual(try TapSource.parse(["-"]).get(), .stdin)
        XCTAssertEqual(try TapSource.parse(["cap.ndjson"]).get(), .file("cap.ndjson"))
        XCTAssertEqual(try TapSource.parse(["redis://h:1"]).get(), .redis("redis://h:1"))
        XCTAssertEqual(try TapSource.parse(["ws://h:1/r", "ws://g:2/r"]).get(), .websocket(["ws://h:1/r", "ws://g:2/r"]))
        for bad in [["ws://h:1/"], ["ws://h:1/a", "ws://h:1/b"], ["http://x"], ["a", "b"], ["redis://"]] {
            if case .success = TapSource.parse(bad) { XCTFail("\(bad) accepted") }
        }
    }

    func testOptionProblems() {
        var o = TapOptions()
        XCTAssertNil(o.problem)
        o.raw = true; o.stats = true
        XCTAssertNotNil(o.problem)
        o = TapOptions(); o.source = .redis("redis://h:1")
        XCTAssertNotNil(o.problem, "a Redis source needs --room or --all")
        o.all = true
        XCTAssertNil(o.problem)
        o.rooms = ["x"]
        XCTAssertNotNil(o.problem)
        o = TapOptions(); o.all = true
        XCTAssertNotNil(o.problem, "--all without Redis")
        o = TapOptions(); o.speed = 2
        XCTAssertNotNil(o.problem, "--speed without --replay")
        o.replay = "f"
        XCTAssertNil(o.problem)
        o.speed = .infinity
        XCTAssertNil(o.problem)
        o.speed = -1
        XCTAssertNotNil(o.problem)
        o = TapOptions(); o.replay = "f"; o.source = .file("g")
        XCTAssertNotNil(o.problem)
    }

    func testHeaderDecodesWhatMessageDecodes() throws {
        let lines = [#"{"type":"op","room":"r","user":"u","op":[1,"x"],"ts":12.7,"x":{"y":[1]}}"#, #"[3,"x"]"#]
        for line in lines {
            var copy = line
            let h = try copy.withUTF8 { b throws(MessageError) in try MessageHeader.decode(b) }
            let m = try Message.decode(line.hasPrefix("[") ? #"{"type":"op","op":\#(line)}"# : line)
            XCTAssertEqual(h, MessageHeader(type: m.type, room: m.room, user: m.user, ts: m.ts))
        }
        for bad in ["", "[", "{}", #"{"type":"nope"}"#, #"{"type":"op","room":3}"#, #"{"type":"op"} x"#, "17"] {
            var copy = bad
            XCTAssertThrowsError(try copy.withUTF8 { b throws(MessageError) in try MessageHeader.decode(b) }, bad)
        }
    }
}

final class TapStatsTests: XCTestCase {
    func header(_ type: MessageType, _ room: String, _ user: String?, ts: Int? = nil) -> MessageHeader {
        MessageHeader(type: type, room: room, user: user, ts: ts)
    }

    func testIntervalsPerRoom() {
        let t0: Int64 = 1_000_000_000_000_000 // µs
        var s = TapStats(startMicros: t0)
        let ts0 = Int(t0 / 1000)
        // Ops arriving 1, 2, ... 10 ms after their ts.
        for i in 1 ... 10 {
            s.record(header(.op, "a", i % 2 == 0 ? "ann" : "bob", ts: ts0), room: "a", bytes: 100, arrivalMicros: t0 + Int64(i) * 1000)
        }
        s.record(header(.presence, "a", "carol", ts: ts0), room: "a", bytes: 50, arrivalMicros: t0 + 500_000)
        s.record(header(.ack, "b", nil), room: "b", bytes: 20, arrivalMicros: t0 + 600_000)
        let reports = s.interval(endingAt: t0 + 2_000_000)
        XCTAssertEqual(reports.map(\.room), ["a", "b"])
        let a = reports[0]
        XCTAssertEqual(a.seconds, 2)
        XCTAssertEqual(a.messages, 11)
        XCTAssertEqual(a.rate(a.messages), 5.5)
        XCTAssertEqual(a.ops, 10)
        XCTAssertEqual(a.bytes, 1050)
        XCTAssertEqual(a.users, 3)
        XCTAssertEqual(a.byType.map(\.type), ["op", "presence"])
        XCTAssertEqual(a.delayP50, 5) // nearest rank of 1...10
        XCTAssertEqual(a.delayP99, 10)
        XCTAssertNil(reports[1].delayP50)
        XCTAssertEqual(reports[1].users, 0)

        // The next interval holds only what came after; idle rooms have no report.
        s.record(header(.op, "b", "ann", ts: ts0 + 3000), room: "b", bytes: 10, arrivalMicros: t0 + 2_500_000)
        let next = s.interval(endingAt: t0 + 3_000_000)
        XCTAssertEqual(next.map(\.room), ["b"])
        XCTAssertEqual(next[0].seconds, 1)
        XCTAssertEqual(next[0].delayP50, 0, "a ts after the arrival counts as no delay")
        XCTAssertEqual(s.rooms, ["a", "b"])

        // Totals: over the span of the room's ts (at least a second).
        let totals = s.totals(atMicros: t0 + 3_000_000)
        XCTAssertEqual(totals.map(\.room), ["a", "b"])
        XCTAssertTrue(totals.allSatisfy(\.final))
        XCTAssertEqual(totals[0].messages, 11)
        XCTAssertEqual(totals[0].seconds, 1)
        XCTAssertEqual(totals[1].messages, 2)
        XCTAssertEqual(totals[1].seconds, 1, "ack without ts, op at ts0+3000 s: one ts, so at least a second")
        XCTAssertEqual(totals[0].delayP50!, 5, accuracy: 5 * 0.02)
        XCTAssertEqual(totals[0].delayP99!, 10, accuracy: 10 * 0.02)
    }

    func testTotalsOfACaptureUseTheTsSpan() {
        var s = TapStats(startMicros: 0, measureDelay: false)
        for i in 0 ..< 21 {
            s.record(header(.op, "r", "u", ts: 1_000_000 + i * 500), room: "r", bytes: 10, arrivalMicros: Int64(i))
        }
        let t = s.totals(atMicros: 100)[0]
        XCTAssertEqual(t.seconds, 10)
        XCTAssertEqual(t.rate(t.ops), 2.1)
        XCTAssertNil(t.delayP50, "no arrival times in a capture")
    }

    func testHistogramPrecision() {
        var h = DelayHistogram()
        XCTAssertNil(h.percentile(0.5))
        var values: [Double] = []
        var x = 0.001
        while x < 100_000 {
            values.append(x)
            x *= 1.37
        }
        for v in values { h.record(v) }
        for p in [0.01, 0.5, 0.9, 0.99, 1.0] {
            let exact = values[max(1, Int((p * Double(values.count)).rounded(.up))) - 1]
            XCTAssertEqual(h.percentile(p)!, exact, accuracy: max(0.001, exact * 0.02), "p\(p)")
        }
    }

    func testJSONLines() throws {
        var r = TapStats.Report(room: "notes", ts: 1000, seconds: 2)
        r.messages = 5; r.ops = 4; r.bytes = 300; r.users = 2
        r.byType = [("op", 4), ("presence", 1)]
        r.delayP50 = 1.25; r.delayP99 = nil
        let line = String(decoding: TapStatsRenderer.json([r]), as: UTF8.self)
        XCTAssertEqual(line, #"{"type":"stats","room":"notes","ts":1000,"seconds":2,"messages":5,"messages_per_s":2.5,"by_type":{"op":2,"presence":0.5},"ops_per_s":2,"bytes_per_s":150,"users":2,"delay_p50_ms":1.25,"delay_p99_ms":null}"# + "\n")
        r.final = true
        XCTAssertTrue(String(decoding: TapStatsRenderer.json([r]), as: UTF8.self).hasSuffix(#","final":true}"# + "\n"))
    }

    func testTableIsRedrawnInPlace() {
        var t = TapStatsRenderer(table: true)
        var r = TapStats.Report(room: "a", ts: 0, seconds: 1)
        r.messages = 3; r.ops = 3; r.bytes = 2500; r.users = 1; r.byType = [("op", 3)]; r.delayP50 = 0.5; r.delayP99 = 120
        let first = String(decoding: t.render([r], rooms: ["a", "b"]), as: UTF8.self)
        XCTAssertFalse(first.contains("\u{1B}["))
        let lines = first.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[2].hasPrefix("a "), first)
        XCTAssertTrue(lines[2].contains("2.5 kB"), first)
        XCTAssertTrue(lines[2].contains("0.5 ms"), first)
        XCTAssertTrue(lines[2].contains("120 ms"), first)
        XCTAssertTrue(lines[2].hasSuffix("op 3"), first)
        XCTAssertTrue(lines[3].hasPrefix("b "), "an idle room is listed with zeros: \(first)")
        let second = String(decoding: t.render([], rooms: ["a", "b"]), as: UTF8.self)
        XCTAssertTrue(second.hasPrefix("\u{1B}[4F\u{1B}[J"), second)
    }

    func testReplaySchedule() {
        var s = ReplaySchedule(speed: 2)
        XCTAssertNil(s.due(ts: 10_000, now: 5_000_000_000), "the first line goes at once")
        XCTAssertEqual(s.due(ts: 11_000, now: 5_000_000_000), 5_500_000_000)
        XCTAssertEqual(s.due(ts: 14_000, now: 5_100_000_000), 7_000_000_000, "offsets from the origin, not from the previous line")
        XCTAssertNil(s.due(ts: 10_500, now: 7_000_000_000), "late or out of order: at once")
    }
}
