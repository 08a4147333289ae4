import CollabOT
import Foundation
import CollabTraces
import XCTest

/// Every trace shipped in benchmarks/traces replays to its endContent: real editing histories as
/// end-to-end tests of the rope, the operations and (concurrent traces) the client state machine
/// with the sequencer.
final class TraceReplayTests: XCTestCase {
    static let tracesDirectory: String = {
        // Tests/CollabTracesTests/TraceReplayTests.swift → package root.
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/benchmarks/traces"
    }()

    static func tracePaths() throws -> [String] {
        var paths: [String] = []
        for kind in ["sequential", "concurrent"] {
            let dir = tracesDirectory + "/" + kind
            for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
            where name.hasSuffix(".json") || name.hasSuffix(".json.gz") {
                paths.append(dir + "/" + name)
            }
        }
        return paths
    }

    func testEveryTraceReplaysToEndContent() throws {
        let paths = try Self.tracePaths()
        XCTAssertGreaterThanOrEqual(paths.count, 3, "traces missing from \(Self.tracesDirectory)")
        for path in paths {
            let trace = try Trace.load(path: path)
            let doc = trace.isConcurrent
                ? try TraceReplay.replayConcurrent(trace).document
                : try TraceReplay.replaySequential(trace)
            doc.checkInvariants()
            let text = doc.string
            XCTAssertEqual(doc.count, trace.endContent.unicodeScalars.count, path)
            XCTAssertTrue(text == trace.endContent,
                          "\(path): differs at \(TraceReplay.firstDifference(text, trace.endContent) ?? -1)")
        }
    }

    func testConcurrentReplayExercisesTransformation() throws {
        let trace = try Trace.load(path: Self.tracesDirectory + "/concurrent/friendsforever.json.gz")
        var commits = 0
        let (doc, stats) = try TraceReplay.replayConcurrent(trace, onCommit: { _ in commits += 1 })
        XCTAssertEqual(doc.string, trace.endContent)
        XCTAssertEqual(commits, stats.revisions)
        // The trace has real concurrency: some ops must have been rebased by the server and some
        // transactions by their client; a replay that serialised everything would show zero.
        XCTAssertGreaterThan(stats.transformedByServer, 0)
        XCTAssertGreaterThan(stats.rebased, 0)
    }

    func testSequentialCommitsReproduceTheDocument() throws {
        let trace = try Trace.load(path: Self.tracesDirectory + "/sequential/rustcode.json.gz")
        var replica = TextRope(trace.startContent)
        var lastRev = 0
        _ = try TraceReplay.replaySequential(trace, onCommit: { commit in
            XCTAssertEqual(commit.rev, lastRev + 1)
            lastRev = commit.rev
            do { try commit.op.apply(to: &replica) } catch { XCTFail("rev \(commit.rev): \(error)") }
        })
        XCTAssertEqual(replica.string, trace.endContent)
    }

    func testMalformedTracesAreRejectedWithAReason() throws {
        let cases: [(String, String)] = [
            (#"{"txns":[]}"#, "endContent"),
            (#"{"endContent":"x","txns":[{"patches":[[0,0]]}]}"#, "patch"),
            (#"{"endContent":"x","txns":[{"patches":[[-1,0,"a"]]}]}"#, "patch"),
            (#"{"kind":"concurrent","numAgents":1,"endContent":"","txns":[{"agent":0,"parents":[0],"patches":[]}]}"#, "parent"),
            (#"{"endContent":"x","txns":[{"patches":[[0,0,"a"]]}"#, "end of input"),
        ]
        for (json, expected) in cases {
            var text = json
            XCTAssertThrowsError(try text.withUTF8 { try Trace.parse($0) }, json) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(json): \(error)")
            }
        }
    }

    func testReplayReportsAnOpThatDoesNotFit() throws {
        var text = #"{"endContent":"","txns":[{"patches":[[5,0,"a"]]}]}"#
        let trace = try text.withUTF8 { try Trace.parse($0) }
        XCTAssertThrowsError(try TraceReplay.replaySequential(trace)) { error in
            XCTAssertTrue("\(error)".contains("transaction 0"), "\(error)")
        }
    }

    func testGunzipRejectsCorruptInput() {
        XCTAssertThrowsError(try gunzip([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]))
    }
}
