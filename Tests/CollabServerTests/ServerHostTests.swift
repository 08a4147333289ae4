@testable import CollabServer
import CollabOT
import CollabProtocol
import CollabTestSupport
import CollabTransport
import Foundation
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A test client's editor: a document and the OT client state machine, fed by what arrives.
struct Editor {
    var doc: String
    var ot: OTClient
    let client: TestClient

    init(_ client: TestClient, welcome: Message) {
        self.client = client
        doc = welcome.doc ?? ""
        ot = OTClient(revision: welcome.rev ?? 0)
    }

    mutating func edit(_ op: TextOperation) throws {
        doc = try op.apply(to: doc)
        if let s = ot.applyLocal(op) { submit(s) }
    }

    func submit(_ s: OTClient.Submission) {
        var m = Message(.op)
        m.op = s.op
        m.seq = s.seq
        m.base = s.base
        client.send(m)
    }

    static func relevant(_ m: Message) -> Bool { m.type == .op || m.type == .ack || m.type == .error }

    func isSettled(at revision: Int) -> Bool { ot.revision >= revision && !ot.hasPendingChanges }

    mutating func process(_ m: Message) throws {
        switch m.type {
        case .ack:
            if let next = try ot.acknowledge(seq: m.seq!, rev: m.rev!) { submit(next) }
        case .op:
            doc = try ot.applyRemote(m.op!, rev: m.rev!).apply(to: doc)
        default:
            throw WaitTimeout(description: "unexpected error: \(m.json)")
        }
    }

    /// Processes acks and remote ops until the editor is at `revision` with nothing pending.
    mutating func settle(at revision: Int) throws {
        while !isSettled(at: revision) {
            try process(try client.expect("op or ack (at \(ot.revision), want \(revision))", Self.relevant))
        }
    }

    /// Several editors at once: one's buffered op may only leave after its ack, which the others
    /// are waiting for.
    static func settle(_ editors: inout [Editor], at revision: Int, timeout: Double = 10) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while editors.contains(where: { !$0.isSettled(at: revision) }) {
            var progressed = false
            for i in editors.indices {
                while let m = editors[i].client.poll(relevant) {
                    try editors[i].process(m)
                    progressed = true
                }
            }
            if !progressed {
                guard Date() < deadline else {
                    throw WaitTimeout(description: "editors did not settle at \(revision): \(editors.map(\.ot.revision))")
                }
                // Wait (briefly, bounded) for anything new on an unsettled editor.
                if let e = editors.first(where: { !$0.isSettled(at: revision) }) {
                    e.client.waitForMore(timeout: 0.05)
                }
            }
        }
    }
}

final class ServerHostTests: HostTestCase {
    func testJoinGetsWelcomeRosterAndJoin() throws {
        let server = try startServer(configuration())
        let a = try connect(server, room: "notes")
        let welcome = try a.join("ann", client: "a1")
        XCTAssertEqual(welcome.room, "notes")
        XCTAssertEqual(welcome.rev, 0)
        XCTAssertEqual(welcome.doc, "")
        XCTAssertEqual(welcome.client, "a1")
        XCTAssertEqual(try a.expect(type: .roster).members?.map(\.user), ["ann"])

        let b = try connect(server, room: "notes")
        try b.join("bob", client: "b1")
        XCTAssertEqual(try b.expect(type: .roster).members?.map(\.user), ["ann", "bob"])
        let join = try a.expect(type: .join)
        XCTAssertEqual(join.user, "bob")

        b.close()
        XCTAssertEqual(try b.waitClosed().code, 1000)
        XCTAssertEqual(try a.expect(type: .leave).user, "bob")
        try server.logs.wait(for: "close conn")
        XCTAssertTrue(server.logs.contains("open conn"), server.logs.lines.joined(separator: "\n"))
    }

