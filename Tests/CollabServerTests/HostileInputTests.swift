@testable import CollabServer
import CollabOT
import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Hostile input against a real collab-serve: a well-behaved client edits a room while another
/// connection sends garbage, floods, or stops reading. Each time the server must answer with the
/// right error or close code, keep serving the good client (its edit still round-trips to a
/// fresh client), and leave the room's document as it was.
final class HostileInputTests: HostTestCase {
    var children: [ServeProcess] = []

    override func tearDownWithError() throws {
        for c in children { c.terminate() }
        children = []
        try super.tearDownWithError()
    }

    func serve(_ extra: [String] = []) throws -> ServeProcess {
        let child = try ServeProcess(try BinaryLocator.require("collab-serve"),
                                     ["--port", "0", "--data", temporaryDirectory(), "--log-level", "info"] + extra)
        children.append(child)
        return child
    }

    /// The good client: inserts at the start of the document (which moves every stored cursor,
    /// hostile ones included) and checks that nobody else committed in between.
    final class GoodWriter {
        let client: TestClient
        var rev: Int
        var doc: String
        var seq = 0

        init(_ client: TestClient, welcome: Message) {
            self.client = client
            rev = welcome.rev ?? 0
            doc = welcome.doc ?? ""
        }

        func insertAtStart(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
            seq += 1
            let s = seq
            try client.op(#"["\#(text)"]"#, seq: s, base: rev)
            let ack = try client.expect("ack of seq \(s)") { $0.type == .ack && $0.seq == s }
            XCTAssertEqual(ack.rev, rev + 1, "someone else committed", file: file, line: line)
            rev = ack.rev ?? rev
            doc = text + doc
        }
    }

    struct Room {
        let server: ServeProcess
        let url: String
        let good: GoodWriter
    }

    func room(_ extra: [String] = [], name: String = "hostile") throws -> Room {
        let server = try serve(extra)
        let url = "ws://127.0.0.1:\(server.port)/\(name)"
        let c = try clients.connect(url)
        let good = GoodWriter(c, welcome: try c.join("good", client: "good"))
        try good.insertAtStart("hello")
        return Room(server: server, url: url, good: good)
    }

    /// The document is what the good client knows, and an edit of the good client reaches a
    /// fresh client.
    func assertIntact(_ room: Room, after what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let fresh = try clients.connect(room.url)
        let welcome = try fresh.join("witness", client: "witness-\(UUID().uuidString)")
        XCTAssertEqual(welcome.doc, room.good.doc, "the document changed after \(what)", file: file, line: line)
        XCTAssertEqual(welcome.rev, room.good.rev, "the revision changed after \(what)", file: file, line: line)
        try room.good.insertAtStart("+", file: file, line: line)
        let op = try fresh.expect("the good client's edit after \(what)") { $0.type == .op && $0.rev == room.good.rev }
        XCTAssertEqual(op.user, "good", file: file, line: line)
        fresh.close()
    }

    func attacker(_ room: Room, client: String = "mallory") throws -> TestClient {
        let a = try clients.connect(room.url)
        try a.join("mallory", client: client)
        return a
    }

