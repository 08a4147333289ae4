@testable import CollabServer
import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

/// GET /metrics: the Prometheus text format, and counts that follow what happened.
final class MetricsTests: HostTestCase {
    /// Sample lines (`name{labels} value`) by series.
    func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                XCTFail("not a sample line: \(line)")
                continue
            }
            out[String(line[..<space])] = value
        }
        return out
    }

    func testMetricsFollowTraffic() throws {
        let server = try startServer(configuration())
        let a = try connect(server, room: "m")
        let b = try connect(server, room: "m")
        try a.join("ann", client: "a")
        try b.join("bob", client: "b")
        for seq in 1 ... 3 {
            try a.op(#"["x"]"#, seq: seq, base: seq - 1)
            XCTAssertEqual(try a.expect(type: .ack).rev, seq)
        }
        a.send("{not json")
        _ = try a.expect(type: .error)

        let response = try httpGet(port: server.port, path: "/metrics")
        XCTAssertEqual(response.status, 200)
        XCTAssertTrue(response.headers.lowercased().contains("content-type: text/plain; version=0.0.4"), response.headers)
        let m = samples(response.body)
        XCTAssertEqual(m["collab_connections"], 2)
        XCTAssertEqual(m["collab_rooms"], 1)
        XCTAssertEqual(m[#"collab_messages_in_total{type="op"}"#], 3)
        XCTAssertEqual(m[#"collab_messages_in_total{type="hello"}"#], 2)
        XCTAssertEqual(m["collab_bad_messages_total"], 1)
        XCTAssertEqual(m["collab_ops_committed_total"], 3)
        XCTAssertEqual(m[#"collab_messages_out_total{type="ack"}"#], 3)
        // Each op reached bob once.
        XCTAssertEqual(m[#"collab_messages_out_total{type="op"}"#], 3)
        XCTAssertEqual(m["collab_commit_latency_seconds_count"], 3)
        XCTAssertEqual(m[#"collab_commit_latency_seconds_bucket{le="+Inf"}"#], 3)
        XCTAssertGreaterThan(m["collab_commit_latency_seconds_sum"] ?? 0, 0)
        XCTAssertGreaterThanOrEqual(m["collab_journal_fsync_seconds_count"] ?? 0, 1)
        XCTAssertGreaterThan(m["collab_received_bytes_total"] ?? 0, 0)
        XCTAssertNotNil(m["collab_queued_bytes"])
        XCTAssertEqual(m["collab_slow_consumer_closes_total"], 0)
        XCTAssertEqual(m["collab_rate_limited_messages_total"], 0)
        XCTAssertEqual(m["collab_rate_limit_closes_total"], 0)
        XCTAssertEqual(m["collab_refused_connections_total"], 0)
        // Help and type lines for scrapers.
        XCTAssertTrue(response.body.contains("# TYPE collab_commit_latency_seconds histogram"), response.body)
        XCTAssertTrue(response.body.contains("# HELP collab_ops_committed_total "), response.body)
    }
}
