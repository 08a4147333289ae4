@testable import CollabCLI
import CollabPresence
import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `PresenceTool` in-process, reading a file (so straight through, deterministic) with an
/// injected clock, and writing to a file.
final class PresenceToolTests: ToolTestCase {
    struct Run {
        var status: Int32
        var out: String
        var errors: Int
        var lines: [String] { out.split(separator: "\n").map(String.init) }
    }

    func runTool(_ input: String, clock: @escaping () -> Int = { 1_000_000 }, _ configure: (inout PresenceOptions) -> Void) throws -> Run {
        let dir = try temporaryDirectory()
        let inURL = dir.appendingPathComponent("in.ndjson"), outURL = dir.appendingPathComponent("out")
        try Data(input.utf8).write(to: inURL)
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        let inFD = open(inURL.path, O_RDONLY), outFD = open(outURL.path, O_WRONLY)
        defer { close(inFD); close(outFD) }
        var options = PresenceOptions()
        options.inputFD = inFD
        options.terminal = false
        configure(&options)
        let diagnostics = Diagnostics(program: "collab-presence (test)")
        let output = LineWriter(fd: outFD)
        let status = PresenceTool(options: options, diagnostics: diagnostics, output: output, clock: clock).run()
        output.flush()
        return Run(status: status, out: try String(contentsOf: outURL, encoding: .utf8), errors: diagnostics.errorCount)
    }

    /// ann watches (her collab-join's output), bob types at line 2 and stops saying so, ann
    /// inserts a line above him, carol passes by.
    let capture = """
    {"type":"welcome","room":"notes","client":"c-ann","rev":1,"doc":"hello\\nworld\\n"}
    {"type":"roster","room":"notes","members":[{"user":"ann","name":"Ann Lee","color":"#c62828","initials":"AL","client":"c-ann","typing":false},{"user":"bob","color":"#0097a7","initials":"B","client":"c-bob","cursor":{"anchor":8,"head":8},"rev":1,"typing":false}]}
    {"type":"presence","room":"notes","user":"bob","color":"#0097a7","initials":"B","client":"c-bob","cursor":{"anchor":8,"head":8},"rev":1,"typing":true,"ts":1000}
    {"type":"op","room":"notes","user":"ann","client":"c-ann","seq":1,"rev":2,"op":["abc\\n"],"ts":2000}
    {"type":"ack","room":"notes","seq":1,"rev":2}
    {"type":"op","room":"notes","user":"ann","client":"c-ann","seq":2,"rev":3,"op":[3,"X"],"ts":7000}
    {"type":"join","room":"notes","user":"carol","color":"#689f38","initials":"C","client":"c-carol"}
    {"type":"leave","room":"notes","user":"carol","client":"c-carol","ts":8000}

    """

