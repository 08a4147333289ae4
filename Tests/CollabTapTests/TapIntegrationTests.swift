import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The collab-tap binary against real collab-serve, collab-join, collab-bridge and redis-server
/// processes on free loopback ports.
final class TapIntegrationTests: ProcessTestCase {
    func tap(_ arguments: [String], stdin: ChildProcess.Input = .null) throws -> ChildProcess {
        try spawn("collab-tap", arguments, stdin: stdin)
    }

    func lines(_ c: ChildProcess) -> [String] {
        c.stdout.text.split(separator: "\n").map(String.init)
    }

    func messages(_ c: ChildProcess, file: StaticString = #filePath, line: UInt = #line) -> [Message] {
        lines(c).compactMap { l in
            do { return try Message.decode(l) } catch {
                XCTFail("not a message: \(l) (\(error))", file: file, line: line)
                return nil
            }
        }
    }

    /// Waits until `c` has written `count` lines that contain `needle`.
    func waitForLines(_ c: ChildProcess, containing needle: String, count: Int = 1, timeout: Double = 15,
                      file: StaticString = #filePath, line: UInt = #line) {
        let ok = c.stdout.wait(timeout: timeout) { data in
            String(decoding: data, as: UTF8.self).split(separator: "\n").filter { $0.contains(needle) }.count >= count
        }
        XCTAssertTrue(ok, "\(c.name): no \(count) line(s) with \(needle) within \(timeout) s; stdout:\n\(c.stdout.text.suffix(3000))\nstderr:\n\(c.stderr.text.suffix(2000))",
                      file: file, line: line)
    }

    func waitForStderr(_ c: ChildProcess, _ needle: String, file: StaticString = #filePath, line: UInt = #line) {
        let ok = c.stderr.wait(timeout: 15) { String(decoding: $0, as: UTF8.self).contains(needle) }
        XCTAssertTrue(ok, "\(c.name): no \(needle) on stderr: \(c.stderr.text)", file: file, line: line)
    }

    // MARK: A room of collab-serve

