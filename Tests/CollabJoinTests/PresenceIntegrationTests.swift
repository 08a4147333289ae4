import CollabOT
import CollabPresence
import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Presence through the real binaries: collab-serve and collab-join processes.
final class PresenceIntegrationTests: JoinTestCase {
    func messages(_ child: ChildProcess, _ type: MessageType) -> [Message] {
        JoinTranscript(child.stdout.data).messages.filter { $0.type == type }
    }

    func testTwoClientsSeeEachOtherWithColoursAndAKilledOneLeaves() throws {
        let server = try startServer(data: try temporaryDirectory(), extra: ["--ping-interval", "0.3", "--ping-timeout", "0.3"])
        let url = server.url + "/presence"
        let ann = try join(url, ["--user", "ann", "--name", "Ann Lee"])
        XCTAssertTrue(ann.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .roster }.count >= 1 })
        let bob = try join(url, ["--user", "bob"])
        XCTAssertTrue(bob.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .roster }.count >= 1 })
        // bob's roster has both with their colours; ann sees bob join with his.
        let roster = try XCTUnwrap(messages(bob, .roster).first)
        XCTAssertEqual(roster.members?.map(\.user), ["ann", "bob"])
        let annColor = try XCTUnwrap(roster.members?.first?.color)
        let bobColor = try XCTUnwrap(roster.members?.last?.color)
        XCTAssertTrue(Palette.colors.contains(annColor) && Palette.colors.contains(bobColor))
        XCTAssertNotEqual(annColor, bobColor)
        XCTAssertEqual(roster.members?.first?.initials, "AL")
        XCTAssertTrue(ann.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .join }.count >= 1 })
        XCTAssertEqual(messages(ann, .join).first?.color, bobColor)

        // bob's cursor reaches ann, stamped.
        bob.send(#"{"type":"cursor","anchor":0}"# + "\n")
        XCTAssertTrue(ann.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .presence }.count >= 1 }, ann.stdout.text)
        let p = try XCTUnwrap(messages(ann, .presence).first)
        XCTAssertEqual(p.user, "bob")
        XCTAssertEqual(p.color, bobColor)
        XCTAssertEqual(p.cursor, Selection(anchor: 0, head: 0))

        // bob dies without a word: ann sees him leave within ping interval + timeout (+ slack).
        bob.signal(SIGKILL)
        let killed = Date()
        XCTAssertTrue(ann.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .leave }.count >= 1 }, ann.stdout.text)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 0.3 + 0.3 + 1.0)
        XCTAssertEqual(messages(ann, .leave).first?.user, "bob")
        ann.closeInput()
        XCTAssertEqual(ann.waitForExit(timeout: 15), 0, ann.stderr.text)
    }

    func testACursorIsShiftedByInsertsBeforeIt() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/shift"
        let writer = try join(url, ["--user", "writer"])
        writer.send(#"{"type":"insert","pos":0,"text":"world"}"# + "\n")
        waitForDocument(writer, "the first edit") { $0 == "world" }
        let reader = try join(url, ["--user", "reader"])
        XCTAssertTrue(reader.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .roster }.count >= 1 })
        // The reader puts its caret before "world" at revision 1; the writer then inserts in
        // front of it twice.
        reader.send(#"{"type":"cursor","anchor":0}"# + "\n")
        XCTAssertTrue(writer.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .presence }.count >= 1 })
        writer.send(#"{"type":"insert","pos":0,"text":"hello "}"# + "\n" + #"{"type":"insert","pos":0,"text":">> "}"# + "\n")
        waitForDocument(writer, "the inserts") { $0 == ">> hello world" }
        // Someone arriving now sees the caret where it is now: still at 0, since others' text
        // inserted at a caret does not push it.
        let late = try join(url, ["--quiet"], stdinNull: true)
        XCTAssertEqual(late.waitForExit(timeout: 15), 0, late.stderr.text)
        let roster = try XCTUnwrap(JoinTranscript(late.stdout.data).messages.first { $0.type == .roster })
        let caret = try XCTUnwrap(roster.members?.first { $0.user == "reader" })
        XCTAssertEqual(caret.cursor, Selection(anchor: 0, head: 0))
        XCTAssertEqual(caret.rev, 3)
        // Move it to just before "world" (after "hello "), then insert before it again.
        reader.send(#"{"type":"cursor","anchor":9}"# + "\n")
        XCTAssertTrue(writer.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .presence }.count >= 2 })
        writer.send(#"{"type":"insert","pos":3,"text":"oh, "}"# + "\n")
        waitForDocument(writer, "the last insert") { $0 == ">> oh, hello world" }
        let later = try join(url, ["--quiet"], stdinNull: true)
        XCTAssertEqual(later.waitForExit(timeout: 15), 0, later.stderr.text)
        let moved = try XCTUnwrap(JoinTranscript(later.stdout.data).messages.first { $0.type == .roster }?.members?.first { $0.user == "reader" })
        XCTAssertEqual(moved.cursor, Selection(anchor: 13, head: 13), "still just before \"world\"")
        XCTAssertEqual(moved.rev, 4)
        writer.closeInput()
        reader.closeInput()
        XCTAssertEqual(writer.waitForExit(timeout: 15), 0, writer.stderr.text)
        XCTAssertEqual(reader.waitForExit(timeout: 15), 0, reader.stderr.text)
    }

    func testABurstOfPresenceIsCoalescedAndTheLastOneArrives() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/burst"
        let watcher = try join(url, ["--user", "watcher"])
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .roster }.count >= 1 })
        let mover = try join(url, ["--user", "mover"])
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .join }.count >= 1 })
        mover.send(#"{"type":"insert","pos":0,"text":"\#(String(repeating: "x", count: 300))"}"# + "\n")
        waitForDocument(watcher, "the text") { $0.count == 300 }
        // 200 cursor moves in about one second.
        let start = Date()
        for i in 1 ... 200 {
            mover.send(#"{"type":"cursor","anchor":\#(i)}"# + "\n")
            let due = start.addingTimeInterval(Double(i) * 0.005)
            let wait = due.timeIntervalSinceNow
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
        }
        waitUntil("the last cursor to arrive; watcher:\n\(watcher.stdout.text.suffix(2000))") {
            self.messages(watcher, .presence).last?.cursor?.head == 200
        }
        let seen = messages(watcher, .presence)
        // Coalesced: one per 50 ms (plus the first), not 200; not dropped: the last one came.
        XCTAssertLessThan(seen.count, 60, "\(seen.count) presence messages relayed")
        XCTAssertGreaterThan(seen.count, 3)
        let heads = seen.compactMap(\.cursor?.head)
        XCTAssertEqual(heads, heads.sorted(), "relayed in order")
        watcher.closeInput()
        mover.closeInput()
        XCTAssertEqual(watcher.waitForExit(timeout: 15), 0)
        XCTAssertEqual(mover.waitForExit(timeout: 15), 0)
    }

    func testTypingStopsByItselfWhenTheClientGoesSilent() throws {
        let server = try startServer(data: try temporaryDirectory(), extra: ["--typing-timeout", "0.5"])
        let url = server.url + "/typing"
        let watcher = try join(url, ["--user", "watcher"])
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .roster }.count >= 1 })
        // Both in the room before the typist starts, or its typing would only be in a roster.
        let typist = try join(url, ["--user", "typist"])
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { JoinTranscript($0).messages.filter { $0.type == .join }.count >= 1 })
        typist.send(#"{"type":"typing"}"# + "\n")
        waitUntil("typing true") { self.messages(watcher, .presence).contains { $0.typing == true } }
        let started = Date()
        waitUntil("typing false") { self.messages(watcher, .presence).contains { $0.typing == false } }
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.3)
        XCTAssertEqual(messages(watcher, .presence).last?.user, "typist")
        watcher.closeInput()
        typist.closeInput()
        XCTAssertEqual(watcher.waitForExit(timeout: 15), 0)
        XCTAssertEqual(typist.waitForExit(timeout: 15), 0)
    }
}
