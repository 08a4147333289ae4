import CollabTestSupport
import Foundation
import XCTest
import CollabOT
import CollabProtocol

/// Runs the real `collab-ot-apply` binary.
final class OTApplyApplyTests: ToolTestCase {

    func testAppliesOpsAndBareArraysExactly() throws {
        let input = """
        ["hello"]
        {"type":"op","op":[5," world"]}
        {"type":"ack","seq":1,"rev":2}
        {"type":"presence","cursor":{"anchor":1,"head":1},"rev":2}
        [6,{"d":5},"there"]

        """
        let r = try run(["apply"], stdin: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hello there") // exactly: no newline added
        XCTAssertEqual(r.err, "")
    }

    func testStartingDocumentAndNonASCII() throws {
        // Positions count Unicode scalars: é is one, 😀 is one.
        let r = try run(["apply", "--text", "héllo 😀!"], stdin: "[1,{\"d\":1},\"e\"]\n[7,\"🎉\"]\r\n{\"type\":\"op\",\"op\":[1,{\"d\":\"el\"},\"ÉL\"]}")
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hÉLlo 😀🎉!")

        let dir = try temporaryDirectory()
        let file = dir.appendingPathComponent("doc.txt")
        try Data("line one\nline two\n".utf8).write(to: file)
        let f = try run(["apply", "--doc", file.path], stdin: "[9,{\"d\":4},\"2\"]\n[15,\"three\\n\"]\n")
        XCTAssertEqual(f.status, 0, f.err)
        XCTAssertEqual(f.out, "line one\n2 two\nthree\n")

        let missing = try run(["apply", "--doc", dir.appendingPathComponent("nope").path])
        XCTAssertEqual(missing.status, 74)
        XCTAssertTrue(missing.err.contains("nope"), missing.err)

        let directory = try run(["apply", "--doc", dir.path])
        XCTAssertEqual(directory.status, 74, directory.err)
        let latin1 = dir.appendingPathComponent("latin1.txt")
        try Data([0x63, 0x61, 0x66, 0xE9]).write(to: latin1)
        let notUTF8 = try run(["apply", "--doc", latin1.path])
        XCTAssertEqual(notUTF8.status, 65, notUTF8.err)
        XCTAssertTrue(notUTF8.err.contains("not valid UTF-8"), notUTF8.err)

        let both = try run(["apply", "--doc", file.path, "--text", "x"])
        XCTAssertEqual(both.status, 64)
    }

    func testWelcomeAndSnapshotResetTheDocument() throws {
        let input = """
        ["stale"]
        {"type":"welcome","room":"r","client":"c","rev":5,"doc":"abc"}
        {"type":"op","rev":6,"op":[3,"!"]}
        {"type":"welcome","room":"r","client":"c","rev":9,"since":6}
        {"type":"op","rev":7,"op":["<"]}
        {"type":"snapshot","rev":2,"doc":"xyz"}
        {"type":"op","rev":3,"op":[1,{"d":1}]}
        """
        let r = try run(["apply"], stdin: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "xz")
        XCTAssertEqual(r.err, "")
    }

    func testRevisionGapAndRepeatAreReportedAndSkipped() throws {
        let input = """
        {"type":"snapshot","rev":5,"doc":"abc"}
        {"type":"op","rev":7,"op":[3,"gap"]}
        {"type":"op","rev":5,"op":[3,"repeat"]}
        {"type":"op","rev":6,"op":[3,"!"]}
        {"type":"op","rev":6,"op":[3,"again"]}
        {"type":"op","rev":7,"op":[4,"?"]}
        """
        let r = try run(["apply"], stdin: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "abc!?")
        let lines = r.errLines
        XCTAssertEqual(lines.count, 3, r.err)
        XCTAssertTrue(lines[0].contains("line 2") && lines[0].contains("gap"), r.err)
        XCTAssertTrue(lines[1].contains("line 3") && lines[1].contains("repeats"), r.err)
        XCTAssertTrue(lines[2].contains("line 5") && lines[2].contains("repeats"), r.err)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("collab-ot-apply: error: ") }, r.err)
    }

    func testBadLinesAreReportedAndProcessingContinues() throws {
        var input = Data()
        input.append(Data("[\"ab\"]\n".utf8))                                   // 1
        input.append(Data("{\"type\":\"op\",\"op\":[1,\"x\"\n".utf8))           // 2: invalid JSON
        input.append(Data("[2,\"".utf8) + Data([0xC3, 0x28]) + Data("\"]\n".utf8)) // 3: invalid UTF-8
        input.append(Data("{\"type\":\"bogus\",\"op\":[1]}\n".utf8))            // 4: unknown type
        input.append(Data("[2,\"\(String(repeating: "y", count: 300))\"]\n".utf8)) // 5: longer than --max-line
        input.append(Data("[10,\"far\"]\n".utf8))                               // 6: past the end
        input.append(Data("[0]\n".utf8))                                        // 7: bad op
        input.append(Data("{\"type\":\"op\"}\n".utf8))                          // 8: op without op
        input.append(Data([0xFF, 0x0A]))                                        // 9: not JSON at all
        input.append(Data("\n[2,\"c\"]".utf8))                                  // 11: fine, no newline at the end
        let r = try run(["apply", "--max-line", "100"], stdinBytes: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "abc")
        let lines = r.errLines
        let expected: [(Int, String)] = [(2, "invalid JSON"), (3, "UTF-8"), (4, "unknown message type \"bogus\""),
                                         (5, "longer than the limit of 100 bytes"), (6, "does not apply"),
                                         (7, "positive"), (8, "without \"op\""), (9, "invalid JSON")]
        XCTAssertEqual(lines.count, expected.count, r.err)
        for (line, (number, words)) in zip(lines, expected) {
            XCTAssertTrue(line.contains("line \(number): "), "\(line) should name line \(number)")
            XCTAssertTrue(line.contains(words), "\(line) should say \(words)")
        }
    }

    func testStrictStopsAtTheFirstBadLine() throws {
        let r = try run(["apply", "--strict"], stdin: "[\"ok\"]\n[\"fine\"]\n{\"type\":\"op\",\"op\":[9,\"x\"]}\nnot json\n[\"never\"]\n")
        XCTAssertEqual(r.status, 65)
        XCTAssertEqual(r.errLines.count, 1, r.err)
        XCTAssertTrue(r.err.contains("line 3: "), r.err)
        XCTAssertEqual(r.out, "")

        let overlong = try run(["apply", "--strict", "--max-line", "8"], stdin: "[\"ok\"]\n[\"too long\"]\n")
        XCTAssertEqual(overlong.status, 65)
        XCTAssertTrue(overlong.err.contains("line 2: line longer"), overlong.err)

        // A lot of input after the bad line: the tool stops reading, the writer gets EPIPE, nothing hangs.
        let big = "[\"a\"]\nbad\n" + String(repeating: "[1,\"b\"]\n", count: 200_000)
        let early = try run(["apply", "--strict"], stdin: big)
        XCTAssertEqual(early.status, 65)
        XCTAssertTrue(early.err.contains("line 2: "), early.err)
    }

    func testMaxLineValidation() throws {
        let r = try run(["apply", "--max-line", "0"])
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.err.contains("--max-line"), r.err)
    }

    /// With --follow and stdout a pipe, each snapshot line is written as soon as its op is read:
    /// the test reads it back before sending the next line, with stdin still open.
    func testFollowIsFlushedPerLine() throws {
        let child = try ChildProcess(try tool(), ["apply", "--follow", "--text", "é"])
        let deadline = Date(timeIntervalSinceNow: Self.timeout)
        func lines(_ data: Data) -> [String] {
            String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        }
        child.send("[1,\"h\"]\n")
        XCTAssertTrue(child.stdout.wait(until: deadline) { lines($0).count >= 1 }, "no snapshot after the first line")
        XCTAssertEqual(lines(child.stdout.data), [#"{"type":"snapshot","rev":1,"doc":"éh"}"#])

        child.send("{\"type\":\"welcome\",\"rev\":10,\"doc\":\"new\\n\"}\n")
        XCTAssertTrue(child.stdout.wait(until: deadline) { lines($0).count >= 2 }, "no snapshot after the welcome")
        child.send("{\"type\":\"ack\",\"seq\":1,\"rev\":10}\n{\"type\":\"op\",\"rev\":11,\"op\":[4,\"!\"]}\n")
        XCTAssertTrue(child.stdout.wait(until: deadline) { lines($0).count >= 3 }, "no snapshot after the op")
        child.send("{\"type\":\"op\",\"rev\":13,\"op\":[1]}\n") // a gap: reported, no snapshot
        XCTAssertTrue(child.stderr.wait(until: deadline) { String(decoding: $0, as: UTF8.self).contains("line 5: ") })
        child.closeInput()
        let r = try child.finish(timeout: Self.timeout)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.outLines, [
            #"{"type":"snapshot","rev":1,"doc":"éh"}"#,
            #"{"type":"snapshot","rev":10,"doc":"new\n"}"#,
            #"{"type":"snapshot","rev":11,"doc":"new\n!"}"#,
        ])
        XCTAssertTrue(r.out.hasSuffix("\n"))
        for line in r.outLines { XCTAssertEqual(try Message.decode(line).type, .snapshot) }
    }
}

