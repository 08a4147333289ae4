import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// collab-bench against real collab-serve processes (the binaries of this build), briefly: the
/// run must be clean and the JSON complete. These check the tool, not the server's speed.
final class BenchIntegrationTests: XCTestCase {
    private var children: [ChildProcess] = []

    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    override func tearDown() {
        for c in children { c.kill9() }
        children = []
        super.tearDown()
    }

    func spawn(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        let c = try ChildProcess(try BinaryLocator.require(name), arguments, stdin: .null, unsetting: ["COLLAB_TOKEN"])
        children.append(c)
        return c
    }

    /// A collab-serve on a free port; returns it and its URL once it listens.
    func startServer(_ extra: [String]) throws -> (ChildProcess, String) {
        let child = try spawn("collab-serve", ["--port", "0", "--log-level", "info"] + extra)
        var url: String?
        child.stderr.wait(timeout: 15) { data in
            let text = String(decoding: data, as: UTF8.self)
            guard let r = text.range(of: "listening on ws://127.0.0.1:") else { return false }
            let digits = text[r.upperBound...].prefix { $0.isNumber }
            guard text[r.upperBound...].dropFirst(digits.count).first?.isNewline == true else { return false }
            url = "ws://127.0.0.1:\(digits)"
            return true
        }
        guard let url else {
            XCTFail("collab-serve did not start: \(child.stderr.text)")
            throw XCTSkip("no server")
        }
        return (child, url)
    }

    func dataDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-bench-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir.path
    }

    /// Runs collab-bench to its end (bounded) and returns its status and parsed JSON.
    func bench(_ arguments: [String], timeout: Double = 60) throws -> (Int32, [String: Any], ChildProcess) {
        let c = try spawn("collab-bench", arguments)
        let result = try c.finish(timeout: timeout)
        let object = (try? JSONSerialization.jsonObject(with: result.stdout)) as? [String: Any] ?? [:]
        return (result.status, object, c)
    }

    func testAShortRunDeliversEverythingAndReportsJSON() throws {
        let (server, url) = try startServer(["--data", try dataDirectory()])
        let (status, json, c) = try bench(["--clients", "20", "--active", "4", "--rate", "20", "--duration", "1",
                                          "--warmup", "0.2", "--json", "--quiet", "--server-pid", "\(server.pid)", url])
        XCTAssertEqual(status, 0, c.stderr.text)
        let sent = try XCTUnwrap(json["sent"] as? Int, "\(json)")
        // 4 writers × 20 ops/s × 1.2 s, give or take an op per writer at the window's edges.
        XCTAssertGreaterThanOrEqual(sent, 88)
        XCTAssertLessThanOrEqual(sent, 100)
        XCTAssertEqual(json["acked"] as? Int, sent)
        XCTAssertEqual(json["missing"] as? Int, 0)
        XCTAssertEqual(json["duplicates"] as? Int, 0)
        XCTAssertEqual(json["out_of_order"] as? Int, 0)
        // One room of 20: each op reaches the 19 others.
        XCTAssertEqual(json["delivered"] as? Int, sent * 19)
        XCTAssertEqual(json["expected"] as? Int, sent * 19)
        XCTAssertGreaterThan(json["deliveries_per_s"] as? Double ?? 0, 0)
        for key in ["latency_ms", "ack_ms"] {
            let s = try XCTUnwrap(json[key] as? [String: Any], key)
            for p in ["p50", "p90", "p99", "p999", "max"] { XCTAssertNotNil(s[p] as? Double, "\(key).\(p)") }
            XCTAssertGreaterThan(s["count"] as? Int ?? 0, 0)
            XCTAssertLessThanOrEqual(s["p50"] as? Double ?? .infinity, s["max"] as? Double ?? 0)
        }
        let serverStats = try XCTUnwrap(json["server"] as? [String: Any])
        XCTAssertNotNil(serverStats["cpu_us_per_delivery"] as? Double)
        XCTAssertGreaterThan(serverStats["rss_mib"] as? Double ?? 0, 1)
        XCTAssertEqual(json["ok"] as? Bool, true)
    }

    func testClientsSpreadOverRoomsAndTheTableIsPrinted() throws {
        let (_, url) = try startServer(["--data", try dataDirectory()])
        let c = try spawn("collab-bench", ["--clients", "9", "--rooms", "3", "--active", "3", "--rate", "10",
                                          "--duration", "0.5", "--warmup", "0", url])
        let result = try c.finish(timeout: 60)
        XCTAssertEqual(result.status, 0, result.err)
        // Three rooms of three, one writer each: every op reaches two others.
        let line = try XCTUnwrap(result.outLines.first { $0.hasPrefix("deliveries") }, result.out)
        XCTAssertTrue(line.contains("missing 0"), line)
        let sent = try XCTUnwrap(result.outLines.first { $0.hasPrefix("ops") }.flatMap { Int($0.split(separator: " ")[2].dropLast()) })
        XCTAssertTrue(line.contains("expected \(sent * 2),"), "\(line) (sent \(sent))")
        XCTAssertTrue(result.out.contains("latency (ms)"))
        XCTAssertTrue(result.err.contains("joined"), "progress on stderr: \(result.err)")
    }

    func testTwoInstancesBehindRedisShareTheRooms() throws {
        let redis = try RedisServer()
        let redisURL = "redis://127.0.0.1:\(redis.port)"
        let (a, urlA) = try startServer(["--redis", redisURL])
        let (b, urlB) = try startServer(["--redis", redisURL])
        for s in [a, b] {
            XCTAssertTrue(s.stderr.wait(timeout: 15) { String(decoding: $0, as: UTF8.self).contains("redis: connected") }, s.stderr.text)
        }
        let (status, json, c) = try bench(["--clients", "12", "--active", "4", "--rate", "10", "--duration", "1",
                                          "--warmup", "0.3", "--json", "--quiet", "--server-pid", "\(a.pid)",
                                          "--server-pid", "\(b.pid)", urlA, urlB])
        XCTAssertEqual(status, 0, c.stderr.text)
        let sent = try XCTUnwrap(json["sent"] as? Int, "\(json)")
        XCTAssertGreaterThan(sent, 0)
        XCTAssertEqual(json["delivered"] as? Int, sent * 11, "writers on both instances reach every other client")
        XCTAssertEqual(json["missing"] as? Int, 0)
        let processes = try XCTUnwrap((json["server"] as? [String: Any])?["processes"] as? [[String: Any]])
        XCTAssertEqual(processes.count, 2)
        withExtendedLifetime(redis) {}
    }

    func testAnUnreachableServerExits69() throws {
        let port = try freePort() // nothing listens there
        let (status, json, c) = try bench(["--clients", "3", "--duration", "0.2", "--json", "ws://127.0.0.1:\(port)"], timeout: 30)
        XCTAssertEqual(status, 69, c.stderr.text)
        XCTAssertTrue(json.isEmpty, "no report when nothing was measured")
        XCTAssertTrue(c.stderr.text.contains("could not connect"), c.stderr.text)
    }

    func testUsageErrors() throws {
        for args in [["ws://127.0.0.1:1/room"], ["--active", "5", "--clients", "2", "ws://127.0.0.1:1"], ["http://x"]] {
            let (status, _, c) = try bench(args, timeout: 15)
            XCTAssertEqual(status, 64, "\(args): \(c.stderr.text)")
        }
    }
}
