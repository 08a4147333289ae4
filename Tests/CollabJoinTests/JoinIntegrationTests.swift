import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real `collab-serve` and several real `collab-join` processes on loopback.
final class JoinIntegrationTests: JoinTestCase {

    func testAPipedEditIsDeliveredAndTheSnapshotShowsIt() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/notes"
        let one = try join(url)
        one.send(#"{"type":"insert","pos":0,"text":"héllo 😀"}"# + "\n")
        one.closeInput()
        XCTAssertEqual(one.waitForExit(timeout: 15), 0, one.stderr.text)
        let lines = JoinTranscript(one.stdout.data)
        XCTAssertEqual(lines.messages.map(\.type), [.welcome, .roster, .op, .ack], one.stdout.text)
        XCTAssertEqual(lines.messages[2].rev, 1)
        XCTAssertEqual(lines.messages[3].rev, 1)
        XCTAssertTrue(one.stderr.text.contains("connected to \(url)"), one.stderr.text)

        // A second edit, no trailing newline on the last line; and --snapshot prints exactly.
        let two = try join(url, ["--quiet"])
        two.send(#"{"type":"insert","pos":7,"text":"!"}"# + "\n" + #"["> "]"#)
        two.closeInput()
        XCTAssertEqual(two.waitForExit(timeout: 15), 0, two.stderr.text)
        XCTAssertEqual(two.stderr.text, "")
        XCTAssertEqual(try snapshot(url), "> héllo 😀!")
        XCTAssertEqual(try applyThroughOTApply(two.stdout.data), "> héllo 😀!")

        // An empty room's snapshot is empty, not an error.
        XCTAssertEqual(try snapshot(server.url + "/empty"), "")
    }

    func testConcurrentBotsConverge() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/bots"
        let botCount = 5, linesPerBot = 200
        var bots: [ChildProcess] = []
        var total = 0
        var scripts: [[String]] = []
        for b in 0 ..< botCount {
            bots.append(try join(url, ["--user", "bot\(b)", "--quiet"]))
            let (lines, chars) = botLines(bot: b, count: linesPerBot, seed: UInt64(42 + b))
            scripts.append(lines)
            total += chars
        }
        for bot in bots {
            XCTAssertTrue(bot.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 }, bot.stderr.text)
        }
        // Each bot types in bursts of 1-5 lines and waits for one more ack before the next
        // burst, so bursts are composed while an op is in flight and the bots interleave.
        let group = DispatchGroup()
        for (b, bot) in bots.enumerated() {
            let lines = scripts[b]
            group.enter()
            Thread.detachNewThread {
                var rng = SplitMix64(seed: UInt64(b) &* 7919)
                var i = 0
                while i < lines.count {
                    let n = min(lines.count - i, Int.random(in: 1 ... 5, using: &rng))
                    let acks = bot.stdout.data.occurrences(of: #""type":"ack""#)
                    bot.send(lines[i ..< i + n].joined(separator: "\n") + "\n")
                    i += n
                    bot.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"ack""#) > acks }
                }
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        // Every bot ends up with every character: all edits committed and seen by everyone.
        for (b, bot) in bots.enumerated() {
            waitForDocument(bot, "bot \(b) to see all \(total) characters") { $0.unicodeScalars.count == total }
        }
        for bot in bots { bot.closeInput() }
        var documents: [String] = []
        for bot in bots {
            XCTAssertEqual(bot.waitForExit(timeout: 15), 0, bot.stderr.text)
            documents.append(try applyThroughOTApply(bot.stdout.data))
        }
        let snap = try snapshot(url)
        XCTAssertEqual(snap.unicodeScalars.count, total)
        for (b, doc) in documents.enumerated() { XCTAssertEqual(doc, snap, "bot \(b) diverged") }
        for b in 0 ..< botCount {
            XCTAssertEqual(snap.filter { $0 == Character("\(b)") }.count, linesPerBot, "bot \(b)'s inserts")
        }
        // Every bot's own ops appear on its stdout as committed ops before their acks.
        for bot in bots {
            let t = JoinTranscript(bot.stdout.data)
            for (i, m) in t.messages.enumerated() where m.type == .ack {
                XCTAssertEqual(t.messages[i - 1].type, .op)
                XCTAssertEqual(t.messages[i - 1].rev, m.rev)
                XCTAssertEqual(t.messages[i - 1].seq, m.seq)
            }
        }
    }

    func testServerKilledAndRestartedLosesNoAcknowledgedOpAndClientsDeliverTheirEdits() throws {
        let data = try temporaryDirectory()
        var server = try startServer(data: data)
        let port = server.port
        let url = server.url + "/crash"
        let writer = try join(url, ["--user", "writer"])
        let listener = try join(url, ["--listen", "--user", "listener"])
        let (lines, total) = botLines(bot: 7, count: 80, seed: 99)
        XCTAssertTrue(writer.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })
        XCTAssertTrue(listener.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })

        // Type the first half, a line at a time, each acknowledged.
        for line in lines[..<40] {
            let acks = writer.stdout.data.occurrences(of: #""type":"ack""#)
            writer.send(line + "\n")
            XCTAssertTrue(writer.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"ack""#) > acks })
        }
        // A burst, then the crash right away: some of it acknowledged, some in flight.
        writer.send(lines[40 ..< 50].joined(separator: "\n") + "\n")
        XCTAssertTrue(writer.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"ack""#) >= 41 })
        server.child.kill9()
        let acknowledged = JoinTranscript(writer.stdout.data).messages.filter { $0.type == .ack }.compactMap(\.rev).max() ?? 0
        waitUntil("the writer to notice the crash") { writer.stderr.text.contains("disconnected") }

        // Edits made while the server is down are kept.
        writer.send(lines[50...].joined(separator: "\n") + "\n")
        waitUntil("the writer to retry") { writer.stderr.text.contains("retrying in") }

        server = try startServer(data: data, port: port)
        waitForDocument(writer, "the writer's edits to be committed after the restart") { $0.unicodeScalars.count == total }
        waitForDocument(listener, "the listener to catch up after the restart") { $0.unicodeScalars.count == total }
        XCTAssertTrue(writer.stderr.text.contains("reconnected"), writer.stderr.text)
        XCTAssertTrue(listener.stderr.text.contains("reconnected"), listener.stderr.text)

        writer.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
        let fromWriter = try applyThroughOTApply(writer.stdout.data)
        let snap = try snapshot(url)
        XCTAssertEqual(fromWriter, snap)
        XCTAssertEqual(snap.unicodeScalars.count, total)
        // Nothing acknowledged before the crash was lost: the history kept those revisions
        // (a lost one would have made the writer's catch-up impossible and dropped edits).
        let final = try XCTUnwrap(JoinTranscript(writer.stdout.data).document)
        XCTAssertGreaterThanOrEqual(final.rev, acknowledged)
        XCTAssertFalse(writer.stderr.text.contains("were dropped"), writer.stderr.text)
        listener.signal(SIGTERM)
        XCTAssertEqual(listener.waitForExit(timeout: 10), 128 + SIGTERM, listener.stderr.text)
        XCTAssertEqual(try applyThroughOTApply(listener.stdout.data), snap)
    }

    func testLateJoinerAndSinceCatchUpGetTheSameDocument() throws {
        // Short heartbeats so the server drops a stopped client quickly.
        let server = try startServer(data: try temporaryDirectory(), extra: ["--ping-interval", "0.3", "--ping-timeout", "0.3"])
        let url = server.url + "/late"
        let writer = try join(url, ["--user", "writer"])
        let sleeper = try join(url, ["--listen", "--user", "sleeper"])
        XCTAssertTrue(sleeper.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })
        writer.send(#"{"type":"insert","pos":0,"text":"first line\n"}"# + "\n")
        waitForDocument(sleeper, "the sleeper to see the first edit") { $0 == "first line\n" }

        // The sleeper stops; the server finds it dead and drops it; edits go on meanwhile.
        sleeper.signal(SIGSTOP)
        waitUntil("the server to drop the stopped client; server log:\n\(server.child.stderr.text)\nwriter:\n\(writer.stdout.text)") {
            writer.stdout.data.occurrences(of: #""type":"leave""#) >= 1
        }
        writer.send(#"{"type":"insert","pos":11,"text":"second line\n"}"# + "\n"
            + #"{"type":"replace","text":"first line, edited\nsecond line\n"}"# + "\n"
            + #"{"type":"undo"}"# + "\n"
            + #"{"type":"delete","pos":0,"len":6}"# + "\n")
        waitForDocument(writer, "the writer's edits") { $0 == "line\nsecond line\n" }
        sleeper.signal(SIGCONT)

        // It reconnects with "since" and receives the ops it missed.
        waitForDocument(sleeper, "the sleeper to catch up") { $0 == "line\nsecond line\n" }
        let catchUp = JoinTranscript(sleeper.stdout.data).messages.filter { $0.type == .welcome }
        XCTAssertEqual(catchUp.count, 2)
        XCTAssertEqual(catchUp.last?.since, 1, sleeper.stdout.text)
        XCTAssertNil(catchUp.last?.doc)

        // A late joiner gets the whole document in its welcome: the same text.
        let late = try join(url, ["--quiet"], stdinNull: true)
        XCTAssertEqual(late.waitForExit(timeout: 15), 0, late.stderr.text)
        let welcome = try XCTUnwrap(JoinTranscript(late.stdout.data).messages.first)
        XCTAssertEqual(welcome.type, .welcome)
        XCTAssertEqual(welcome.doc, "line\nsecond line\n")
        XCTAssertEqual(try snapshot(url), "line\nsecond line\n")
        XCTAssertEqual(try applyThroughOTApply(sleeper.stdout.data), "line\nsecond line\n")
        writer.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
    }

    func testBadLinesAndOversizedFramesGetErrorsWhileOthersGoOn() throws {
        let server = try startServer(data: try temporaryDirectory(), extra: ["--max-message", "2K"])
        let url = server.url + "/limits"
        let steady = try join(url, ["--user", "steady", "--quiet"])
        let sloppy = try join(url, ["--user", "sloppy", "--max-line", "4096"])
        XCTAssertTrue(sloppy.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })
        XCTAssertTrue(steady.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })

        let big = String(repeating: "x", count: 3000)   // under --max-line, over the server's 2K
        let huge = String(repeating: "y", count: 5000)  // over --max-line
        sloppy.send("""
        not json
        {"type":"insert","pos":0}
        {"type":"insert","pos":1000,"text":"outside"}
        {"type":"welcome","rev":1}
        {"type":"event","data":"\(huge)"}
        {"type":"event","data":"\(big)"}
        {"type":"insert","pos":0,"text":"S"}

        """)
        steady.send(#"{"type":"insert","pos":0,"text":"a"}"# + "\n")
        waitUntil("the sloppy client's edit after the oversized frame") {
            JoinTranscript(steady.stdout.data).document.map { $0.text.contains("S") && $0.text.contains("a") } ?? false
        }
        let err = sloppy.stderr.text
        for n in 1 ... 5 { XCTAssertTrue(err.contains("error: line \(n): "), "line \(n) not reported:\n\(err)") }
        XCTAssertTrue(err.contains("line 5: line longer than the limit of 4096 bytes"), err)
        XCTAssertFalse(err.contains("line 6:"), err)
        // The server refused the 3 KB frame and closed; the client came back.
        let errors = JoinTranscript(sloppy.stdout.data).messages.filter { $0.type == .error }
        XCTAssertEqual(errors.first?.code, "too-large", sloppy.stdout.text)
        XCTAssertTrue(err.contains("reconnected"), err)

        // The steady client never noticed anything but the other's comings and goings.
        steady.send(#"{"type":"insert","pos":0,"text":"b"}"# + "\n")
        steady.closeInput()
        XCTAssertEqual(steady.waitForExit(timeout: 15), 0, steady.stderr.text)
        XCTAssertEqual(steady.stderr.text, "")
        XCTAssertEqual(JoinTranscript(steady.stdout.data).messages.filter { $0.type == .error }.count, 0)
        sloppy.closeInput()
        XCTAssertEqual(sloppy.waitForExit(timeout: 15), 0, sloppy.stderr.text)
        XCTAssertEqual(try applyThroughOTApply(sloppy.stdout.data), try snapshot(url))

        // An edit the server refuses as too large is not resubmitted forever: exit 65.
        let stubborn = try join(url, ["--quiet"])
        stubborn.send(#"{"type":"insert","pos":0,"text":"\#(big)"}"# + "\n")
        stubborn.closeInput()
        XCTAssertEqual(stubborn.waitForExit(timeout: 15), 65, stubborn.stderr.text)
        XCTAssertTrue(stubborn.stderr.text.contains("too large"), stubborn.stderr.text)
    }

    func testStrictStopsAtTheFirstBadLineButDeliversWhatCameBefore() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/strict"
        let c = try join(url, ["--strict", "--quiet"])
        c.send(#"{"type":"insert","pos":0,"text":"kept"}"# + "\n" + "{oops\n" + #"{"type":"insert","pos":0,"text":"never"}"# + "\n")
        XCTAssertEqual(c.waitForExit(timeout: 15), 65, c.stderr.text)
        XCTAssertTrue(c.stderr.text.contains("line 2: invalid JSON"), c.stderr.text)
        XCTAssertEqual(try snapshot(url), "kept")
    }

    func testUnreachableServerExits69AfterTheRetries() throws {
        let port = try freePort()
        let start = Date()
        let c = try join("ws://127.0.0.1:\(port)/nobody", ["--max-retries", "2"])
        c.send(#"{"type":"insert","pos":0,"text":"lost?"}"# + "\n")
        XCTAssertEqual(c.waitForExit(timeout: 10), 69, c.stderr.text)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        let err = c.stderr.text
        XCTAssertEqual(err.components(separatedBy: "retrying in").count - 1, 2, err)
        XCTAssertTrue(err.contains("gave up after 2 retries"), err)
        XCTAssertEqual(c.stdout.text, "")

        // With unlimited retries, the drain timeout still bounds a pipe whose input ended.
        let patient = try join("ws://127.0.0.1:\(port)/nobody", ["--drain-timeout", "0.5", "--quiet"])
        patient.send(#"{"type":"insert","pos":0,"text":"lost?"}"# + "\n")
        patient.closeInput()
        XCTAssertEqual(patient.waitForExit(timeout: 10), 69, patient.stderr.text)
        XCTAssertTrue(patient.stderr.text.contains("could not join"), patient.stderr.text)

        // --snapshot too, and with no retries at all.
        let s = try join("ws://127.0.0.1:\(port)/nobody", ["--snapshot", "--max-retries", "0"], stdinNull: true)
        XCTAssertEqual(s.waitForExit(timeout: 10), 69, s.stderr.text)
    }

    func testBadRoomAndBadURL() throws {
        let server = try startServer(data: try temporaryDirectory())
        let c = try join(server.url + "/bad!room", ["--max-retries", "3"], stdinNull: true)
        XCTAssertEqual(c.waitForExit(timeout: 10), 64, c.stderr.text)
        XCTAssertTrue(c.stderr.text.contains("bad room name"), c.stderr.text)
        XCTAssertFalse(c.stderr.text.contains("retrying"), c.stderr.text)

        for bad in ["http://127.0.0.1:1/x", "ws://127.0.0.1:1/", "ws://127.0.0.1:1"] {
            let u = try join(bad, [], stdinNull: true)
            XCTAssertEqual(u.waitForExit(timeout: 10), 64, "\(bad): \(u.stderr.text)")
        }
        // Failover URLs of different rooms are a usage error, caught before any connection.
        let mixed = try spawn("collab-join", [server.url + "/a", server.url + "/b"], stdinNull: true)
        XCTAssertEqual(mixed.waitForExit(timeout: 10), 64, mixed.stderr.text)
        XCTAssertTrue(mixed.stderr.text.contains("every URL must name the same room"), mixed.stderr.text)
    }

    func testSignalLeavesPolitely() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/bye"
        let watcher = try join(url, ["--listen", "--quiet"])
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"welcome""#) >= 1 })
        let c = try join(url, ["--user", "leaver"])
        c.send(#"{"type":"insert","pos":0,"text":"z"}"# + "\n")
        XCTAssertTrue(c.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"ack""#) >= 1 })
        c.signal(SIGINT)
        XCTAssertEqual(c.waitForExit(timeout: 10), 128 + SIGINT, c.stderr.text)
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { $0.occurrences(of: #""type":"leave""#) >= 1 }, watcher.stdout.text)
        let leave = JoinTranscript(watcher.stdout.data).messages.first { $0.type == .leave }
        XCTAssertEqual(leave?.user, "leaver")
        watcher.signal(SIGTERM)
        XCTAssertEqual(watcher.waitForExit(timeout: 10), 128 + SIGTERM)
    }
}