final class OTApplyOpTests: ToolTestCase {

    func testTransform() throws {
        var r = try run(["transform", "--side", "left", #"[1,"x"]"#, #"[1,"y"]"#])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "[1,\"x\"]\n")
        r = try run(["transform", "--side", "right", #"[1,"x"]"#, #"[1,"y"]"#])
        XCTAssertEqual(r.out, "[2,\"x\"]\n")
        r = try run(["transform", #"[1,"x"]"#, #"[1,"y"]"#]) // left is the default
        XCTAssertEqual(r.out, "[1,\"x\"]\n")
        r = try run(["transform", #"[2,{"d":2}]"#, #"[1,{"d":2}]"#])
        XCTAssertEqual(r.out, "[1,{\"d\":1}]\n")
        r = try run(["transform", #"[3,"é😀"]"#, #"["ab"]"#])
        XCTAssertEqual(r.out, "[5,\"é😀\"]\n")
        r = try run(["transform", "--side", "middle", "[1]", "[1]"])
        XCTAssertEqual(r.status, 64)
    }

    func testCompose() throws {
        var r = try run(["compose", #"[1,"x"]"#, #"[2,{"d":1}]"#])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "[1,\"x\",{\"d\":1}]\n")
        r = try run(["compose", #"["abc"]"#, #"[1,{"d":1}]"#])
        XCTAssertEqual(r.out, "[\"ac\"]\n")
        r = try run(["compose", #"["a"]"#, #"[{"d":1}]"#])
        XCTAssertEqual(r.out, "[]\n")
    }

    func testInvert() throws {
        var r = try run(["invert", "--text", "héllo", #"[1,{"d":2}]"#])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "[1,\"él\"]\n")
        r = try run(["invert", "--text", "ab", #"[1,"xyz",{"d":1}]"#])
        XCTAssertEqual(r.out, "[1,\"b\",{\"d\":3}]\n") // normal form: an insert goes before a delete
        // The op does not fit the document.
        r = try run(["invert", "--text", "ab", #"[5,{"d":1}]"#])
        XCTAssertEqual(r.status, 65)
        XCTAssertFalse(r.err.isEmpty)
        // The document is required.
        r = try run(["invert", #"[1]"#])
        XCTAssertEqual(r.status, 64)
        XCTAssertTrue(r.err.contains("--doc"), r.err)
    }

    func testInvalidOpArguments() throws {
        for (args, name) in [(["transform", "[0]", "[1]"], "OP"), (["transform", "[1]", "{\"d\":1}"], "AGAINST"),
                             (["compose", "[1,\"\"]", "[1]"], "A"), (["compose", "[1]", "[1,"], "B"),
                             (["invert", "--text", "x", "not json"], "OP"), (["compose", "[1]", "[1] [2]"], "B")] {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.err.contains("\(name) is not a valid op"), "\(args): \(r.err)")
            XCTAssertEqual(r.out, "")
        }
    }
}

final class OTApplySequenceTests: ToolTestCase {

    func testConcurrentOpsGetTransformedAndConsecutiveRevs() throws {
        let input = """
        {"type":"op","client":"a","seq":1,"base":0,"op":["A"]}
        {"type":"op","client":"b","seq":1,"base":0,"op":[2,"B"],"user":"bob","ts":5}
        {"type":"op","client":"a","seq":1,"base":0,"op":["A"]}
        {"type":"op","client":"c","seq":1,"base":9,"op":["C"]}
        {"type":"op","client":"a","seq":2,"base":1,"op":[1,{"d":1}]}
        {"type":"presence","client":"a","rev":3}
        """
        let r = try run(["sequence", "--text", "xy", "--room", "r1"], stdin: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.outLines, [
            #"{"type":"op","room":"r1","client":"a","seq":1,"rev":1,"op":["A"]}"#,
            #"{"type":"op","room":"r1","user":"bob","client":"b","seq":1,"rev":2,"op":[3,"B"],"ts":5}"#,
            #"{"type":"op","room":"r1","client":"a","seq":2,"rev":3,"op":[1,{"d":1}]}"#,
        ])
        let errLines = r.errLines
        XCTAssertEqual(errLines.count, 2, r.err)
        XCTAssertTrue(errLines[0].contains("line 3") && errLines[0].contains("duplicate of revision 1"), r.err)
        XCTAssertTrue(errLines[1].contains("line 4") && errLines[1].contains("ahead"), r.err)

        // The committed ops, applied in order, give the server's document.
        let applied = try run(["apply", "--text", "xy"], stdin: r.out)
        XCTAssertEqual(applied.out, "AyB")
        XCTAssertEqual(applied.err, "")
    }

    func testOpsWithoutIdentityAreEachCommitted() throws {
        // No client/seq: nothing to deduplicate on, every line is its own op. A client without a
        // seq must not collide with that client's numbered ops either.
        let input = """
        ["x"]
        ["x"]
        {"type":"op","client":"a","seq":1,"op":["A"]}
        {"type":"op","client":"a","op":["B"]}
        {"type":"op","client":"a","seq":5,"op":["C"]}
        {"type":"op","client":"a","op":["D"]}
        {"type":"op","client":"a","seq":2,"op":["E"]}
        """
        let r = try run(["sequence"], stdin: input)
        XCTAssertEqual(r.outLines.count, 6, r.out + r.err)
        XCTAssertEqual(r.outLines.map { try? Message.decode($0).rev }, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(r.errLines.count, 1, r.err) // seq 2 after seq 5 is stale
        XCTAssertTrue(r.err.contains("line 7"), r.err)
        let applied = try run(["apply"], stdin: r.out)
        XCTAssertEqual(applied.out, "DCBAxx")
    }

    func testSequenceBadLinesAndStrict() throws {
        let input = "{\"type\":\"op\",\"op\":[\"a\"]}\nnope\n{\"type\":\"op\",\"op\":[5,\"far\"]}\n[\"b\"]\n"
        let r = try run(["sequence"], stdin: input)
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.outLines.count, 2)
        XCTAssertTrue(r.err.contains("line 2: ") && r.err.contains("line 3: "), r.err)
        let strict = try run(["sequence", "--strict"], stdin: input)
        XCTAssertEqual(strict.status, 65)
        XCTAssertEqual(strict.outLines.count, 1)
        XCTAssertTrue(strict.err.contains("line 2: "), strict.err)
    }
}

final class OTApplyReplayTests: ToolTestCase {

    static let sequentialTrace = #"""
    {"startContent":"ab","endContent":"bXc😀","txns":[
      {"time":"2020-01-01T00:00:00Z","patches":[[2,0,"c"]]},
      {"patches":[[0,1,""],[1,0,"X"]]},
      {"patches":[[3,0,"😀"]]}
    ]}
    """#

    /// Two agents typing at once: txn 2 and 3 were made concurrently with 1 and 2 respectively.
    static let concurrentTrace = #"""
    {"kind":"concurrent","numAgents":2,"startContent":"","endContent":"hello world!","txns":[
      {"parents":[],"agent":0,"patches":[[0,0,"hello"]]},
      {"parents":[0],"agent":1,"patches":[[5,0," world"]]},
      {"parents":[0],"agent":0,"patches":[[0,0,"A"]]},
      {"parents":[1],"agent":1,"patches":[[11,0,"!"]]},
      {"parents":[2,3],"agent":0,"patches":[[0,1,""]]}
    ]}
    """#

    func write(_ text: String, _ name: String) throws -> URL {
        let url = try temporaryDirectory().appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func testSequentialReplay() throws {
        let trace = try write(Self.sequentialTrace, "seq.json")
        let r = try run(["replay", trace.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "bXc😀")
        XCTAssertEqual(r.err, "")
    }

    func testConcurrentReplay() throws {
        let trace = try write(Self.concurrentTrace, "conc.json")
        let r = try run(["replay", "--no-progress", trace.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hello world!")
    }

    func testGzippedTrace() throws {
        let gzip = ["/bin/gzip", "/usr/bin/gzip"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let gzip else { throw XCTSkip("gzip not installed") }
        let trace = try write(Self.concurrentTrace, "conc.json")
        let zipper = Process()
        zipper.executableURL = URL(fileURLWithPath: gzip)
        zipper.arguments = ["-n", trace.path] // replaces conc.json with conc.json.gz
        let done = DispatchSemaphore(value: 0)
        zipper.terminationHandler = { _ in done.signal() }
        try zipper.run()
        if done.wait(timeout: .now() + 10) == .timedOut { zipper.terminate(); XCTFail("gzip hung"); return }
        XCTAssertEqual(zipper.terminationStatus, 0)
        let r = try run(["replay", trace.path + ".gz"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hello world!")
    }

    func testWrongEndContentFails() throws {
        let trace = try write(Self.sequentialTrace.replacingOccurrences(of: "bXc😀", with: "bXd😀"), "wrong.json")
        let r = try run(["replay", trace.path])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("differs"), r.err)
        XCTAssertTrue(r.err.contains("position 2"), r.err)
    }

    func testBadTraceFiles() throws {
        let dir = try temporaryDirectory()
        // A file that cannot be read: status 74, the path named once.
        let path = dir.appendingPathComponent("none.json").path
        let missing = try run(["replay", path])
        XCTAssertEqual(missing.status, 74, missing.err)
        XCTAssertEqual(missing.err, "collab-ot-apply: error: \(path): No such file or directory\n")
        let directory = try run(["replay", dir.path])
        XCTAssertEqual(directory.status, 74, directory.err)
        XCTAssertTrue(directory.err.contains("Is a directory"), directory.err)
        let broken = try write("{\"endContent\":\"x\",\"txns\":[", "broken.json")
        let b = try run(["replay", broken.path])
        XCTAssertEqual(b.status, 65, b.err)
        let misfit = try write(#"{"startContent":"","endContent":"","txns":[{"patches":[[3,0,"x"]]}]}"#, "misfit.json")
        let m = try run(["replay", misfit.path])
        XCTAssertEqual(m.status, 1, m.err)
        XCTAssertTrue(m.err.contains("transaction 0"), m.err)
    }

    /// `replay --ops | apply` (a real pipe between the two processes) rebuilds the document.
    func testReplayOpsPipedIntoApply() throws {
        for (name, text, expected) in [("seq.json", Self.sequentialTrace, "bXc😀"), ("conc.json", Self.concurrentTrace, "hello world!")] {
            let trace = try write(text, name)
            let start = text.contains("\"startContent\":\"ab\"") ? "ab" : ""
            let pipe = Pipe()
            let apply = try ChildProcess(try tool(), ["apply", "--strict", "--text", start], stdin: .from(pipe))
            let replay = try ChildProcess(try tool(), ["replay", "--ops", "--room", "t", trace.path], stdout: .into(pipe))
            let replayed = try replay.finish(timeout: Self.timeout)
            let applied = try apply.finish(timeout: Self.timeout)
            XCTAssertEqual(replayed.status, 0, replayed.err)
            XCTAssertEqual(applied.status, 0, applied.err)
            XCTAssertEqual(applied.out, expected, name)

            // And the op lines themselves are well-formed messages with consecutive revs.
            let ops = try run(["replay", "--ops", "--room", "t", trace.path])
            let messages = try ops.outLines.map { try Message.decode($0) }
            XCTAssertEqual(messages.map(\.rev), messages.indices.map { $0 + 1 } as [Int?])
            XCTAssertTrue(messages.allSatisfy { $0.type == .op && $0.room == "t" && $0.op != nil })
        }
    }
}

/// Larger inputs: many lines across the reader's 256 KB buffer, output to pipes and to files.
final class OTApplyVolumeTests: ToolTestCase {

    /// Random ops (with and without `rev`, bare and in messages, mixed with other traffic) run
    /// through the tool and through the library in-process: same document.
    func testRandomOpStreamMatchesTheLibrary() throws {
        var rng = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 0 ... UInt64.max, using: &rng)
        if let v = TestSeed.override { seed = v }
        var g = SplitMix64(seed: seed)
        var doc = TextRope("start ✓\n")
        var lines: [String] = []
        var rev = 0
        var expectedSnapshots: [String] = []
        var bytes = 0
        var linesAfterOp: [Int] = []
        while bytes < 600_000 { // crosses the tool's 256 KB read buffer twice
            let length = doc.count
            var op = TextOperation()
            let pos = Int(g.next() % UInt64(length + 1))
            op.retain(pos)
            if g.next() % 3 == 0, pos < length {
                op.delete(1 + Int(g.next() % UInt64(min(length - pos, 20))))
            } else {
                let pool = ["a", "é", "😀", "\n", "\"", "\\", "\t", "word ", "\u{0}", "漢字"]
                op.insert((0 ... Int(g.next() % 8)).map { _ in pool[Int(g.next() % UInt64(pool.count))] }.joined())
            }
            op.trimTrailingRetain()
            try op.apply(to: &doc)
            rev += 1
            switch g.next() % 4 {
            case 0: lines.append(op.json)
            case 1:
                var m = Message(.op); m.rev = rev; m.op = op; m.room = "r"; m.client = "c"; m.seq = rev; m.ts = 1
                lines.append(m.json)
            case 2:
                var m = Message(.op); m.op = op
                lines.append(m.json)
                var ack = Message(.ack); ack.seq = rev; ack.rev = rev
                lines.append(ack.json)
            default:
                var m = Message(.op); m.rev = rev; m.op = op
                lines.append("  " + m.json + " \r")
            }
            bytes += op.json.utf8.count + 30
            linesAfterOp.append(lines.count)
            if expectedSnapshots.count < 400 { expectedSnapshots.append(doc.string) }
        }
        let input = lines.joined(separator: "\n") + "\n"
        let r = try run(["apply", "--strict", "--text", "start ✓\n"], stdin: input)
        XCTAssertEqual(r.status, 0, "seed \(seed): " + r.err)
        XCTAssertEqual(r.out, doc.string, "seed \(seed)")

        // --follow: one snapshot per op, each equal to the document after it (on a prefix: every
        // snapshot carries the whole document).
        let prefix = lines[..<linesAfterOp[expectedSnapshots.count - 1]]
        let f = try run(["apply", "--follow", "--text", "start ✓\n"], stdin: prefix.joined(separator: "\n") + "\n")
        XCTAssertEqual(f.status, 0, f.err)
        let snapshots = f.outLines.map { try? Message.decode($0) }
        XCTAssertEqual(snapshots.count, expectedSnapshots.count)
        XCTAssertEqual(snapshots.map { $0?.doc }, expectedSnapshots, "seed \(seed)")
        XCTAssertEqual(snapshots.map { $0?.rev }, Array(1 ... expectedSnapshots.count) as [Int?], "seed \(seed)")
    }

    /// Output to a regular file is buffered; nothing may be lost, also when --strict ends the tool.
    func testOutputToARegularFile() throws {
        let dir = try temporaryDirectory()
        let big = String(repeating: "0123456789abcdé😀\n", count: 20_000) // ~400 KB, past every buffer
        var message = Message(.op)
        message.op = TextOperation.insert(big, at: 0)

        func runToFile(_ args: [String], _ input: String) throws -> (Int32, String, String) {
            let path = dir.appendingPathComponent(UUID().uuidString).path
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: nil))
            let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
            let child = try ChildProcess(try tool(), args, stdout: .file(handle))
            try handle.close()
            let feeder = child.feed(Data(input.utf8))
            let r = try child.finish(timeout: Self.timeout)
            _ = feeder.done.wait(timeout: .now() + 5)
            let written = try String(contentsOfFile: path, encoding: .utf8)
            return (r.status, written, r.err)
        }

        let (status, written, err) = try runToFile(["apply"], message.json + "\n[1,\"!\"]\n")
        XCTAssertEqual(status, 0, err)
        XCTAssertEqual(written, "0!" + big.dropFirst())

        // Ops committed before the bad line are in the file when --strict stops.
        let (s2, w2, e2) = try runToFile(["sequence", "--strict"], "[\"a\"]\n[\"b\"]\nbad\n[\"c\"]\n")
        XCTAssertEqual(s2, 65, e2)
        XCTAssertEqual(w2, "{\"type\":\"op\",\"rev\":1,\"op\":[\"a\"]}\n{\"type\":\"op\",\"rev\":2,\"op\":[\"b\"]}\n")
        let (s3, w3, e3) = try runToFile(["apply", "--follow", "--strict"], "[\"a\"]\nbad\n")
        XCTAssertEqual(s3, 65, e3)
        XCTAssertEqual(w3, "{\"type\":\"snapshot\",\"rev\":1,\"doc\":\"a\"}\n")
    }
}