    func testAFileIsReadOnItsOwnClock() throws {
        let r = try runTool(capture) { _ in }
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.errors, 0)
        XCTAssertEqual(r.lines.map { try? Message.decode($0).type }, [.join, .join, .presence, .typing, .presence, .typing, .join, .leave])
        // bob's typing ran out at 1000 + 5000 by the stream's clock, before the op at 7000;
        // his cursor is at revision 2 by then (ann's line above moved it).
        let stop = try Message.decode(r.lines[4])
        XCTAssertEqual(stop.ts, 6_000)
        XCTAssertEqual(stop.typing, false)
        XCTAssertEqual(stop.cursor?.head, 12)
        XCTAssertEqual(stop.rev, 2)
    }

    func testOnceWritesTheRosterWithLinesColumnsAndIdleTimes() throws {
        let r = try runTool(capture) { $0.once = true }
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.lines, [
            ##"{"type":"roster","room":"notes","rev":3,"members":[{"type":"join","user":"ann","name":"Ann Lee","color":"#c62828","initials":"AL","client":"c-ann","typing":false},{"type":"join","user":"bob","color":"#0097a7","initials":"B","client":"c-bob","rev":3,"cursor":{"anchor":13,"head":13},"typing":false,"line":3,"column":3,"idle":7000}],"ts":8000}"##,
        ])
        // The output is valid input.
        let again = try runTool(r.out) { $0.once = true }
        let roster = try Message.decode(again.lines[0])
        XCTAssertEqual(roster.members?.map(\.client), ["c-ann", "c-bob"])
        XCTAssertEqual(roster.members?.last?.cursor?.head, 13)
        let changes = try runTool(r.out) { _ in }
        XCTAssertFalse(changes.out.contains("idle"), "what a snapshot adds is not presence: \(changes.out)")
    }

    func testTheArrivalClockExpiresTypingAtTheEndAndMeasuresIdleTimes() throws {
        // Each reading of the clock is a second later.
        final class Ticks: @unchecked Sendable { var now = 0 }
        let ticks = Ticks()
        let clock = { ticks.now += 1_000; return ticks.now }
        let r = try runTool(capture, clock: clock) {
            $0.once = true
            $0.clock = .arrival
            $0.typingTimeout = 2
        }
        let roster = try Message.decode(r.lines[0])
        let bob = try XCTUnwrap(roster.members?.last)
        XCTAssertEqual(bob.typing, false, "typing set by the 3rd line ran out before the end")
        XCTAssertEqual(bob.extra?["idle"]?.intValue.map { $0 > 0 }, true)
        XCTAssertNotNil(roster.members?.first?.extra?["idle"])
    }

    func testTableOnAPipeWritesASnapshotPerVisibleChange() throws {
        let r = try runTool(capture) { $0.table = true }
        XCTAssertEqual(r.status, 0)
        let snapshots = try r.lines.map { try Message.decode($0) }
        XCTAssertTrue(snapshots.allSatisfy { $0.type == .roster })
        // The welcome alone writes nothing; the roster, bob typing, the op above bob (his cursor
        // moves), typing running out, carol in, carol out. The op at the end of line 1 is
        // before bob's cursor too (it moves it).
        let bob = snapshots.map { $0.members?.first { $0.client == "c-bob" } }
        XCTAssertEqual(bob.map { $0?.cursor?.head }, [8, 8, 12, 12, 13, 13, 13])
        XCTAssertEqual(bob.map { $0?.typing }, [false, true, true, false, false, false, false])
        XCTAssertEqual(snapshots.map { $0.members?.count }, [2, 2, 2, 2, 2, 3, 2])
        XCTAssertEqual(bob.last??.extra?["line"], JSONValue.int(3))

        // An op after every cursor shows nothing new.
        let quiet = try runTool(capture + #"{"type":"op","room":"notes","rev":4,"op":[17,"!"],"ts":9000}"# + "\n") { $0.table = true }
        XCTAssertEqual(quiet.lines.count, r.lines.count)
    }

    func testOnceTableIsPlainTextOffATerminal() throws {
        let r = try runTool(capture) {
            $0.once = true
            $0.table = true
        }
        XCTAssertEqual(r.out, """
        room notes · revision 3 · 2 members
             NAME          USER STATUS CURSOR TYPING IDLE
         AL  Ann Lee (you) ann  -      -             -
         B   bob           bob  -      3:3           7s

        """)
    }

    func testTheTableInColourFitsTheTerminalAndShowsNoControlCharacters() throws {
        var f = PresenceFeed()
        var out: [Message] = []
        let lines = [
            ##"{"type":"join","room":"r","user":"eve","name":"Eve \u001b[31mRed","color":"#9c27b0","initials":"E","client":"e","ts":0}"##,
            #"{"type":"presence","room":"r","client":"e","typing":true,"status":"writing the introduction","cursor":{"anchor":4,"head":9},"ts":1000}"#,
        ]
        for l in lines { _ = f.handle(try Message.decode(l), now: 1_000, into: &out) }
        let table = PresenceTable(color: true, columns: 200, rows: 10).render(&f, now: 126_000)
        XCTAssertEqual(table.count, 3)
        XCTAssertTrue(table[2].contains("\u{1B}[1;97;48;2;156;39;176m E  \u{1B}[0m"), table[2])
        XCTAssertTrue(table[2].contains("\u{1B}[38;2;156;39;176mEve \u{FFFD}[31mRed\u{1B}[0m"), table[2])
        XCTAssertTrue(table[2].contains("@4-9"), table[2])
        XCTAssertTrue(table[2].contains("writing the int…"), table[2])
        XCTAssertTrue(table[2].hasSuffix(" 2m05s"), table[2])

        let narrow = PresenceTable(color: false, columns: 20, rows: 10).render(&f, now: 126_000)
        XCTAssertTrue(narrow.allSatisfy { PresenceTable.width($0) <= 20 }, "\(narrow)")
        XCTAssertEqual(narrow[2], " E   Eve \u{FFFD}[31mRed e…")
        // Too many lines for the terminal: the last one says how many are hidden.
        let short = PresenceTable(color: false, columns: 80, rows: 3).render(&f, now: 126_000)
        XCTAssertEqual(short.count, 2)
        XCTAssertEqual(short[1], "… 2 more lines")
    }

    func testDurationsAndWidths() {
        XCTAssertEqual(PresenceTable.duration(999), "0s")
        XCTAssertEqual(PresenceTable.duration(59_999), "59s")
        XCTAssertEqual(PresenceTable.duration(65_000), "1m05s")
        XCTAssertEqual(PresenceTable.duration(7_500_000), "2h05m")
        XCTAssertEqual(PresenceTable.width("漢字😀é"), 7)
        XCTAssertEqual(PresenceTable.truncate("漢字漢字", 5), "漢字…")
    }

    func testBadLinesStrictRoomsAndFiles() throws {
        let bad = "{\"type\":\"join\",\"room\":\"a\",\"user\":\"ann\",\"client\":\"a\"}\nnot json\n{\"type\":\"join\",\"room\":\"b\",\"user\":\"bob\",\"client\":\"b\"}\n"
        let lenient = try runTool(bad) { $0.once = true }
        XCTAssertEqual(lenient.status, 0)
        XCTAssertEqual(lenient.errors, 1)
        XCTAssertEqual(lenient.lines.count, 2, "one roster per room")
        let strict = try runTool(bad) {
            $0.once = true
            $0.strict = true
        }
        XCTAssertEqual(strict.status, 65)
        XCTAssertEqual(strict.out, "", "stopped: no roster")
        let one = try runTool(bad) {
            $0.once = true
            $0.room = "b"
        }
        XCTAssertEqual(try Message.decode(one.out.trimmingCharacters(in: .newlines)).room, "b")
        XCTAssertEqual(one.lines.count, 1)

        let missing = try runTool("") { $0.file = "/nonexistent/capture.ndjson" }
        XCTAssertEqual(missing.status, 66)
        let directory = try runTool("") { $0.file = NSTemporaryDirectory() }
        XCTAssertEqual(directory.status, 66)
        let usage = try runTool("") { $0.typingTimeout = 0 }
        XCTAssertEqual(usage.status, 64)
    }

    func testAReaderThatWentAwayEndsTheRunQuietly() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        close(fds[0])
        defer { close(fds[1]) }
        let dir = try temporaryDirectory()
        let inURL = dir.appendingPathComponent("in.ndjson")
        try Data(capture.utf8).write(to: inURL)
        let inFD = open(inURL.path, O_RDONLY)
        defer { close(inFD) }
        var options = PresenceOptions()
        options.inputFD = inFD
        options.terminal = false
        let diagnostics = Diagnostics(program: "collab-presence (test)")
        let status = PresenceTool(options: options, diagnostics: diagnostics, output: LineWriter(fd: fds[1])).run()
        XCTAssertEqual(status, 0)
        XCTAssertEqual(diagnostics.errorCount, 0)
    }
}

