import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// collab-presence on real rooms: `collab-join | collab-presence` live, and a capture of a
/// listener's output read back with --once and --table.
final class PresenceToolIntegrationTests: JoinTestCase {
    /// Starts `NAME ARGS` with the given stdin and stdout; killed at teardown if still running.
    func start(_ name: String, _ arguments: [String], stdin: ChildProcess.Input = .pipe,
               stdout: ChildProcess.Output = .pipe) throws -> ChildProcess {
        let c = try ChildProcess(try BinaryLocator.require(name), arguments, stdin: stdin, stdout: stdout, unsetting: ["COLLAB_TOKEN"])
        addTeardownBlock { c.kill9() }
        return c
    }

    func messages(_ text: String) -> [Message] {
        text.split(separator: "\n").compactMap { try? Message.decode(String($0)) }
    }

    func testJoinsColoursCursorsThatFollowTheTextAndTypingThatRunsOut() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = server.url + "/presence"

        // ann's traffic goes straight into collab-presence. Its typing timeout is far shorter
        // than the server's (5 s), so any typing stop it writes is its own.
        let pipe = Pipe()
        let ann = try start("collab-join", ["--user", "ann", "--quiet", url], stdout: .into(pipe))
        let live = try start("collab-presence", ["--typing-timeout", "0.3"], stdin: .from(pipe))
        func liveLine(_ what: String, _ predicate: @escaping (Message) -> Bool) -> Message? {
            var found: Message?
            let ok = live.stdout.wait(timeout: 15) { data in
                found = self.messages(String(decoding: data, as: UTF8.self)).first(where: predicate)
                return found != nil
            }
            XCTAssertTrue(ok, "no \(what) from collab-presence; so far:\n\(live.stdout.text)\nstderr: \(live.stderr.text)\(ann.stderr.text)")
            return found
        }
        let annJoin = liveLine("join of ann") { $0.type == .join && $0.user == "ann" }
        XCTAssertEqual(annJoin?.color, "#c62828") // the first in the room gets the preferred colour

        // carol only listens: her output is the capture read back below.
        let carol = try join(url, ["--listen", "--user", "carol", "--quiet"])
        XCTAssertTrue(carol.stdout.wait(timeout: 15) { $0.occurrences(of: #""type":"roster""#) >= 1 }, carol.stderr.text)
        let bob = try join(url, ["--user", "bob", "--quiet"])
        // bob prefers ann's colour (both FNV-1a index 0), which is taken: he gets the next one.
        let bobJoin = liveLine("join of bob") { $0.type == .join && $0.user == "bob" }
        XCTAssertEqual(bobJoin?.color, "#0097a7")
        XCTAssertEqual(bobJoin?.initials, "B")
        XCTAssertNotNil(liveLine("join of carol") { $0.type == .join && $0.user == "carol" })

        // Revision 1: two lines. bob, once he has them, puts his caret at "r" of "world" and types.
        ann.send(#"{"type":"insert","pos":0,"text":"hello\nworld\n"}"# + "\n")
        XCTAssertTrue(bob.stdout.wait(timeout: 15) { $0.occurrences(of: #""rev":1"#) >= 1 }, bob.stderr.text)
        bob.send(#"{"type":"cursor","anchor":8,"head":8}"# + "\n" + #"{"type":"typing","typing":true}"# + "\n")
        let placed = liveLine("bob's cursor") { $0.type == .presence && $0.user == "bob" && $0.cursor != nil }
        XCTAssertEqual(placed?.cursor, .init(anchor: 8, head: 8))
        XCTAssertEqual(placed?.rev, 1)
        XCTAssertNotNil(liveLine("bob typing") { $0.type == .typing && $0.user == "bob" && $0.typing == true })
        // Nothing more comes from bob: collab-presence's own clock stops his typing.
        let stopped = liveLine("bob's typing running out") { $0.type == .typing && $0.user == "bob" && $0.typing == false }
        XCTAssertNotNil(stopped?.ts)

        // Revision 2: a line above bob's caret, by someone else: his cursor moves down with it.
        ann.send(#"{"type":"insert","pos":0,"text":"abc\n"}"# + "\n")
        XCTAssertTrue(carol.stdout.wait(timeout: 15) { $0.occurrences(of: #""rev":2"#) >= 1 }, carol.stderr.text)
        carol.signal(SIGTERM)
        XCTAssertEqual(carol.waitForExit(timeout: 15), 128 + SIGTERM, carol.stderr.text)
        XCTAssertNotNil(liveLine("carol's leave") { $0.type == .leave && $0.user == "carol" })
        ann.closeInput()
        XCTAssertEqual(ann.waitForExit(timeout: 15), 0, ann.stderr.text)
        let liveResult = try live.finish(timeout: 15)
        XCTAssertEqual(liveResult.status, 0, liveResult.err)
        XCTAssertEqual(liveResult.err, "")
        // Ops write nothing; every line is a roster change.
        XCTAssertEqual(Set(messages(liveResult.out).map(\.type)), [.join, .presence, .typing, .leave], liveResult.out)

        // The capture, read back.
        let capture = try temporaryDirectory().appendingPathComponent("carol.ndjson")
        try carol.stdout.data.write(to: capture)

        let once = try start("collab-presence", ["--once", capture.path], stdin: .null).finish(timeout: 15)
        XCTAssertEqual(once.status, 0, once.err)
        let rosters = messages(once.out)
        XCTAssertEqual(rosters.count, 1, once.out)
        XCTAssertEqual(rosters.first?.room, "presence")
        XCTAssertEqual(rosters.first?.rev, 2)
        let bobEntry = try XCTUnwrap(rosters.first?.members?.first { $0.user == "bob" }, once.out)
        XCTAssertEqual(bobEntry.color, "#0097a7")
        XCTAssertEqual(bobEntry.cursor, .init(anchor: 12, head: 12))
        XCTAssertEqual(bobEntry.rev, 2)
        XCTAssertEqual(bobEntry.extra?["line"], .int(3))
        XCTAssertEqual(bobEntry.extra?["column"], .int(3))
        XCTAssertEqual(Set(rosters.first?.members?.map(\.user) ?? []), ["ann", "bob", "carol"])

        // The table's pipe form: bob's caret at line 2 when placed, line 3 after ann's insert.
        let table = try start("collab-presence", ["--table", capture.path], stdin: .null).finish(timeout: 15)
        XCTAssertEqual(table.status, 0, table.err)
        let bobLines = messages(table.out).compactMap { $0.members?.first { $0.user == "bob" && $0.cursor != nil } }
            .map { "\($0.extra?["line"]?.intValue ?? 0):\($0.extra?["column"]?.intValue ?? 0)" }
        XCTAssertEqual(bobLines.first, "2:3", table.out)
        XCTAssertEqual(bobLines.last, "3:3", table.out)

        let text = try start("collab-presence", ["--once", "--table", capture.path], stdin: .null).finish(timeout: 15)
        XCTAssertEqual(text.status, 0, text.err)
        let bobRow = try XCTUnwrap(text.out.split(separator: "\n").first { $0.contains(" bob ") }, text.out)
        XCTAssertTrue(bobRow.contains("3:3"), text.out)
        XCTAssertFalse(text.out.contains("\u{1B}"), "no colour off a terminal")
        XCTAssertTrue(text.out.contains("carol (you)"), text.out)

        bob.closeInput()
        XCTAssertEqual(bob.waitForExit(timeout: 15), 0, bob.stderr.text)
    }
}
