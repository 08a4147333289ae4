import CollabOT
import CollabProtocol
import CollabRedis
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The collab-bridge binary against a real redis-server (COLLAB_TEST_REDIS_URL's, or one started
/// on a free loopback port), with collab-ot-apply rebuilding documents from its output.
final class BridgeIntegrationTests: XCTestCase {
    var redis: ChildProcess?
    var redisURL = ""
    var children: [ChildProcess] = []
    var redisDir: URL?

    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    override func setUpWithError() throws {
        if let env = ProcessInfo.processInfo.environment["COLLAB_TEST_REDIS_URL"], !env.isEmpty {
            redisURL = env
            return
        }
        let exe = URL(fileURLWithPath: "/usr/bin/redis-server")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("no redis-server") }
        let port = try freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-bridge-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        redisDir = dir
        redis = try ChildProcess(exe, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                       "--dir", dir.path, "--daemonize", "no", "--loglevel", "warning"],
                                 stdin: .null, stdout: .null)
        waitUntil("redis-server listening on \(port)") {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            return connectLoopback(fd, port: port)
        }
        redisURL = "redis://127.0.0.1:\(port)"
    }

    override func tearDown() {
        for c in children { c.kill9() }
        children = []
        redis?.kill9()
        redis = nil
        if let redisDir { try? FileManager.default.removeItem(at: redisDir) }
        super.tearDown()
    }

    /// A room name of its own per test (a shared COLLAB_TEST_REDIS_URL keeps old keys).
    func room(_ s: String) -> String { "bridge-test-\(name.filter { $0.isLetter })-\(s)-\(UUID().uuidString.prefix(8))" }

    func bridge(_ args: [String], stdin: ChildProcess.Input = .pipe, stdout: ChildProcess.Output = .pipe) throws -> ChildProcess {
        let c = try ChildProcess(try BinaryLocator.require("collab-bridge"), [redisURL] + args, stdin: stdin, stdout: stdout)
        children.append(c)
        return c
    }

    /// Runs a bridge with `input` on stdin to its end.
    func run(_ args: [String], input: String) throws -> ProcessResult {
        let c = try bridge(args)
        _ = c.feed(Data(input.utf8))
        return try c.finish(timeout: 15)
    }

    /// A follower (stdin /dev/null, --follow), once it has subscribed.
    func follower(_ args: [String]) throws -> ChildProcess {
        let c = try bridge(args + ["--follow"], stdin: .null)
        XCTAssertNotNil(c.stderr.firstLine(containing: "following", timeout: 10), c.stderr.text)
        return c
    }

    func messages(_ text: String) -> [Message] {
        text.split(separator: "\n").compactMap { try? Message.decode(String($0)) }
    }

    /// The document collab-ot-apply rebuilds from `ops` (NDJSON), starting from `text`.
    func apply(_ ops: String, text: String = "") throws -> String {
        let c = try ChildProcess(try BinaryLocator.require("collab-ot-apply"), ["apply", "--text", text])
        children.append(c)
        _ = c.feed(Data(ops.utf8))
        let r = try c.finish(timeout: 15)
        XCTAssertEqual(r.status, 0, r.err)
        return r.out
    }

    func opLine(_ op: String, base: Int? = nil, seq: Int? = nil, client: String? = nil) -> String {
        var s = #"{"type":"op","op":\#(op)"#
        if let base { s += #","base":\#(base)"# }
        if let seq { s += #","seq":\#(seq)"# }
        if let client { s += #","client":"\#(client)""# }
        return s + "}\n"
    }

    func testHistorySinceReproducesTheDocumentAndFollowsWithoutGap() throws {
        let r = room("history")
        // A durable follower started before anything is committed, and one that joins midway.
        let early = try follower(["--room", r, "--history"])
        var input = ""
        var expected = ""
        for i in 0 ..< 40 {
            let piece = "line \(i) é🙂\n"
            let keep = expected.unicodeScalars.count
            input += opLine(keep == 0 ? "[\(jsonString(piece))]" : "[\(keep),\(jsonString(piece))]")
            expected += piece
        }
        let committed = try run(["--room", r, "--commit", "--user", "writer"], input: input)
        XCTAssertEqual(committed.status, 0, committed.err)
        let acks = messages(committed.out).filter { $0.type == .ack }
        XCTAssertEqual(acks.map(\.rev), Array(1 ... 40).map { Optional($0) })

        // The whole history, then from revision 15 on top of the document at 15.
        let all = try run(["--room", r, "--history"], input: "")
        XCTAssertEqual(all.status, 0, all.err)
        XCTAssertEqual(messages(all.out).map(\.rev), Array(1 ... 40).map { Optional($0) })
        XCTAssertEqual(try apply(all.out), expected)
        let tail = try run(["--room", r, "--history", "--since", "15"], input: "")
        XCTAssertEqual(messages(tail.out).map(\.rev), Array(16 ... 40).map { Optional($0) })
        let at15 = try apply(all.out.split(separator: "\n").prefix(15).map { $0 + "\n" }.joined())
        XCTAssertEqual(try apply(tail.out, text: at15), expected)

        // A follower joining now gets the history, then live ops, each once and in order.
        let late = try follower(["--room", r, "--history", "--since", "30"])
        var more = ""
        for i in 0 ..< 10 { more += opLine(#"["\#(i)"]"#) }
        XCTAssertEqual(try run(["--room", r, "--commit"], input: more).status, 0)
        for (f, from) in [(early, 1), (late, 31)] {
            XCTAssertTrue(f.stdout.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains(#""rev":50,"#) }, f.stdout.text)
            XCTAssertEqual(messages(f.stdout.text).map(\.rev), Array(from ... 50).map { Optional($0) })
        }
        XCTAssertEqual(try apply(early.stdout.text), String("9876543210") + expected)
        early.signal(SIGTERM)
        XCTAssertEqual(try early.finish(timeout: 10).status, 128 + SIGTERM)
    }

    func redisCLI(_ args: [String]) throws {
        let exe = URL(fileURLWithPath: "/usr/bin/redis-cli")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("no redis-cli") }
        let r = try ChildProcess(exe, ["-u", redisURL] + args, stdin: .null).finish(timeout: 10)
        XCTAssertEqual(r.status, 0, r.err)
    }

    func testATrimmedHistoryStartsFromTheSnapshot() throws {
        let r = room("snap")
        let keys = RoomKeys(room: r)
        var input = "", expected = ""
        for i in 0 ..< 30 {
            let piece = "w\(i) "
            let keep = expected.unicodeScalars.count
            input += opLine(keep == 0 ? "[\(jsonString(piece))]" : "[\(keep),\(jsonString(piece))]")
            expected += piece
        }
        XCTAssertEqual(try run(["--room", r, "--commit"], input: input).status, 0)
        let full = try run(["--room", r, "--history"], input: "").out
        // What collab-serve --redis does every --snapshot-every ops: a snapshot, and the stream
        // trimmed behind it.
        var snap = Message(.snapshot)
        snap.room = r
        snap.rev = 20
        snap.doc = try apply(full.split(separator: "\n").prefix(20).map { $0 + "\n" }.joined())
        try redisCLI(["HSET", keys.snapshot, "rev", "20", "m", snap.json])
        try redisCLI(["XTRIM", keys.log, "MINID", "21-0"])

        let fromSnapshot = try run(["--room", r, "--history"], input: "")
        XCTAssertEqual(fromSnapshot.status, 0, fromSnapshot.err)
        let lines = messages(fromSnapshot.out)
        XCTAssertEqual(lines.first?.type, .snapshot)
        XCTAssertEqual(lines.first?.rev, 20)
        XCTAssertEqual(lines.dropFirst().map(\.rev), Array(21 ... 30).map { Optional($0) })
        XCTAssertEqual(try apply(fromSnapshot.out), expected)
        // A --since the stream still reaches needs no snapshot.
        XCTAssertEqual(messages(try run(["--room", r, "--history", "--since", "25"], input: "").out).map(\.rev),
                       Array(26 ... 30).map { Optional($0) })

        // Without a snapshot that reaches back far enough, the missing ops are named.
        try redisCLI(["DEL", keys.snapshot])
        let gap = try run(["--room", r, "--history"], input: "")
        XCTAssertTrue(gap.err.contains("history-unavailable: ops 1...20"), gap.err)
        XCTAssertEqual(messages(gap.out).map(\.rev), Array(21 ... 30).map { Optional($0) })
    }

    func jsonString(_ s: String) -> String {
        var w = JSONWriter()
        w.string(s)
        return w.string
    }

    func testPresenceAndEventsReachAnotherBridge() throws {
        let r = room("presence"), other = room("other")
        let watcher = try follower(["--room", r])
        let all = try follower(["--all"])
        let lines = #"{"type":"presence","cursor":{"anchor":1,"head":2},"rev":0}"# + "\n" +
            #"{"type":"event","name":"build","text":"passed"}"# + "\n"
        let sent = try run(["--room", r, "--user", "ann"], input: lines)
        XCTAssertEqual(sent.status, 0, sent.err)
        // With two rooms a line must say which.
        let two = try run(["--room", r, "--room", other],
                          input: #"{"type":"event","text":"where?"}"# + "\n" + #"{"type":"event","room":"\#(other)","text":"there"}"# + "\n")
        XCTAssertTrue(two.err.contains("line 1: the line has no \"room\""), two.err)
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains("passed") }, watcher.stdout.text)
        XCTAssertTrue(all.stdout.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains("there") }, all.stdout.text)
        let got = messages(watcher.stdout.text)
        XCTAssertEqual(got.map(\.type), [.presence, .event])
        XCTAssertEqual(got.map(\.room), [r, r])
        XCTAssertEqual(got.map(\.user), ["ann", "ann"])
        XCTAssertEqual(got.first?.cursor, Selection(anchor: 1, head: 2))
        XCTAssertEqual(messages(all.stdout.text).map(\.room), [r, r, other])
    }

    func testOpLinesAreRejectedWithoutCommit() throws {
        let r = room("reject")
        let plain = try run(["--room", r], input: #"["x"]"# + "\n" + #"{"type":"event","text":"ok"}"# + "\n")
        XCTAssertEqual(plain.status, 0, plain.err)
        XCTAssertTrue(plain.err.contains("line 1: op lines are committed only with --commit"), plain.err)
        let strict = try run(["--room", r, "--strict"], input: opLine(#"["x"]"#) + #"{"type":"event"}"# + "\n")
        XCTAssertEqual(strict.status, 65, strict.err)
        let history = try run(["--room", r, "--history"], input: "")
        XCTAssertEqual(history.out, "")
        let usage = try run(["--room", r, "--all"], input: "")
        XCTAssertEqual(usage.status, 64)
    }

    func testConcurrentCommitsFromTwoBridgesConverge() throws {
        let r = room("commit")
        let watcher = try follower(["--room", r, "--history"])
        // Both bridges' ops are made on revision 0 (the empty document): each is transformed
        // against whatever the other committed first.
        var a = "", b = ""
        for i in 0 ..< 30 {
            a += opLine(#"["a\#(i) "]"#, base: 0, seq: i + 1, client: "A")
            b += opLine(#"["b\#(i) "]"#, base: 0, seq: i + 1, client: "B")
        }
        let pa = try bridge(["--room", r, "--commit"]), pb = try bridge(["--room", r, "--commit"])
        _ = pa.feed(Data(a.utf8))
        _ = pb.feed(Data(b.utf8))
        let ra = try pa.finish(timeout: 20), rb = try pb.finish(timeout: 20)
        XCTAssertEqual(ra.status, 0, ra.err)
        XCTAssertEqual(rb.status, 0, rb.err)
        let revs = (messages(ra.out) + messages(rb.out)).filter { $0.type == .ack }.compactMap(\.rev)
        XCTAssertEqual(revs.sorted(), Array(1 ... 60))
        // Resubmitting the last line is acknowledged with its original revision, not applied again;
        // an older seq is refused (the dedupe table keeps each client's last one).
        let again = try run(["--room", r, "--commit"], input: opLine(#"["a29 "]"#, base: 0, seq: 30, client: "A") +
                            opLine(#"["a0 "]"#, base: 0, seq: 1, client: "A"))
        let ack = messages(again.out).first { $0.type == .ack }
        XCTAssertEqual(ack?.rev, messages(ra.out).first { $0.type == .ack && $0.seq == 30 }?.rev)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("line 2: op 1 not committed"), again.err)

        let history = try run(["--room", r, "--history"], input: "")
        XCTAssertEqual(messages(history.out).map(\.rev), Array(1 ... 60).map { Optional($0) })
        let doc = try apply(history.out)
        XCTAssertTrue(watcher.stdout.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains(#""rev":60,"#) })
        XCTAssertEqual(try apply(watcher.stdout.text), doc)
        // Every op is in, and each bridge's own ops keep their relative order... in reverse, as
        // each was inserted at 0 of the document it was made on and ties go to earlier commits.
        let words = doc.split(separator: " ").map(String.init)
        XCTAssertEqual(Set(words), Set((0 ..< 30).map { "a\($0)" } + (0 ..< 30).map { "b\($0)" }))
        XCTAssertEqual(words.count, 60)
    }

    /// A committed op whose publish was missed (written to the stream behind the channel's back):
    /// the next live op reveals the gap and the follower fills it from the stream.
    func testAGapInTheLiveFeedIsFilledFromTheStream() throws {
        let cli = URL(fileURLWithPath: "/usr/bin/redis-cli")
        guard FileManager.default.isExecutableFile(atPath: cli.path) else { throw XCTSkip("no redis-cli") }
        let r = room("gap")
        let f = try follower(["--room", r, "--history"])
        XCTAssertEqual(try run(["--room", r, "--commit"], input: opLine(#"["abc"]"#) + opLine(#"[3,"def"]"#)).status, 0)
        let ghost = #"{"type":"op","room":"\#(r)","client":"ghost","seq":1,"rev":3,"op":[6,"!"]}"#
        for args in [["XADD", "collab:{\(r)}:log", "3-0", "m", ghost], ["SET", "collab:{\(r)}:rev", "3"]] {
            let c = try ChildProcess(cli, ["-u", redisURL] + args, stdin: .null)
            children.append(c)
            XCTAssertEqual(try c.finish(timeout: 10).status, 0)
        }
        XCTAssertEqual(try run(["--room", r, "--commit"], input: opLine(#"[7,"?"]"#)).status, 0)
        XCTAssertTrue(f.stdout.wait(timeout: 10) { String(decoding: $0, as: UTF8.self).contains(#""rev":4,"#) }, f.stdout.text)
        XCTAssertEqual(messages(f.stdout.text).map(\.rev), [1, 2, 3, 4])
        XCTAssertEqual(try apply(f.stdout.text), "abcdef!?")
    }

    func testUnreachableRedisExits69AfterMaxRetries() throws {
        let port = try freePort()
        let c = try ChildProcess(try BinaryLocator.require("collab-bridge"),
                                 ["redis://127.0.0.1:\(port)", "--room", "r", "--max-retries", "1"], stdin: .null)
        children.append(c)
        let r = try c.finish(timeout: 15)
        XCTAssertEqual(r.status, 69, r.err)
        XCTAssertTrue(r.err.contains("cannot reach Redis at redis://127.0.0.1:\(port)"), r.err)
    }
}