/// The real binary on a pipe: the event loop, its timers and signals.
final class PresenceBinaryTests: ToolTestCase {
    func presence() throws -> URL { try BinaryLocator.require("collab-presence") }

    func testTypingRunsOutOnTimeWhileTheInputIsQuiet() throws {
        let child = try ChildProcess(try presence(), ["--typing-timeout", "0.2"])
        child.send(#"{"type":"join","room":"r","user":"ann","client":"a"}"# + "\n"
            + #"{"type":"presence","room":"r","client":"a","typing":true}"# + "\n")
        // No more input: only the timer can say it stopped.
        let stop = child.stdout.firstLine(containing: #""typing":false,"ts""#, timeout: 10)
        XCTAssertNotNil(stop, child.stdout.text + child.stderr.text)
        child.closeInput()
        let r = try child.finish(timeout: 10)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.outLines.map { try? Message.decode($0).type }, [.join, .presence, .typing, .presence, .typing])
    }

    func testASignalEndsOnceWithTheRosterSoFar() throws {
        let input = Pipe()
        let child = try ChildProcess(try presence(), ["--once"], stdin: .from(input))
        let fd = input.fileHandleForWriting.fileDescriptor
        let text = #"{"type":"join","room":"r","user":"ann","client":"a"}"# + "\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        // Everything written has been read (and so handled: a signal is served between reads).
        waitUntil("collab-presence to read its input") {
            var unread: Int32 = 0
            return ioctl(fd, UInt(FIONREAD), &unread) == 0 && unread == 0
        }
        child.signal(SIGINT)
        let r = try child.finish(timeout: 10)
        try? input.fileHandleForWriting.close()
        XCTAssertEqual(r.status, 130, r.err)
        XCTAssertEqual(try Message.decode(r.outLines.first ?? "").members?.map(\.user), ["ann"])
    }

    func testStrictStopsAtTheFirstBadLineWhileTheInputIsStillOpen() throws {
        let child = try ChildProcess(try presence(), ["--strict"])
        child.send(#"{"type":"join","room":"r","user":"ann","client":"a"}"# + "\n" + "{oops\n")
        XCTAssertEqual(child.waitForExit(timeout: 10), 65, child.stderr.text)
        XCTAssertTrue(child.stderr.text.contains("line 2: invalid JSON"), child.stderr.text)
        XCTAssertEqual(child.stdout.text.split(separator: "\n").count, 1)
    }

    func testUsageAndMissingFile() throws {
        let help = try ChildProcess(try presence(), ["--help"], stdin: .null).finish(timeout: 10)
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("Exit status"), help.out)
        let usage = try ChildProcess(try presence(), ["--typing-timeout", "-1"], stdin: .null).finish(timeout: 10)
        XCTAssertEqual(usage.status, 64, usage.err)
        let missing = try ChildProcess(try presence(), ["/nonexistent/capture.ndjson"], stdin: .null).finish(timeout: 10)
        XCTAssertEqual(missing.status, 66)
        XCTAssertEqual(missing.err, "collab-presence: error: /nonexistent/capture.ndjson: No such file or directory\n")
    }
}