    /// Sends each payload; expects one non-fatal error with `code`; the connection stays.
    func assertRefused(_ cases: [(String, [UInt8], String)], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try room()
        defer { if ProcessInfo.processInfo.environment["COLLAB_TEST_LOG"] != nil { print(r.server.stderr) } }
        let a = try attacker(r)
        for (what, template, code) in cases {
            // Ops name the current revision as their base (BASE), or the one before (PREV), so
            // they reach the document and the transforms rather than stop at a stale base.
            let bytes = template.substituting(Array("BASE".utf8), with: Array("\(r.good.rev)".utf8))
                .substituting(Array("PREV".utf8), with: Array("\(r.good.rev - 1)".utf8))
            a.sendRaw(text: bytes)
            let error = try a.expect("an error for \(what)") { $0.type == .error }
            XCTAssertEqual(error.code, code, "\(what): \(error.json)", file: file, line: line)
            XCTAssertEqual(error.fatal, false, what, file: file, line: line)
            XCTAssertFalse(error.message?.isEmpty ?? true, what, file: file, line: line)
            XCTAssertNil(a.snapshot.closeStatus, "\(what) closed the connection", file: file, line: line)
            try assertIntact(r, after: what, file: file, line: line)
        }
        // The attacker itself is still served.
        a.send(#"{"type":"presence","status":"still here"}"#)
        try r.good.client.expect("mallory's presence") { $0.type == .presence && $0.status == "still here" }
    }

    static func op(_ json: String, seq: String = "1", base: String = "BASE") -> [UInt8] {
        Array(#"{"type":"op","seq":\#(seq),"base":\#(base),"op":\#(json)}"#.utf8)
    }

    // MARK: Unreadable messages

    func testTruncatedJSON() throws {
        let full = Self.op(#"[1,"x"]"#)
        var cases: [(String, [UInt8], String)] = []
        for cut in [1, 2, 10, 20, full.count - 2, full.count - 1] {
            cases.append(("the op cut to \(cut) bytes", Array(full.prefix(cut)), "bad-message"))
        }
        cases.append(("an empty frame", [], "bad-message"))
        cases.append(("whitespace", Array("  \n".utf8), "bad-message"))
        cases.append(("two objects in one frame", full + full, "bad-message"))
        cases.append(("a string", Array(#""op""#.utf8), "bad-message"))
        try assertRefused(cases)
    }

    func testHugeNumbers() throws {
        try assertRefused([
            ("a keep of 1e400", Self.op(#"[1e400,"x"]"#), "bad-message"),
            ("a keep of 99999999999999999999", Self.op(#"[99999999999999999999,"x"]"#), "bad-message"),
            ("a keep of 5.0", Self.op(#"[5.0,"x"]"#), "bad-message"),
            ("a delete of 1e400", Self.op(#"[{"d":1e400}]"#), "bad-message"),
            ("seq 99999999999999999999", Self.op(#"["x"]"#, seq: "99999999999999999999"), "bad-message"),
            ("seq 1e400", Self.op(#"["x"]"#, seq: "1e400"), "bad-message"),
            ("base 1e400", Self.op(#"["x"]"#, base: "1e400"), "bad-message"),
            ("base -99999999999999999999", Self.op(#"["x"]"#, base: "-99999999999999999999"), "bad-message"),
            // Integers that fit, but whose sums would not: refused as they are read (an op keeps
            // and deletes at most 2^53 - 1 characters in all).
            ("a keep of Int.max", Self.op(#"[9223372036854775807,"x"]"#), "bad-message"),
            ("a delete of Int.max", Self.op(#"[{"d":9223372036854775807}]"#), "bad-message"),
            ("keeps summing past Int.max", Self.op(#"[9223372036854775807,"x",9223372036854775807,"y"]"#), "bad-message"),
            ("deletes summing past Int.max", Self.op(#"[1,{"d":9223372036854775807},"x",{"d":9223372036854775807}]"#), "bad-message"),
            ("adjacent keeps summing past Int.max", Self.op(#"[9223372036854775807,1,"x"]"#), "bad-message"),
            ("adjacent deletes summing past Int.max", Self.op(#"[{"d":9223372036854775807},{"d":1}]"#), "bad-message"),
            ("keeps summing past 2^53 - 1", Self.op(#"[4503599627370496,"x",4503599627370496,"y"]"#), "bad-message"),
            // As large as allowed: read, transformed, and refused as not fitting.
            ("a keep of 2^53 - 1", Self.op(#"[9007199254740991,"x"]"#), "bad-op"),
            ("keeps of 2^53 - 1 in all, transformed", Self.op(#"[4503599627370496,"x",4503599627370495,"y"]"#, base: "PREV"), "bad-op"),
            ("deletes of 2^53 - 1 in all, transformed", Self.op(#"[1,{"d":4503599627370495},"x",{"d":4503599627370495}]"#, base: "PREV"), "bad-op"),
            ("seq and base Int.max", Self.op(#"["x"]"#, seq: "9223372036854775807", base: "9223372036854775807"), "bad-op"),
            ("a cursor at 1e400", Array(#"{"type":"presence","cursor":{"anchor":1e400,"head":0}}"#.utf8), "bad-message"),
            ("presence at revision 1e400", Array(#"{"type":"presence","rev":1e400,"cursor":{"anchor":0,"head":0}}"#.utf8), "bad-message"),
        ])
    }

    func testDeepNesting() throws {
        let open = String(repeating: "[", count: 10_000), close = String(repeating: "]", count: 10_000)
        let objects = String(repeating: #"{"a":"#, count: 10_000) + "1" + String(repeating: "}", count: 10_000)
        try assertRefused([
            ("10,000 [ in an op", Self.op(open + close), "bad-message"),
            ("10,000 [ in an event", Array(#"{"type":"event","x":\#(open + close)}"#.utf8), "bad-message"),
            ("10,000 [ unclosed", Array(#"{"type":"event","x":\#(open)"#.utf8), "bad-message"),
            ("10,000 nested objects", Array(#"{"type":"event","x":\#(objects)}"#.utf8), "bad-message"),
            ("10,000 [ alone", Array(open.utf8), "bad-message"),
        ])
    }

    func testInvalidUTF8() throws {
        func insert(_ bytes: [UInt8]) -> [UInt8] { Array(#"{"type":"op","seq":1,"base":2,"op":[""#.utf8) + bytes + Array(#""]}"#.utf8) }
        try assertRefused([
            ("0xFF 0xFE in an insert", insert([0xFF, 0xFE]), "bad-message"),
            ("an overlong /", insert([0xC0, 0xAF]), "bad-message"),
            ("a UTF-16 surrogate in UTF-8", insert([0xED, 0xA0, 0x80]), "bad-message"),
            ("a sequence cut short", insert([0xE2, 0x82]), "bad-message"),
            ("a code point past U+10FFFF", insert([0xF4, 0x90, 0x80, 0x80]), "bad-message"),
            ("a lone surrogate escape", insert(Array(#"\ud800"#.utf8)), "bad-message"),
            ("a raw control character", insert([0x00]), "bad-message"),
            ("invalid UTF-8 in a key", Array(#"{"ty"#.utf8) + [0xFF] + Array(#"pe":"op"}"#.utf8), "bad-message"),
            ("invalid UTF-8 outside strings", Array(#"{"type":"event"}"#.utf8) + [0xFF], "bad-message"),
        ])
    }

    // MARK: Ops that do not fit

    func testOpsThatDoNotFit() throws {
        // The document is "hello" (5 characters) at revision 1 when the first arrives; base 2 is
        // ahead by then and the test's own edits move it on, so each op names the revision it
        // was sent at.
        let r = try room()
        let a = try attacker(r)
        let cases: [(String, String, String)] = [
            ("a keep past the end", #"[100,"x"]"#, "bad-op"),
            ("a delete past the end", #"[{"d":100}]"#, "bad-op"),
            ("a delete from the end", #"[LEN,{"d":1}]"#, "bad-op"),
            ("an insert past the end", #"[LENPLUS1,"x"]"#, "bad-op"),
            ("a negative keep", #"[-1,"x"]"#, "bad-message"),
            ("a zero keep", #"[0,"x"]"#, "bad-message"),
            ("a zero delete", #"[{"d":0}]"#, "bad-message"),
            ("a negative delete", #"[{"d":-3}]"#, "bad-message"),
            ("an empty insert", #"[""]"#, "bad-message"),
            ("an empty deleted text", #"[{"d":""}]"#, "bad-message"),
            ("a fractional keep", #"[1.5,"x"]"#, "bad-message"),
            ("a boolean", #"[true]"#, "bad-message"),
            ("null", #"[null]"#, "bad-message"),
            ("an empty object", #"[{}]"#, "bad-message"),
            ("an op that is an object", #"{"d":1}"#, "bad-message"),
        ]
        var seq = 0
        for (what, template, code) in cases {
            seq += 1
            let length = r.good.doc.unicodeScalars.count
            let json = template.replacingOccurrences(of: "LENPLUS1", with: "\(length + 1)").replacingOccurrences(of: "LEN", with: "\(length)")
            a.sendRaw(text: Self.op(json, seq: "\(seq)", base: "\(r.good.rev)"))
            let error = try a.expect("an error for \(what)") { $0.type == .error }
            XCTAssertEqual(error.code, code, "\(what): \(error.json)")
            XCTAssertEqual(error.fatal, false, what)
            if code == "bad-op" { XCTAssertEqual(error.seq, seq, "the error names the op: \(error.json)") }
            try assertIntact(r, after: what)
        }
        // Revisions the room does not have, and sequence numbers that cannot be.
        let future = r.good.rev + 1
        for (what, text, code) in [
            ("base in the future", String(decoding: Self.op(#"["x"]"#, seq: "100", base: "\(future)"), as: UTF8.self), "bad-op"),
            ("base far in the future", String(decoding: Self.op(#"["x"]"#, seq: "101", base: "1000000"), as: UTF8.self), "bad-op"),
            ("a negative base", String(decoding: Self.op(#"["x"]"#, seq: "102", base: "-1"), as: UTF8.self), "bad-message"),
            ("seq 0", String(decoding: Self.op(#"["x"]"#, seq: "0", base: "1"), as: UTF8.self), "bad-message"),
            ("a negative seq", String(decoding: Self.op(#"["x"]"#, seq: "-5", base: "1"), as: UTF8.self), "bad-message"),
            ("an op without base", #"{"type":"op","seq":103,"op":["x"]}"#, "bad-message"),
        ] {
            a.send(text)
            let error = try a.expect("an error for \(what)") { $0.type == .error }
            XCTAssertEqual(error.code, code, "\(what): \(error.json)")
            XCTAssertEqual(error.fatal, false, what)
            try assertIntact(r, after: what)
        }
        XCTAssertNil(a.snapshot.closeStatus)
    }

    /// Cursors far outside the document, at revisions the room never had: refused, or (a cursor
    /// made on an older revision) brought forward and clamped; never a crash of the commits that
    /// move them.
    func testHostilePresence() throws {
        let r = try room()
        try r.good.insertAtStart("x")  // revision 2: revision 1 is an older one
        let a = try attacker(r)
        for text in [
            #"{"type":"presence","cursor":{"anchor":9223372036854775807,"head":-9223372036854775808}}"#,
            #"{"type":"presence","cursor":{"anchor":-1,"head":0}}"#,
            #"{"type":"presence","rev":-5,"cursor":{"anchor":3,"head":3}}"#,
            #"{"type":"presence","rev":9223372036854775807,"cursor":{"anchor":1,"head":2}}"#,
            #"{"type":"presence","rev":1,"cursor":{"anchor":9223372036854775807,"head":9223372036854775807}}"#,
            #"{"type":"presence","cursor":"nowhere","typing":"yes"}"#,
        ] {
            a.send(text)
            let error = try a.expect("an error for \(text)") { $0.type == .error }
            XCTAssertEqual(error.code, "bad-message", "\(text): \(error.json)")
            XCTAssertEqual(error.fatal, false)
            try assertIntact(r, after: text)
        }
        // As far out as a document could ever be, on an older revision: taken, brought forward
        // through the ops since and clamped to the document.
        a.send(#"{"type":"presence","rev":1,"cursor":{"anchor":9007199254740991,"head":0}}"#)
        let relayed = try r.good.client.expect("mallory's cursor") { $0.type == .presence && $0.user == "mallory" && $0.cursor != nil }
        XCTAssertEqual(relayed.cursor, Selection(anchor: r.good.doc.unicodeScalars.count, head: 0), relayed.json)
        try assertIntact(r, after: "a cursor at 2^53 - 1")
        XCTAssertNil(a.snapshot.closeStatus)
    }

    /// What the server stores and repeats stays small: a huge presence or event is refused
    /// (too-large, non-fatal), a hello with a huge name cannot join.
    func testOversizedPresenceEventAndHelloFields() throws {
        let r = try room()
        let a = try attacker(r)
        let big = String(repeating: "x", count: 100_000)
        for (what, text) in [("a 100 KB presence status", #"{"type":"presence","status":"\#(big)"}"#),
                             ("a 100 KB event", #"{"type":"event","data":"\#(big)"}"#)] {
            a.send(text)
            let error = try a.expect("an error for \(what)") { $0.type == .error }
            XCTAssertEqual(error.code, "too-large", "\(what): \(error.json)")
            XCTAssertEqual(error.fatal, false)
            try assertIntact(r, after: what)
        }
        XCTAssertNil(a.snapshot.closeStatus)
        let newcomer = try clients.connect(r.url)
        newcomer.send(#"{"type":"hello","user":"u","name":"\#(String(repeating: "n", count: 10_000))"}"#)
        let error = try newcomer.expect(type: .error)
        XCTAssertEqual(error.code, "too-large", error.json)
        XCTAssertEqual(error.fatal, true)
        XCTAssertEqual(try newcomer.waitClosed().code, 1008)
        try assertIntact(r, after: "a hello with a 10 KB name")
        let roster = try clients.connect(r.url)
        let w = try roster.join("late", client: "late")
        XCTAssertNotNil(w.rev)
        let members = try roster.expect(type: .roster).members ?? []
        XCTAssertFalse(members.contains { ($0.name?.count ?? 0) > 256 }, "the huge name is in nobody's roster")
    }

    // MARK: Frames

    func testBinaryFrames() throws {
        let r = try room()
        let a = try attacker(r)
        for (what, bytes) in [("three bytes", [UInt8]([1, 2, 3])), ("an op as binary", Self.op(#"["x"]"#, base: "2")), ("empty", [])] {
            a.sendBinary(bytes)
            let error = try a.expect("an error for a binary frame of \(what)") { $0.type == .error }
            XCTAssertEqual(error.code, "bad-message", error.json)
            XCTAssertEqual(error.fatal, false)
            try assertIntact(r, after: "a binary frame of \(what)")
        }
        XCTAssertNil(a.snapshot.closeStatus)
    }

    func testTenMebibyteFrameIsRefusedWith1009() throws {
        let r = try room()
        let a = try attacker(r)
        var big = Array(#"{"type":"op","seq":1,"base":2,"op":[""#.utf8)
        big += [UInt8](repeating: UInt8(ascii: "x"), count: 10 << 20)
        big += Array(#""]}"#.utf8)
        a.sendRaw(text: big)
        let error = try a.expect("too-large") { $0.type == .error }
        XCTAssertEqual(error.code, "too-large", error.json)
        XCTAssertEqual(error.fatal, true)
        XCTAssertEqual(try a.waitClosed(timeout: 15).code, 1009)
        try r.good.client.expect("mallory leaves") { $0.type == .leave && $0.user == "mallory" }
        try assertIntact(r, after: "a 10 MiB frame")
    }

    // MARK: Floods

    /// 10,000 messages at once: the burst is taken, the rest dropped with one rate-limited error
    /// (not one per message), and the flooder closed with 1008.
    func testBurstOfTenThousandMessagesIsRateLimitedThenClosed() throws {
        let r = try room()
        let a = try attacker(r)
        for i in 0..<10_000 {
            a.send(#"{"type":"presence","status":"spam \#(i)"}"#)
        }
        let close = try a.waitClosed(timeout: 20)
        XCTAssertEqual(close.code, 1008)
        XCTAssertTrue(close.reason.contains("rate limit"), close.reason)
        // One error, then the fatal one: not one per dropped message (a slow machine may take
        // over a second to drop them all, and answer once more).
        let errors = a.messages.filter { $0.type == .error }
        XCTAssertTrue(errors.allSatisfy { $0.code == "rate-limited" }, errors.map(\.json).joined(separator: "\n"))
        XCTAssertTrue((2...3).contains(errors.count), errors.map(\.json).joined(separator: "\n"))
        XCTAssertEqual(errors.first?.fatal, false)
        XCTAssertEqual(errors.last?.fatal, true)
        try r.server.waitForStderr(containing: "over the rate limit")
        try r.server.waitForStderr(containing: "closing (1008)")
        try r.good.client.expect("mallory leaves") { $0.type == .leave && $0.user == "mallory" }
        try assertIntact(r, after: "a burst of 10,000 messages")
        let metrics = try httpGet(port: r.server.port, path: "/metrics").body
        XCTAssertTrue(metrics.contains("\ncollab_rate_limit_closes_total 1\n"), metrics)
        let dropped = metrics.split(separator: "\n").first { $0.hasPrefix("collab_rate_limited_messages_total ") }
        XCTAssertGreaterThanOrEqual(Int(dropped?.split(separator: " ").last ?? "") ?? 0, 1000, metrics)
    }

    /// Ops over the limit: the error carries the op's seq (so its sender can resend), at most one
    /// error a second, and the op refused last is reported when that second is over.
    func testRateLimitedOpsAreReportedWithTheirSeqAtMostOncePerSecond() throws {
        let r = try room(["--max-rate", "5", "--max-burst", "5"])
        let a = try attacker(r)  // the hello takes one token
        let start = Date()
        for seq in 1...20 {
            a.send(String(decoding: Self.op(#"["m"]"#, seq: "\(seq)", base: "\(r.good.rev)"), as: UTF8.self))
        }
        // Four ops in the burst commit (the sender's to make); the rest are dropped (one more
        // may pass if the sends took over 200 ms).
        for seq in 1...4 { try a.expect("ack \(seq)") { $0.type == .ack && $0.seq == seq } }
        let first = try a.expect("the first refusal") { $0.type == .error }
        XCTAssertEqual(first.code, "rate-limited", first.json)
        let acked = a.messages.prefix { $0.type != .error }.filter { $0.type == .ack }.compactMap(\.seq)
        XCTAssertEqual(first.seq, (acked.max() ?? 0) + 1, "the first op dropped: \(first.json)")
        XCTAssertEqual(first.fatal, false)
        let second = try a.expect("the refusal of the last op, a second later") { $0.type == .error }
        XCTAssertEqual(second.code, "rate-limited", second.json)
        XCTAssertEqual(second.seq, 20)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 0.9)
        XCTAssertEqual(a.messages.filter { $0.type == .error }.count, 2)
        XCTAssertNil(a.snapshot.closeStatus)
        // Resent after a pause, the op commits.
        a.send(String(decoding: Self.op(#"["m"]"#, seq: "20", base: "\(r.good.rev)"), as: UTF8.self))
        XCTAssertNotNil(try a.expect("ack 20") { $0.type == .ack && $0.seq == 20 }.rev)
    }

    /// A raw socket that does the handshake, says hello and then never reads while the room is
    /// busy: closed as a slow consumer; the others go on.
    func testSlowReaderIsClosedAndTheRoomGoesOn() throws {
        let r = try room(["--max-queue", "1M"])
        let slow = try RawWebSocket(port: r.server.port, receiveBuffer: 4096)
        let (status, head) = try slow.upgrade(path: "hostile")
        XCTAssertEqual(status, 101, head)
        try slow.send(text: Array(#"{"type":"hello","user":"sloth","client":"sloth"}"#.utf8))
        try r.good.client.expect("sloth joins") { $0.type == .join && $0.user == "sloth" }
        let bystander = try clients.connect(r.url)
        try bystander.join("bystander", client: "bystander")
        let pad = String(repeating: "abcdefgh", count: 7 << 10)  // 56 KiB: under the 64 KiB cap on events
        var sent = 0
        while !r.server.stderr.contains("slow consumer") && sent < 900 {
            for _ in 0..<16 {
                sent += 1
                r.good.client.send(#"{"type":"event","n":\#(sent),"pad":"\#(pad)"}"#)
            }
            let last = sent
            try bystander.expect("event \(last)", timeout: 10) { $0.type == .event && $0.extra?["n"]?.intValue == last }
        }
        try r.server.waitForStderr(containing: "slow consumer")
        try r.good.client.expect("sloth leaves") { $0.type == .leave && $0.user == "sloth" }
        XCTAssertNil(bystander.snapshot.closeStatus)
        try assertIntact(r, after: "a reader that stopped reading")
    }

    // MARK: Connections per address

    func testConnectionsPerAddressAreCappedWith429AndCountedOnEveryClose() throws {
        let server = try serve(["--max-conns-per-ip", "3", "--ping-interval", "0.3", "--ping-timeout", "0.3"])
        let url = "ws://127.0.0.1:\(server.port)/capped"
        func upgradeStatus() throws -> Int { try RawWebSocket(port: server.port).upgrade(path: "capped").status }
        let a = try clients.connect(url)
        try a.join("a", client: "a")
        let b = try clients.connect(url)
        try b.join("b", client: "b")
        let c = try clients.connect(url)
        try c.join("c", client: "c")
        XCTAssertEqual(try upgradeStatus(), 429)
        XCTAssertEqual(try upgradeStatus(), 429)
        try server.waitForStderr(containing: "refusing more with 429")
        XCTAssertEqual(server.stderr.components(separatedBy: "refusing more with 429").count - 1, 1, "one log line per episode")
        // HTTP requests are not WebSocket connections: /healthz still answers.
        XCTAssertEqual(try httpGet(port: server.port, path: "/healthz").status, 200)

        // A polite close frees a place (once the server has seen it: retried, bounded). A raw
        // socket takes it, and holds it while it is counted.
        c.close()
        try c.waitClosed()
        var held: RawWebSocket? = try takePlace(server, path: "capped")
        XCTAssertEqual(try upgradeStatus(), 429)

        // A heartbeat timeout frees one: the raw socket never reads, so it never answers a ping.
        try server.waitForStderr(containing: "heartbeat timeout")
        held = try takePlace(server, path: "capped")
        XCTAssertEqual(try upgradeStatus(), 429)

        // A peer that just goes away (no close frame) frees one.
        held = nil
        // Refused rooms open and close at once: they hold no place afterwards. Each needs the
        // place of the one before, so one that stayed counted would stop the next.
        for i in 0..<5 {
            let bad = try connectEventually("ws://127.0.0.1:\(server.port)/bad%20room", what: "bad room \(i)")
            XCTAssertEqual(try bad.waitClosed().code, 1008)
        }
        let c3 = try connectEventually(url, what: "c3")
        try c3.join("c3", client: "c3")
        XCTAssertEqual(try upgradeStatus(), 429)
        let metrics = try httpGet(port: server.port, path: "/metrics").body
        let refused = metrics.split(separator: "\n").first { $0.hasPrefix("collab_refused_connections_total ") }
        XCTAssertGreaterThanOrEqual(Int(refused?.split(separator: " ").last ?? "") ?? 0, 5, metrics)
        _ = (a, b, held)
    }

    /// Upgrades until the server has a place again (it counts a close once it has seen it, a
    /// moment after the peer's side); returns the open connection, which keeps the place.
    func takePlace(_ server: ServeProcess, path: String, file: StaticString = #filePath, line: UInt = #line) throws -> RawWebSocket? {
        var taken: RawWebSocket?
        waitUntil("a place for a connection", timeout: 10, file: file, line: line) {
            guard let raw = try? RawWebSocket(port: server.port), let status = try? raw.upgrade(path: path).status else { return false }
            if status == 101 { taken = raw }
            return taken != nil
        }
        return taken
    }

    func connectEventually(_ url: String, what: String) throws -> TestClient {
        var connected: TestClient?
        waitUntil("\(what) connects", timeout: 10) {
            connected = try? clients.connect(url)
            return connected != nil
        }
        return try XCTUnwrap(connected)
    }
}

/// The per-address count after a shutdown, in process (the host is readable once its loop ended).
final class ConnectionCountShutdownTests: HostTestCase {
    func testEveryConnectionIsUncountedByShutdown() throws {
        var c = configuration()
        c.maxConnectionsPerAddress = 10
        let box = Locked<ServerHost?>(nil)
        let server = try startServer(c) { host in box.withLock { $0 = host } }
        var open: [TestClient] = []
        for i in 0..<4 {
            let t = try connect(server, room: "r\(i % 2)")
            try t.join("u\(i)", client: "u\(i)")
            open.append(t)
        }
        // One that never finishes its close handshake (it stops reading) is dropped at the grace.
        open[0].pauseReading()
        try server.stop()
        let host = try XCTUnwrap(box.withLock { $0 })
        XCTAssertEqual(host.perAddress.total, 0, "\(host.perAddress.open)")
        box.withLock { $0 = nil }
    }
}

/// A WebSocket client on a plain blocking socket: the handshake, then frames written by hand
/// (masked, as a client's must be), and nothing read unless asked: a peer that stops reading,
/// which libwebsockets' client cannot be made into for long.
final class RawWebSocket {
    let fd: Int32

    init(port: Int, receiveBuffer: Int? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WaitTimeout(description: "socket: errno \(errno)") }
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connectLoopback(fd, port: port) else {
            Glibc.close(fd)
            throw WaitTimeout(description: "connect: errno \(errno)")
        }
    }

    deinit { Glibc.close(fd) }

    /// The upgrade request; returns the response's status and head (read up to the blank line).
    func upgrade(path: String) throws -> (status: Int, head: String) {
        try write(Array(("GET /\(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8))
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.ends(with: [13, 10, 13, 10]) {
            let n = read(fd, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { throw WaitTimeout(description: "no upgrade response (read \(n), errno \(errno)): \(String(decoding: head, as: UTF8.self))") }
            head.append(byte)
        }
        let text = String(decoding: head, as: UTF8.self)
        return (Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0, text)
    }

    func send(text payload: [UInt8]) throws {
        var frame: [UInt8] = [0x81]
        switch payload.count {
        case ..<126: frame.append(0x80 | UInt8(payload.count))
        case ..<65536: frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default:
            frame.append(0x80 | 127)
            for i in (0..<8).reversed() { frame.append(UInt8(truncatingIfNeeded: UInt64(payload.count) >> (8 * UInt64(i)))) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        for (i, b) in payload.enumerated() { frame.append(b ^ mask[i % 4]) }
        try write(frame)
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw WaitTimeout(description: "write: errno \(errno)") }
            offset += n
        }
    }
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }

    func substituting(_ target: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < count {
            if i + target.count <= count && Array(self[i ..< i + target.count]) == target {
                out += replacement
                i += target.count
            } else {
                out.append(self[i])
                i += 1
            }
        }
        return out
    }
}