    func testObserverSeesTheRoomsOpsAndIsInNoRoster() throws {
        let server = try startServer(data: try temporaryDirectory())
        let url = "\(server.url)/notes"
        let listener = try spawn("collab-join", ["--listen", "--user", "lee", url], stdin: .null)
        waitForLines(listener, containing: #""type":"roster""#)

        let raw = try tap([url, "--raw"])
        let human = try tap([url, "--type", "op", "--type", "pres*", "--user", "bob"])
        waitForLines(raw, containing: #""type":"welcome""#)
        waitForStderr(human, "watching room notes")
        let tapClient = try XCTUnwrap(messages(raw).first { $0.type == .welcome }?.client)
        XCTAssertTrue(tapClient.hasPrefix("tap-"), tapClient)

        let writer = try spawn("collab-join", ["--user", "bob", "--quiet", url])
        let feeder = writer.feed(Data("""
        {"type":"insert","pos":0,"text":"hello"}
        {"type":"insert","pos":5,"text":" world\\n"}
        {"type":"delete","pos":0,"len":1}

        """.utf8))
        XCTAssertEqual(writer.waitForExit(timeout: 20), 0, writer.stderr.text)
        _ = feeder.done.wait(timeout: .now() + 5)
        // collab-join composes edits made while one is in flight: its last ack says how many
        // revisions there are.
        let lastRev = try XCTUnwrap(messages(writer).last { $0.type == .ack }?.rev)
        waitForLines(raw, containing: #""rev":\#(lastRev),"#)
        waitForLines(human, containing: "rev \(lastRev)")

        // The tap saw every op, as the server sent it.
        let ops = messages(raw).filter { $0.type == .op }
        XCTAssertEqual(ops.compactMap(\.rev), Array(1 ... lastRev))
        XCTAssertEqual(Set(ops.map(\.user)), ["bob"])
        var text = ""
        for op in ops { text = try XCTUnwrap(op.op).apply(to: text) }
        XCTAssertEqual(text, "ello world\n")
        XCTAssertTrue(messages(raw).contains { $0.type == .join && $0.user == "bob" })

        // Nobody saw the tap: not in the writer's roster, no join or leave of it anywhere.
        let roster = try XCTUnwrap(messages(writer).first { $0.type == .roster })
        XCTAssertEqual(Set(roster.members?.compactMap(\.user) ?? []), ["lee", "bob"])
        XCTAssertFalse(writer.stdout.text.contains(tapClient), writer.stdout.text)
        XCTAssertFalse(listener.stdout.text.contains(tapClient), listener.stdout.text)
        XCTAssertEqual(messages(listener).filter { $0.type == .join }.compactMap(\.user), ["bob"])

        // The human view, filtered: bob's ops and presence, one line each.
        let shown = lines(human)
        XCTAssertTrue(shown.allSatisfy { $0.contains(" op ") || $0.contains(" presence ") }, shown.joined(separator: "\n"))
        let opLines = shown.filter { $0.contains(" op ") }
        XCTAssertEqual(opLines.count, lastRev, shown.joined(separator: "\n"))
        guard let first = opLines.first else { return }
        XCTAssertTrue(first.hasSuffix(#"notes op       bob +5 "hello" @0 rev 1"#), first)
        XCTAssertTrue(opLines.allSatisfy { $0.contains(" bob ") }, shown.joined(separator: "\n"))
        XCTAssertNotNil(first.range(of: #"^\d\d:\d\d:\d\d\.\d\d\d "#, options: .regularExpression), first)
        XCTAssertFalse(human.stdout.text.contains("\u{1B}["), "no colours on a pipe")

        raw.signal(SIGTERM)
        XCTAssertEqual(raw.waitForExit(timeout: 10), 143, raw.stderr.text)
        human.signal(SIGINT)
        XCTAssertEqual(human.waitForExit(timeout: 10), 130, human.stderr.text)

        // What was captured re-enacts the session: its ops, replayed into another room.
        let capture = try temporaryDirectory().appendingPathComponent("capture.ndjson")
        try raw.stdout.data.write(to: capture)
        let pipe = Pipe()
        let replay = try spawn("collab-tap", ["--replay", capture.path, "--speed", "0", "--type", "op"], stdin: .null, stdout: .into(pipe))
        let actor = try spawn("collab-join", ["--user", "actor", "--quiet", "\(server.url)/rehearsal"], stdin: .from(pipe))
        XCTAssertEqual(replay.waitForExit(timeout: 15), 0, replay.stderr.text)
        XCTAssertEqual(actor.waitForExit(timeout: 20), 0, actor.stderr.text)
        let snapshot = try spawn("collab-join", ["--snapshot", "--quiet", "\(server.url)/rehearsal"], stdin: .null)
        XCTAssertEqual(snapshot.waitForExit(timeout: 15), 0, snapshot.stderr.text)
        XCTAssertEqual(snapshot.stdout.text, "ello world\n")
    }

    func testUnreachableServerAndBadArguments() throws {
        let port = try freePort()
        let gone = try tap(["ws://127.0.0.1:\(port)/r", "--max-retries", "1"])
        XCTAssertEqual(gone.waitForExit(timeout: 20), 69, gone.stderr.text)
        XCTAssertTrue(gone.stderr.text.contains("gave up after 1 retry"), gone.stderr.text)

        let redisGone = try tap(["redis://127.0.0.1:\(port)", "--all", "--max-retries", "0"])
        XCTAssertEqual(redisGone.waitForExit(timeout: 20), 69, redisGone.stderr.text)

        for bad in [["--raw", "--stats"], ["--type", "opp"], ["ws://127.0.0.1:1/"], ["redis://127.0.0.1:1"],
                    ["--all"], ["--speed", "2"], ["--replay", "x", "--raw"], ["http://x/y"], ["--interval", "0"]] {
            let c = try tap(bad)
            XCTAssertEqual(c.waitForExit(timeout: 10), 64, "\(bad): \(c.stderr.text)")
            XCTAssertFalse(c.stderr.text.isEmpty, "\(bad)")
        }
        // Output: a reader that went away ends the tap quietly; a failing stdout is status 74.
        let file = try temporaryDirectory().appendingPathComponent("capture.ndjson")
        try Data((captureLines().joined(separator: "\n") + "\n").utf8).write(to: file)
        let gonePipe = Pipe()
        try gonePipe.fileHandleForReading.close()
        let noReader = try spawn("collab-tap", ["--raw", file.path], stdin: .null, stdout: .into(gonePipe))
        XCTAssertEqual(noReader.waitForExit(timeout: 10), 0, noReader.stderr.text)
        XCTAssertFalse(noReader.stderr.text.contains("error"), noReader.stderr.text)
        let full = try spawn("collab-tap", ["--raw", file.path], stdin: .null,
                             stdout: .file(try XCTUnwrap(FileHandle(forWritingAtPath: "/dev/full"))))
        XCTAssertEqual(full.waitForExit(timeout: 10), 74, full.stderr.text)
        XCTAssertTrue(full.stderr.text.contains("stdout"), full.stderr.text)

        let missing = try tap(["/nonexistent/capture.ndjson"])
        XCTAssertEqual(missing.waitForExit(timeout: 10), 74, missing.stderr.text)
        XCTAssertTrue(missing.stderr.text.contains("No such file"), missing.stderr.text)
    }

    // MARK: Redis

    func testRedisSourceFollowsRoomsByNameGlobOrAll() throws {
        let redis = try RedisServer()
        let url = "redis://127.0.0.1:\(redis.port)"
        let teams = try tap([url, "--room", "team-*", "--raw"])
        let exact = try tap([url, "--room", "other", "--type", "op"])
        let all = try tap([url, "--all", "--stats"])
        for t in [teams, exact, all] { waitForStderr(t, "following") }

        // One op per room, committed (and published) in this order through collab-bridge.
        for room in ["team-a", "other", "team-b"] {
            let bridge = try spawn("collab-bridge", [url, "--room", room, "--commit", "--user", "bot-\(room)", "--quiet"])
            let feeder = bridge.feed(Data(#"{"type":"op","op":["in \#(room)"]}"#.utf8 + [0x0A]))
            XCTAssertEqual(bridge.waitForExit(timeout: 15), 0, bridge.stderr.text)
            _ = feeder.done.wait(timeout: .now() + 5)
        }
        waitForLines(teams, containing: #""room":"team-b""#)
        waitForLines(exact, containing: "bot-other")
        // Messages on one subscription arrive in publish order: had "other" matched, it would
        // have come before team-b's op.
        let seen = messages(teams)
        XCTAssertEqual(seen.map(\.room), ["team-a", "team-b"])
        XCTAssertEqual(seen.map(\.type), [.op, .op])
        XCTAssertEqual(seen.map(\.user), ["bot-team-a", "bot-team-b"])
        XCTAssertTrue(lines(exact)[0].hasSuffix(#"other op       bot-other +8 "in other" @0 rev 1"#), exact.stdout.text)

        // --stats on a pipe: a JSON line per room with traffic, every second; totals at the end.
        waitForLines(all, containing: #""room":"team-b""#)
        all.signal(SIGINT)
        XCTAssertEqual(all.waitForExit(timeout: 10), 130, all.stderr.text)
        let reports = lines(all).compactMap { try? JSONScanner.parse($0) }
        let finals = reports.filter { $0["final"] == .bool(true) }
        XCTAssertEqual(finals.compactMap { $0["room"]?.stringValue }, ["other", "team-a", "team-b"], all.stdout.text)
        for f in finals {
            XCTAssertEqual(f["messages"]?.intValue, 1)
            XCTAssertEqual(f["users"]?.intValue, 1)
            XCTAssertNotNil(f["delay_p50_ms"].flatMap { v -> Double? in
                switch v {
                case .int(let i): return Double(i)
                case .double(let d): return d
                default: return nil
                }
            }, "no delay: \(f)")
        }
        XCTAssertTrue(reports.contains { $0["final"] == nil && $0["room"]?.stringValue == "team-a" }, all.stdout.text)
    }

    // MARK: Captures

    static let captureStart = 1_764_000_000_000

    /// Two rooms, two users, a bad line; ts 100 ms apart.
    func captureLines() -> [String] {
        let t = Self.captureStart
        return [
            #"{"type":"op","room":"a","user":"ann","rev":1,"op":["hi"],"ts":\#(t)}"#,
            #"{"type":"presence","room":"a","user":"ann","cursor":{"anchor":2,"head":2},"ts":\#(t + 100)}"#,
            #"{"type":"op","room":"a","user":"bob","rev":2,"op":[2,"!"],"ts":\#(t + 200)}"#,
            "not json",
            #"{"type":"op","room":"b","user":"ann","rev":1,"op":["x"],"ts":\#(t + 300)}"#,
            #"{"type":"ack","room":"b","seq":1,"rev":1}"#,
            #"{"type":"op","room":"a","user":"ann","rev":3,"op":[{"d":1}],"ts":\#(t + 2200)}"#,
        ]
    }

    func run(_ arguments: [String], stdin: [String]) throws -> ProcessResult {
        let c = try spawn("collab-tap", arguments)
        let feeder = c.feed(Data((stdin.joined(separator: "\n") + "\n").utf8))
        let result = try c.finish(timeout: 20)
        _ = feeder.done.wait(timeout: .now() + 5)
        return result
    }

    func testCaptureOnStdinWithFiltersAndStatsAtTheEnd() throws {
        let capture = captureLines()
        let stats = try run(["--stats", "--type", "op", "--user", "ann"], stdin: capture)
        XCTAssertEqual(stats.status, 0, stats.err)
        XCTAssertTrue(stats.err.contains("line 4: invalid JSON"), stats.err)
        let finals = stats.outLines.compactMap { try? JSONScanner.parse($0) }.filter { $0["final"] == .bool(true) }
        XCTAssertEqual(finals.compactMap { $0["room"]?.stringValue }, ["a", "b"], stats.out)
        XCTAssertEqual(finals[0]["messages"]?.intValue, 2) // ann's two ops in a
        XCTAssertEqual(finals[0]["seconds"], .double(2.2))
        XCTAssertEqual(finals[0]["by_type"], .object(["op": .double(0.91)]))
        XCTAssertEqual(finals[0]["users"]?.intValue, 1)
        XCTAssertEqual(finals[1]["messages"]?.intValue, 1)
        XCTAssertEqual(finals[1]["seconds"]?.intValue, 1)

        // The human view of the same filter, and --raw, which writes kept lines unchanged.
        let human = try run(["--type", "op", "--user", "ann"], stdin: capture)
        XCTAssertEqual(human.status, 0, human.err)
        XCTAssertEqual(human.outLines.count, 3, human.out)
        XCTAssertTrue(human.outLines[0].hasSuffix(#"a op       ann +2 "hi" @0 rev 1"#), human.out)
        XCTAssertTrue(human.outLines[2].hasSuffix("a op       ann -1 @0 rev 3"), human.out)
        let raw = try run(["--raw", "--room", "b"], stdin: capture)
        XCTAssertEqual(raw.outLines, [capture[4], capture[5]])

        // --strict stops at the bad line.
        let strict = try run(["--raw", "--strict"], stdin: capture)
        XCTAssertEqual(strict.status, 65, strict.err)
        XCTAssertEqual(strict.outLines, Array(capture[0 ..< 3]))

        // A capture file (a path, or stdin redirected from it) is read straight through; its
        // delays are unknown.
        let file = try temporaryDirectory().appendingPathComponent("capture.ndjson")
        try Data((capture.joined(separator: "\n") + "\n").utf8).write(to: file)
        let fromFile = try tap(["--stats", file.path])
        XCTAssertEqual(fromFile.waitForExit(timeout: 15), 0, fromFile.stderr.text)
        let fileReports = lines(fromFile).compactMap { try? JSONScanner.parse($0) }
        XCTAssertEqual(fileReports.count, 2, fromFile.stdout.text)
        XCTAssertEqual(fileReports.first?["messages"]?.intValue, 4)
        XCTAssertEqual(fileReports.first?["delay_p50_ms"], .null)
        let redirected = try tap(["--raw", "--user", "bob"], stdin: .file(try FileHandle(forReadingFrom: file)))
        XCTAssertEqual(redirected.waitForExit(timeout: 15), 0, redirected.stderr.text)
        XCTAssertEqual(lines(redirected), [capture[2]])
    }

    // MARK: Replay

    /// The time at which each of `count` lines arrived, from the first (bounded waits).
    func arrivalTimes(_ c: ChildProcess, count: Int, timeout: Double = 20) -> [TimeInterval] {
        var times: [Date] = []
        for n in 1 ... count {
            let ok = c.stdout.wait(timeout: timeout) { data in data.reduce(0) { $1 == 0x0A ? $0 + 1 : $0 } >= n }
            guard ok else {
                XCTFail("line \(n) of the replay did not come: \(c.stdout.text) \(c.stderr.text)")
                break
            }
            times.append(Date())
        }
        return times.map { $0.timeIntervalSince(times[0]) }
    }

    func testReplayScalesTheOriginalTiming() throws {
        let t = Self.captureStart
        let capture = [
            #"{"type":"op","room":"r","rev":1,"op":["a"],"ts":\#(t)}"#,
            #"{"type":"ack","room":"r","seq":1,"rev":1}"#,
            #"{"type":"op","room":"r","rev":2,"op":[1,"b"],"ts":\#(t + 800)}"#,
            #"{"type":"presence","room":"r","user":"u","ts":\#(t + 1200)}"#,
            #"{"type":"op","room":"r","rev":3,"op":[2,"c"],"ts":\#(t + 1600)}"#,
        ]
        let file = try temporaryDirectory().appendingPathComponent("capture.ndjson")
        try Data((capture.joined(separator: "\n") + "\n").utf8).write(to: file)

        // Twice as fast: due at 0, 0, 400, 600 and 800 ms. A wait is never shorter than due
        // (the clock is monotonic); the upper bound only catches a replay that ignores --speed.
        let fast = try tap(["--replay", file.path, "--speed", "2"])
        let times = arrivalTimes(fast, count: 5)
        XCTAssertEqual(fast.waitForExit(timeout: 10), 0, fast.stderr.text)
        XCTAssertEqual(lines(fast), capture)
        if times.count == 5 {
            // Seen by this process, which may notice the first line late: a little slack below.
            XCTAssertGreaterThanOrEqual(times[2], 0.4 - 0.1, "\(times)")
            XCTAssertGreaterThanOrEqual(times[4], 0.8 - 0.1, "\(times)")
            XCTAssertLessThan(times[4], 0.8 + 3, "\(times)")
            XCTAssertLessThan(times[1], 0.3, "a line without ts follows at once: \(times)")
        }

        // Filtered: the timing of the lines kept.
        let ops = try tap(["--replay", file.path, "--speed", "4", "--type", "op"])
        let opTimes = arrivalTimes(ops, count: 3)
        XCTAssertEqual(ops.waitForExit(timeout: 10), 0, ops.stderr.text)
        XCTAssertEqual(lines(ops), [capture[0], capture[2], capture[4]])
        if opTimes.count == 3 { XCTAssertGreaterThanOrEqual(opTimes[2], 0.4 - 0.1, "\(opTimes)") }

        // As fast as possible: an hour of capture at once.
        var long = capture
        long.append(#"{"type":"op","room":"r","rev":4,"op":[3,"d"],"ts":\#(t + 3_600_000)}"#)
        try Data((long.joined(separator: "\n") + "\n").utf8).write(to: file)
        for speed in ["0", "inf"] {
            let start = Date()
            let now = try tap(["--replay", file.path, "--speed", speed])
            XCTAssertEqual(now.waitForExit(timeout: 15), 0, now.stderr.text)
            XCTAssertLessThan(Date().timeIntervalSince(start), 10)
            XCTAssertEqual(lines(now), long)
        }

        // Interrupted during a wait (for the line an hour on): 130, with what was due written.
        let slow = try tap(["--replay", file.path, "--speed", "4"])
        waitForLines(slow, containing: #""rev":3"#)
        slow.signal(SIGINT)
        XCTAssertEqual(slow.waitForExit(timeout: 10), 130, slow.stderr.text)
        XCTAssertEqual(lines(slow), Array(long[0 ..< 5]))
    }
}