    func testTwoClientsConvergeOnConcurrentOps() throws {
        let server = try startServer(configuration())
        let ca = try connect(server, room: "doc")
        let cb = try connect(server, room: "doc")
        var a = Editor(ca, welcome: try ca.join("ann", client: "a"))
        var b = Editor(cb, welcome: try cb.join("bob", client: "b"))
        // Both type at once, each several edits, without waiting for each other.
        for (i, ch) in ["H", "e", "l", "l", "o"].enumerated() {
            try a.edit(.insert(ch, at: i))
            try b.edit(.insert(ch.lowercased() == "h" ? "W" : ["o", "r", "l", "d"][i - 1], at: b.doc.unicodeScalars.count))
        }
        // Each client's burst: first op sent, the rest composed into one buffer → 2 commits each.
        var editors = [a, b]
        try Editor.settle(&editors, at: 4)
        a = editors[0]
        b = editors[1]
        XCTAssertEqual(a.doc, b.doc)
        XCTAssertEqual(a.doc.count, 10)
        // Concurrent inserts may interleave (ties go to the op committed first), but each
        // writer's text keeps its order.
        XCTAssertTrue(isSubsequence("Hello", of: a.doc) && isSubsequence("World", of: a.doc), a.doc)

        // A late joiner gets the same text, and /healthz the revision.
        let cc = try connect(server, room: "doc")
        XCTAssertEqual(try cc.join("cat", client: "c").doc, a.doc)
        let health = try httpGet(port: server.port, path: "/healthz")
        XCTAssertTrue(health.body.contains(#""revisions":{"doc":4}"#), health.body)
    }

    func testDuplicateResubmitIsAckedWithTheOriginalRevision() throws {
        let server = try startServer(configuration())
        let a = try connect(server, room: "dup")
        try a.join("ann", client: "a")
        let b = try connect(server, room: "dup")
        try b.join("bob", client: "b")
        try a.op(#"["x"]"#, seq: 1, base: 0)
        XCTAssertEqual(try a.expect(type: .ack).rev, 1)
        try b.op(#"["y"]"#, seq: 1, base: 0)
        XCTAssertEqual(try b.expect(type: .ack).rev, 2)

        // a reconnects (as after a lost ack) and resubmits seq 1: acked as rev 1, not applied again.
        a.close()
        try a.waitClosed()
        let a2 = try connect(server, room: "dup")
        try a2.join("ann", client: "a", since: 0)
        try a2.op(#"["x"]"#, seq: 1, base: 0)
        let ack = try a2.expect(type: .ack)
        XCTAssertEqual(ack.seq, 1)
        XCTAssertEqual(ack.rev, 1)
        let c = try connect(server, room: "dup")
        let welcome = try c.join("cat", client: "c")
        XCTAssertEqual(welcome.rev, 2)
        XCTAssertEqual(welcome.doc?.count, 2)
    }

    func testSinceCatchUp() throws {
        let server = try startServer(configuration())
        let a = try connect(server, room: "catch")
        try a.join("ann", client: "a")
        for i in 1...5 {
            var m = Message(.op)
            m.op = .insert("\(i)", at: i - 1)
            m.seq = i
            m.base = i - 1
            a.send(m)
            XCTAssertEqual(try a.expect(type: .ack).rev, i)
        }
        let b = try connect(server, room: "catch")
        let welcome = try b.join("bob", client: "b", since: 3)
        XCTAssertEqual(welcome.since, 3)
        XCTAssertEqual(welcome.rev, 5)
        XCTAssertNil(welcome.doc)
        XCTAssertEqual(try b.expect(type: .op).rev, 4)
        let last = try b.expect(type: .op)
        XCTAssertEqual(last.rev, 5)
        XCTAssertEqual(last.op, try TextOperation(json: #"[4,"5"]"#))
    }

    func testBadInputGetsErrorsAndTheConnectionStays() throws {
        let server = try startServer(configuration())
        let a = try connect(server, room: "bad")
        try a.join("ann", client: "a")
        a.send("{not json")
        XCTAssertEqual(try a.expect(type: .error).code, "bad-message")
        a.send(#"{"type":"teleport"}"#)
        let unknown = try a.expect(type: .error)
        XCTAssertEqual(unknown.code, "bad-message")
        XCTAssertTrue(unknown.message?.contains("teleport") == true, unknown.json)
        XCTAssertEqual(unknown.fatal, false)
        a.sendRaw(text: [UInt8](#"{"type":"op","op":[""#.utf8) + [0xFF, 0xFE] + [UInt8](#""]}"#.utf8))
        XCTAssertEqual(try a.expect(type: .error).code, "bad-message")
        a.sendBinary([1, 2, 3])
        let binary = try a.expect(type: .error)
        XCTAssertEqual(binary.code, "bad-message")
        XCTAssertTrue(binary.message?.contains("binary") == true, binary.json)
        // Still connected and working.
        try a.op(#"["ok"]"#, seq: 1, base: 0)
        XCTAssertEqual(try a.expect(type: .ack).rev, 1)
        XCTAssertNil(a.snapshot.closeStatus)
    }

    func testOversizedMessageClosesWith1009AndOthersContinue() throws {
        var c = configuration()
        c.maxMessageBytes = 4096
        let server = try startServer(c)
        let a = try connect(server, room: "big")
        try a.join("ann", client: "a")
        let b = try connect(server, room: "big")
        try b.join("bob", client: "b")
        try a.op(#"["\#(String(repeating: "x", count: 5000))"]"#, seq: 1, base: 0)
        let error = try a.expect(type: .error)
        XCTAssertEqual(error.code, "too-large")
        XCTAssertEqual(error.fatal, true)
        XCTAssertEqual(try a.waitClosed().code, 1009)
        XCTAssertEqual(try b.expect(type: .leave).user, "ann")
        try b.op(#"["fine"]"#, seq: 1, base: 0)
        XCTAssertEqual(try b.expect(type: .ack).rev, 1)
    }

    func testInvalidRoomNameGetsBadRoomAnd1008() throws {
        let server = try startServer(configuration())
        for path in ["a%20b", "", "caf%C3%A9", String(repeating: "x", count: 129)] {
            let a = try connect(server, room: path)
            let error = try a.expect(type: .error)
            XCTAssertEqual(error.code, "bad-room", path)
            XCTAssertEqual(error.fatal, true)
            XCTAssertFalse(error.message?.isEmpty ?? true)
            XCTAssertEqual(try a.waitClosed().code, 1008, path)
        }
    }

    func testHealthz() throws {
        let server = try startServer(configuration())
        let empty = try httpGet(port: server.port, path: "/healthz")
        XCTAssertEqual(empty.status, 200)
        XCTAssertTrue(empty.headers.lowercased().contains("content-type: application/json"), empty.headers)
        XCTAssertEqual(empty.body, #"{"status":"ok","rooms":0,"connections":0,"revisions":{},"commits":0}"# + "\n")
        let a = try connect(server, room: "docs/one")
        try a.join("ann", client: "a")
        try a.op(#"["x"]"#, seq: 1, base: 0)
        try a.expect(type: .ack)
        let health = try httpGet(port: server.port, path: "/healthz")
        let json = try JSONSerialization.jsonObject(with: Data(health.body.utf8)) as? [String: Any]
        XCTAssertEqual(json?["status"] as? String, "ok")
        XCTAssertEqual(json?["rooms"] as? Int, 1)
        XCTAssertEqual(json?["connections"] as? Int, 1)
        XCTAssertEqual((json?["revisions"] as? [String: Int])?["docs/one"], 1)
        XCTAssertEqual(try httpGet(port: server.port, path: "/nothing").status, 404)
    }

    func testDocumentSurvivesARestartAndSnapshotsAndUnloadsWork() throws {
        let data = temporaryDirectory()
        var c = configuration(data: data)
        c.snapshotEvery = 5
        c.idleUnload = .milliseconds(50)
        let first = try startServer(c)
        let a = try connect(first, room: "keep")
        var editor = Editor(a, welcome: try a.join("ann", client: "a"))
        for i in 0..<12 {
            try editor.edit(.insert("\(i % 10)", at: i))
            try editor.settle(at: i + 1)
        }
        try first.logs.wait(for: "room keep: snapshot at rev 10")
        a.close()
        try a.waitClosed()
        try first.logs.wait(for: "room keep unloaded at rev 12")
        // A join after the unload loads it again from the snapshot and journal.
        let again = try connect(first, room: "keep")
        XCTAssertEqual(try again.join("ann", client: "a2").doc, editor.doc)
        try first.logs.wait(for: "room keep loaded at rev 12")
        again.send(#"{"type":"op","seq":1,"base":12,"op":[12,"!"]}"#)
        XCTAssertEqual(try again.expect(type: .ack).rev, 13)
        let expected = editor.doc + "!"
        let stats = try first.stop()
        XCTAssertEqual(stats.commits, 13)
        XCTAssertTrue(first.logs.contains("room keep: snapshot at rev 13"), first.logs.lines.joined(separator: "\n"))

        let second = try startServer(configuration(data: data))
        let b = try connect(second, room: "keep")
        let welcome = try b.join("bob", client: "b")
        XCTAssertEqual(welcome.rev, 13)
        XCTAssertEqual(welcome.doc, expected)
        // The dedupe table survives too: a resubmit of a2's seq 1 is recognised.
        let a3 = try connect(second, room: "keep")
        try a3.join("ann", client: "a2", since: 13)
        a3.send(#"{"type":"op","seq":1,"base":12,"op":[12,"!"]}"#)
        XCTAssertEqual(try a3.expect(type: .ack).rev, 13)
    }

    func testOneServerPerDataDirectory() throws {
        let data = temporaryDirectory()
        let first = try startServer(configuration(data: data))
        XCTAssertThrowsError(try ServerThread(configuration(data: data))) { error in
            XCTAssertTrue("\(error)".contains("in use by another collab-serve"), "\(error)")
        }
        try first.stop()
        let second = try startServer(configuration(data: data))
        try second.stop()
    }

    func testTornJournalLineIsDroppedWithAWarning() throws {
        let data = temporaryDirectory()
        let dir = data + "/crashed"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let journal = """
        {"type":"op","room":"crashed","user":"ann","client":"a","seq":1,"rev":1,"op":["hello"],"ts":1}
        {"type":"op","room":"crashed","user":"ann","client":"a","seq":2,"rev":2,"op":[5," world"],"ts":2}
        {"type":"op","room":"crashed","user":"ann","client":"a","seq":3,"rev":3,"op":[11,"!!
        """
        try journal.write(toFile: dir + "/journal.ndjson", atomically: true, encoding: .utf8)
        let server = try startServer(configuration(data: data))
        let a = try connect(server, room: "crashed")
        let welcome = try a.join("ann", client: "a", since: nil)
        XCTAssertEqual(welcome.rev, 2)
        XCTAssertEqual(welcome.doc, "hello world")
        let warning = try server.logs.wait(for: "torn")
        XCTAssertTrue(warning.hasPrefix("warn:"), warning)
        // The torn op was never acked: its resubmission commits now.
        a.send(#"{"type":"op","seq":3,"base":2,"op":[11,"!!"]}"#)
        XCTAssertEqual(try a.expect(type: .ack).rev, 3)
    }

    func testJournalSyncFailureAnswersUnavailableAndTheRoomRecovers() throws {
        let failSync = SharedFlag()
        let server = try startServer(configuration()) { host in
            host.store!.syncFault = { room in
                room == "fragile" && failSync.take() ? "injected I/O error" : nil
            }
        }
        let a = try connect(server, room: "fragile")
        try a.join("ann", client: "a")
        let other = try connect(server, room: "sturdy")
        try other.join("otto", client: "o")
        try a.op(#"["one"]"#, seq: 1, base: 0)
        XCTAssertEqual(try a.expect(type: .ack).rev, 1)

        failSync.set()
        try a.op(#"[3," two"]"#, seq: 2, base: 1)
        let error = try a.expect(type: .error)
        XCTAssertEqual(error.code, "unavailable")
        XCTAssertEqual(error.seq, 2)
        XCTAssertEqual(error.fatal, true)
        XCTAssertEqual(try a.waitClosed().code, 1011)
        XCTAssertFalse(a.messages.contains { $0.type == .ack && $0.seq == 2 }, "no ack for an op that is not durable")
        try server.logs.wait(for: "journal failure")

        // Other rooms keep working; the failed room reloads and takes the resubmission once.
        try other.op(#"["fine"]"#, seq: 1, base: 0)
        XCTAssertEqual(try other.expect(type: .ack).rev, 1)
        let a2 = try connect(server, room: "fragile")
        try a2.join("ann", client: "a", since: 1)
        a2.send(#"{"type":"op","seq":2,"base":1,"op":[3," two"]}"#)
        XCTAssertEqual(try a2.expect(type: .ack).seq, 2)
        let c = try connect(server, room: "fragile")
        XCTAssertEqual(try c.join("cat", client: "c").doc, "one two")
    }

    func testJournalWriteFailureAnswersUnavailable() throws {
        let failAppend = SharedFlag()
        let server = try startServer(configuration()) { host in
            host.store!.appendFault = { _ in failAppend.take() ? "injected ENOSPC" : nil }
        }
        let a = try connect(server, room: "full")
        try a.join("ann", client: "a")
        let b = try connect(server, room: "full")
        try b.join("bob", client: "b")
        failAppend.set()
        try a.op(#"["lost"]"#, seq: 1, base: 0)
        let error = try a.expect(type: .error)
        XCTAssertEqual(error.code, "unavailable")
        XCTAssertEqual(error.seq, 1)
        XCTAssertEqual(try a.waitClosed().code, 1011)
        XCTAssertEqual(try b.waitClosed().code, 1011)
        XCTAssertFalse(b.messages.contains { $0.type == .op }, "nobody sees an op that was not stored")
        let c = try connect(server, room: "full")
        let welcome = try c.join("cat", client: "c")
        XCTAssertEqual(welcome.rev, 0)
        XCTAssertEqual(welcome.doc, "")
    }

    func testDeadPeerIsDroppedByTheHeartbeatAndOthersSeeItLeave() throws {
        var c = configuration()
        c.pingInterval = .milliseconds(100)
        c.pingTimeout = .milliseconds(400)
        let server = try startServer(c)
        let a = try connect(server, room: "hb")
        try a.join("ann", client: "a")
        let dead = try connect(server, room: "hb")
        try dead.join("zed", client: "z")
        try a.expect(type: .join)
        dead.pauseReading()  // it no longer reads, so it never answers a ping
        // `a` answers pings (the client transport does) and stays.
        let leave = try a.expect("zed leaves", timeout: 10) { $0.type == .leave }
        XCTAssertEqual(leave.user, "zed")
        try server.logs.wait(for: "heartbeat timeout")
        try a.op(#"["still here"]"#, seq: 1, base: 0)
        XCTAssertEqual(try a.expect(type: .ack).rev, 1)
    }

    func testSlowConsumerIsClosedAndOthersContinue() throws {
        var c = configuration()
        c.maxQueueBytes = 256 << 10
        let server = try startServer(c)
        let writer = try connect(server, room: "flood")
        try writer.join("wri", client: "w")
        let slow = try connect(server, room: "flood")
        try slow.join("slo", client: "s")
        let bystander = try connect(server, room: "flood")
        try bystander.join("bys", client: "b")
        try writer.expect(type: .join)
        slow.pauseReading()
        // Event relays (an app's own messages, passed through whole and not coalesced like
        // presence) fill the kernel's socket buffers and then the slow reader's queue; the
        // bystander reads everything.
        let pad = String(repeating: "abcdefgh", count: 7 << 10)  // 56 KiB: under the 64 KiB cap on events
        var sent = 0
        var closed = false
        while !closed && sent < 2000 {
            for _ in 0..<16 {
                sent += 1
                writer.send(#"{"type":"event","n":\#(sent),"pad":"\#(pad)"}"#)
            }
            let last = sent
            try bystander.expect("event \(last)", timeout: 10) { $0.type == .event && $0.extra?["n"]?.intValue == last }
            closed = server.logs.contains("slow consumer")
        }
        XCTAssertTrue(closed, "the slow reader was never closed")
        // The others see it leave at once (not after a close handshake it cannot complete).
        try writer.waitForAny("slo leaves", timeout: 2) { $0.type == .leave && $0.user == "slo" }
        try bystander.waitForAny("slo leaves", timeout: 2) { $0.type == .leave && $0.user == "slo" }
        XCTAssertNil(writer.snapshot.closeStatus)
        XCTAssertNil(bystander.snapshot.closeStatus)
        try writer.op(#"["after"]"#, seq: 1, base: 0)
        XCTAssertEqual(try writer.expect(type: .ack).rev, 1)
    }

    func testShutdownClosesClientsWith1001AndSnapshots() throws {
        let data = temporaryDirectory()
        let server = try startServer(configuration(data: data))
        let a = try connect(server, room: "bye")
        try a.join("ann", client: "a")
        try a.op(#"["kept"]"#, seq: 1, base: 0)
        try a.expect(type: .ack)
        try server.stop()
        let close = try a.waitClosed()
        XCTAssertEqual(close.code, 1001)
        let snapshot = try String(contentsOfFile: data + "/bye/snapshot.json", encoding: .utf8)
        XCTAssertTrue(snapshot.contains(#""doc":"kept""#), snapshot)
        XCTAssertEqual(try String(contentsOfFile: data + "/bye/journal.ndjson", encoding: .utf8), "")
    }
}

func isSubsequence(_ small: String, of big: String) -> Bool {
    var it = big.makeIterator()
    return small.allSatisfy { ch in
        while let c = it.next() { if c == ch { return true } }
        return false
    }
}

/// A flag set by the test thread and taken once by the loop thread.
final class SharedFlag: Sendable {
    let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    func take() -> Bool { value.exchange(false, ordering: .sequentiallyConsistent) }
}

/// Measurements, not checks: `COLLAB_BENCH=1 swift test --filter ServerHostBenchmarks`.
final class ServerHostBenchmarks: HostTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["COLLAB_BENCH"] != nil else {
            throw XCTSkip("set COLLAB_BENCH=1 to run the measurements")
        }
        try super.setUpWithError()
    }

    func report(_ text: String) {
        FileHandle.standardError.write(Data("bench: \(text)\n".utf8))
    }

    /// Runs twice in one invocation: without the message rate limit, and with one that every
    /// message passes through but none reaches (its cost without its effect), so the difference
    /// is the limiter's per-message cost on the hot path.
    func testCommitLatencyAndThroughput() throws {
        for (label, limit) in [("rate limit off", RateLimit.unlimited), ("rate limit on", RateLimit(rate: 1e9, burst: 1e9)),
                               ("rate limit off", RateLimit.unlimited), ("rate limit on", RateLimit(rate: 1e9, burst: 1e9))] {
            try commitLatencyAndThroughput(label: label, limit: limit)
        }
    }

    func commitLatencyAndThroughput(label: String, limit: RateLimit) throws {
        let data = ProcessInfo.processInfo.environment["COLLAB_BENCH_DATA"] ?? temporaryDirectory()
        var c = configuration(data: data + "/\(UUID().uuidString)")
        c.snapshotEvery = 0
        c.rateLimit = limit
        let server = try startServer(c)
        report("[\(label)]")
        let readers = Int(ProcessInfo.processInfo.environment["COLLAB_BENCH_READERS"] ?? "") ?? 10
        let w = try connect(server, room: "bench")
        try w.join("w", client: "w")
        var others: [TestClient] = []
        for i in 0..<readers {
            let r = try connect(server, room: "bench")
            try r.join("r\(i)", client: "r\(i)")
            others.append(r)
        }
        // 1. One op at a time: the round trip of commit + fdatasync + ack.
        let rounds = 300
        var latencies: [Double] = []
        for i in 1...rounds {
            let t0 = DispatchTime.now().uptimeNanoseconds
            w.send(#"{"type":"op","seq":\#(i),"base":\#(i - 1),"op":["x"]}"#)
            _ = try w.expect("ack \(i)") { $0.type == .ack && $0.seq == i }
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        latencies.sort()
        report("sequential: \(rounds) ops, ack latency p50 \(fmt(latencies[rounds / 2])) ms, p99 \(fmt(latencies[rounds * 99 / 100])) ms, \(readers) readers")

        // 2. Pipelined: the writer sends a burst; every op is journaled, synced in groups, acked
        // and fanned out to the readers.
        let burst = 20_000
        let t0 = DispatchTime.now().uptimeNanoseconds
        for i in rounds + 1...rounds + burst {
            w.send(#"{"type":"op","seq":\#(i),"base":\#(i - 1),"op":["y"]}"#)
        }
        let last = rounds + burst
        _ = try w.expect("ack \(last)", timeout: 60) { $0.type == .ack && $0.seq == last }
        let ackSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        for r in others { _ = try r.expect("op \(last)", timeout: 60) { $0.type == .op && $0.rev == last } }
        let fanSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let stats = try server.stop()
        report("pipelined: \(burst) ops acked in \(fmt(ackSeconds)) s = \(Int(Double(burst) / ackSeconds)) ops/s; all \(readers) readers had them after \(fmt(fanSeconds)) s (\(Int(Double(burst * readers) / fanSeconds)) deliveries/s)")
        report("server: \(stats.commits) commits, \(stats.syncs) syncs (\(fmt(Double(stats.commits) / Double(max(1, stats.syncs)))) ops per fdatasync), sync avg \(fmt(Double(stats.syncNanos) / Double(max(1, stats.syncs)) / 1e6)) ms, max \(fmt(Double(stats.maxSyncNanos) / 1e6)) ms")
    }

    /// The protocol's own pattern: each client has one op in flight and sends the next when it
    /// is acked, so throughput comes from many clients and fsync grouping across them.
    func testManyWritersOneOpInFlight() throws {
        var c = configuration()
        c.snapshotEvery = 0
        // Each writer sends its next op the moment the last is acked: thousands a second on
        // loopback, a load generator rather than an editor.
        c.rateLimit = .unlimited
        c.maxConnectionsPerAddress = 0  // every client comes from 127.0.0.1 (COLLAB_BENCH_WRITERS may pass 256)
        let server = try startServer(c)
        let writers = Int(ProcessInfo.processInfo.environment["COLLAB_BENCH_WRITERS"] ?? "") ?? 32
        let seconds = 3.0
        let counters = BenchCounters()
        try clients.sync { loop in
            for i in 0..<writers {
                var h = WebSocketHandlers()
                var seq = 0
                func sendNext(_ c: WebSocketConnection, base: Int) {
                    guard !counters.stop.load(ordering: .relaxed) else { return }
                    seq += 1
                    c.send(text: #"{"type":"op","seq":\#(seq),"base":\#(base),"op":["x"]}"#)
                }
                h.onOpen = { c in c.send(text: #"{"type":"hello","user":"w\#(i)","client":"w\#(i)"}"#) }
                h.onText = { c, bytes in
                    // Cheap classification: acks and welcomes drive the writer; ops are counted.
                    guard let m = try? bytes.withUnsafeBufferPointer({ try Message.decode($0) }) else { return }
                    switch m.type {
                    case .welcome:
                        counters.ready.add(1, ordering: .relaxed)
                        sendNext(c, base: m.rev ?? 0)
                    case .ack:
                        counters.acks.add(1, ordering: .relaxed)
                        sendNext(c, base: m.rev ?? 0)
                    case .op:
                        counters.ops.add(1, ordering: .relaxed)
                    default: break
                    }
                }
                _ = try loop.connect(to: server.url + "/many", handlers: h)
            }
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        while Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 < seconds {
            usleep(50_000)  // a measurement window, not a synchronisation
        }
        counters.stop.store(true, ordering: .relaxed)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let acked = counters.acks.load(ordering: .relaxed)
        let delivered = counters.ops.load(ordering: .relaxed)
        let stats = try server.stop()
        report("\(writers) writers, one op in flight each: \(Int(Double(acked) / elapsed)) commits/s, \(Int(Double(delivered) / elapsed)) broadcast ops received/s")
        report("server: \(stats.commits) commits, \(stats.syncs) syncs (\(fmt(Double(stats.commits) / Double(max(1, stats.syncs)))) ops per fdatasync), sync avg \(fmt(Double(stats.syncNanos) / Double(max(1, stats.syncs)) / 1e6)) ms, max \(fmt(Double(stats.maxSyncNanos) / 1e6)) ms")
    }

    /// Presence fan-out: every member moves its cursor faster than the relay interval, so the
    /// server merges, coalesces and relays; what it costs per received update and per delivery.
    func testPresenceFanOut() throws {
        var c = configuration()
        c.snapshotEvery = 0
        c.maxConnectionsPerAddress = 0  // COLLAB_BENCH_MEMBERS may pass 256, all from 127.0.0.1
        let server = try startServer(c)
        let members = Int(ProcessInfo.processInfo.environment["COLLAB_BENCH_MEMBERS"] ?? "") ?? 50
        let perSecond = 40.0
        let seconds = 3.0
        let counters = BenchCounters()
        let connections = try clients.sync { loop in
            try (0..<members).map { i in
                var h = WebSocketHandlers()
                h.onOpen = { c in c.send(text: #"{"type":"hello","user":"m\#(i)","client":"m\#(i)"}"#) }
                h.onText = { c, bytes in
                    // Counting by a byte search keeps the clients' cost out of the server's.
                    if bytes.count > 16, bytes[9] == UInt8(ascii: "p") { counters.ops.add(1, ordering: .relaxed) }
                    else if counters.ready.load(ordering: .relaxed) < members, bytes.starts(with: Array(#"{"type":"welcome""#.utf8)) {
                        counters.ready.add(1, ordering: .relaxed)
                    }
                }
                return UncheckedBox(try loop.connect(to: server.url + "/presence", handlers: h))
            }
        }
        waitUntil("everyone in the room", timeout: 30) { counters.ready.load(ordering: .relaxed) == members }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        var tick = 0
        // Every member sends one cursor per tick, all ticks on the schedule perSecond.
        while Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 < seconds {
            tick += 1
            let n = tick
            try clients.sync { _ in
                for (i, box) in connections.enumerated() {
                    let c = box.value
                    c.send(text: #"{"type":"presence","cursor":{"anchor":0,"head":0},"typing":true,"status":"m\#(i) \#(n)"}"#)
                }
            }
            sent += members
            let due = t0 + UInt64(Double(tick) / perSecond * 1e9)
            let now = DispatchTime.now().uptimeNanoseconds
            if due > now { usleep(UInt32((due - now) / 1000)) }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        usleep(200_000)  // the last held updates are released 50 ms later; a measurement window
        let delivered = counters.ops.load(ordering: .relaxed)
        let stats = try server.stop()
        report("presence: \(members) members, \(Int(perSecond)) cursor updates/s each: \(Int(Double(sent) / elapsed)) updates/s in, \(Int(Double(delivered) / elapsed)) presence deliveries/s out (\(fmt(Double(delivered) / Double(max(1, sent)) )) per update; without coalescing \(members - 1))")
        report("server: \(stats.messagesIn) messages in, \(stats.deliveries) deliveries")
    }

    /// What the limiter adds to each message, alone: the clock read and the bucket arithmetic
    /// of `admit` (the end-to-end comparison is in testCommitLatencyAndThroughput).
    func testRateLimiterCostPerMessage() throws {
        let n = 10_000_000
        var limiter = ConnectionRateLimiter(RateLimit(rate: 200), now: ServerHost.monotonicNanos())
        var admitted = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n where limiter.admit(now: ServerHost.monotonicNanos()) { admitted += 1 }
        let ns = Double(DispatchTime.now().uptimeNanoseconds - t0) / Double(n)
        var clock: UInt64 = 0
        let t1 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n { clock &+= ServerHost.monotonicNanos() }
        let clockNs = Double(DispatchTime.now().uptimeNanoseconds - t1) / Double(n)
        report("rate limiter: \(fmt(ns)) ns per message (admit with its clock read; the clock alone \(fmt(clockNs)) ns); \(admitted) of \(n) admitted")
        XCTAssertGreaterThan(clock, 0)
    }

    func fmt(_ x: Double) -> String { String(format: "%.2f", x) }
}

final class BenchCounters: Sendable {
    let acks = Atomic<Int>(0)
    let ops = Atomic<Int>(0)
    let ready = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}
