import CollabCLI
import Foundation
import Histogram
import XCTest

/// The pure parts of collab-bench: the open-loop schedule, a writer's one-op-in-flight queue,
/// the send log, /proc parsing, the server-message reader and the report.
final class BenchScheduleTests: XCTestCase {
    func testOpsAreSpreadEvenlyOverWritersAndDueOnTheirOwnRate() {
        // 4 writers at 5 ops/s: one op of the room every 50 ms, each writer every 200 ms.
        let s = OpenLoopSchedule(start: 1_000, writers: 4, rate: 5)
        XCTAssertEqual(s.gapNanos, 50_000_000)
        XCTAssertEqual((0 ..< 8).map(s.writer(of:)), [0, 1, 2, 3, 0, 1, 2, 3])
        XCTAssertEqual(s.due(0), 1_000)
        XCTAssertEqual(s.due(1), 1_000 + 50_000_000)
        XCTAssertEqual(s.due(4) - s.due(0), 200_000_000, "a writer's own ops are 1/rate apart")
        // No drift over a long run: op n is computed from n, not summed.
        XCTAssertEqual(s.due(1_000_000), 1_000 + 50_000_000_000_000)
    }

    func testCountDueBeforeIsExclusiveOfTheEnd() {
        let s = OpenLoopSchedule(start: 0, writers: 10, rate: 5) // an op every 20 ms
        XCTAssertEqual(s.count(dueBefore: 0), 0)
        XCTAssertEqual(s.count(dueBefore: 1), 1) // op 0 at t = 0
        XCTAssertEqual(s.count(dueBefore: 20_000_000), 1)
        XCTAssertEqual(s.count(dueBefore: 20_000_001), 2)
        XCTAssertEqual(s.count(dueBefore: 1_000_000_000), 50) // one second: 10 writers × 5
        let odd = OpenLoopSchedule(start: 7, writers: 3, rate: 7)
        for t in stride(from: UInt64(0), to: 2_000_000_000, by: 9_999_991) {
            let n = odd.count(dueBefore: t)
            XCTAssertTrue(n == 0 || odd.due(n - 1) < t)
            XCTAssertGreaterThanOrEqual(odd.due(n), t)
        }
    }

    func testAnOpDueWhileAnotherIsInFlightWaitsAndCountsFromItsDueTime() {
        var w = WriterSchedule()
        let first = w.opDue(at: 100, now: 105, measured: true)
        XCTAssertEqual(first, .init(seq: 1, reference: 105, late: false, measured: true),
                       "on time: latency counts from the send")
        XCTAssertNil(w.opDue(at: 200, now: 201, measured: true), "one op in flight")
        XCTAssertNil(w.opDue(at: 300, now: 301, measured: false))
        XCTAssertEqual(w.queued, 2)
        XCTAssertEqual(w.lateCount, 2)
        let (acked, next) = w.acknowledged()
        XCTAssertEqual(acked?.seq, 1)
        XCTAssertEqual(next, .init(seq: 2, reference: 200, late: true, measured: true),
                       "late: latency counts from the due time, not the send after the ack")
        let (_, third) = w.acknowledged()
        XCTAssertEqual(third, .init(seq: 3, reference: 300, late: true, measured: false))
        let (last, none) = w.acknowledged()
        XCTAssertEqual(last?.seq, 3)
        XCTAssertNil(none)
        XCTAssertTrue(w.isIdle)
        XCTAssertEqual(w.opDue(at: 400, now: 400, measured: true)?.late, false)
    }

    func testAWriterFarBehindKeepsItsQueueInOrder() {
        var w = WriterSchedule()
        _ = w.opDue(at: 0, now: 0, measured: true)
        for k in 1 ... 1000 { XCTAssertNil(w.opDue(at: UInt64(k), now: UInt64(k), measured: true)) }
        var seen: [UInt64] = []
        while let next = w.acknowledged().next { seen.append(next.reference) }
        XCTAssertEqual(seen, (1 ... 1000).map(UInt64.init))
        XCTAssertEqual(w.seq, 1001)
    }

    func testTheSendLogForgetsOldSeqsInsteadOfMisattributingThem() {
        var log = SendLog(capacity: 5)
        XCTAssertEqual(log.capacity, 8)
        XCTAssertNil(log.lookup(1))
        for seq in 1 ... 10 {
            log.record(.init(seq: seq, reference: UInt64(seq * 100), late: false, measured: seq % 2 == 0))
        }
        XCTAssertEqual(log.lookup(10)?.reference, 1000)
        XCTAssertEqual(log.lookup(10)?.measured, true)
        XCTAssertEqual(log.lookup(3)?.measured, false)
        XCTAssertNil(log.lookup(2), "seq 2 was overwritten by seq 10")
        XCTAssertNil(log.lookup(11))
        XCTAssertNil(log.lookup(0))
    }
}

final class ProcStatTests: XCTestCase {
    func testCPUTicksAreCountedFromTheLastParenthesis() {
        // A command name with spaces and parentheses, as a process may choose.
        let stat = "4321 (collab (serve) x) S 1 4321 4321 0 -1 4194560 1279 0 0 0 250 75 0 0 20 0 2 0 1234 0 0"
        XCTAssertEqual(ProcStat.cpuTicks(stat: stat), 325)
        XCTAssertNil(ProcStat.cpuTicks(stat: "4321 (x) S 1"))
    }

    func testStatusSizesAreInBytes() {
        let status = "Name:\tcollab-serve\nVmPeak:\t  300000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   36864 kB\nThreads:\t2\n"
        XCTAssertEqual(ProcStat.statusBytes("VmRSS", status: status), 36864 * 1024)
        XCTAssertEqual(ProcStat.statusBytes("VmHWM", status: status), 40960 * 1024)
        XCTAssertNil(ProcStat.statusBytes("VmSwap", status: status))
    }

    func testMachineIdleAndLoad() {
        XCTAssertEqual(ProcStat.idleTicks(procStat: "cpu  100 5 50 1000 20 0 3 0 0 0\ncpu0 50 2 25 500 10 0 1 0 0 0\n"), 1020)
        XCTAssertNil(ProcStat.idleTicks(procStat: "intr 1 2 3\n"))
        XCTAssertEqual(ProcStat.loadAverage("1.73 1.81 2.24 6/122 16262\n"), 1.73)
    }

    func testThisProcessCanBeSampled() throws {
        let me = try XCTUnwrap(ProcStat.sample(pid: getpid()))
        XCTAssertGreaterThan(me.rssBytes, 1 << 20)
        XCTAssertGreaterThanOrEqual(me.peakRSSBytes, me.rssBytes)
        XCTAssertGreaterThan(ProcStat.sampleSelf().cpuSeconds, 0)
        XCTAssertNil(ProcStat.sample(pid: Int32.max))
    }
}

final class BenchFrameTests: XCTestCase {
    func read(_ text: String, countDocument: Bool = false) throws -> BenchFrame {
        let prefix = Array("bench-abc-c".utf8)
        return try Array(text.utf8).withUnsafeBufferPointer { b in
            try prefix.withUnsafeBufferPointer { p in try BenchFrame.read(b, clientPrefix: p, countDocument: countDocument) }
        }
    }

    func testOpsAndAcks() throws {
        let op = try read(#"{"type":"op","room":"r","user":"bench","client":"bench-abc-c17","seq":4,"rev":99,"op":[3,"x"],"ts":1}"#)
        XCTAssertEqual(op.kind, .op)
        XCTAssertEqual(op.sender, 17)
        XCTAssertEqual(op.seq, 4)
        XCTAssertEqual(op.rev, 99)
        let foreign = try read(#"{"type":"op","client":"someone-else-1","seq":1,"rev":2,"op":["y"]}"#)
        XCTAssertEqual(foreign.sender, -1)
        XCTAssertEqual(try read(#"{"type":"op","client":"bench-abc-cx","seq":1,"rev":2}"#).sender, -1)
        let ack = try read(#"{"type":"ack","room":"r","seq":5,"rev":100}"#)
        XCTAssertEqual(ack.kind, .ack)
        XCTAssertEqual(ack.seq, 5)
        XCTAssertEqual(ack.rev, 100)
    }

    func testWelcomeCountsTheDocumentOnlyWhenAsked() throws {
        let text = #"{"type":"welcome","room":"r","client":"bench-abc-c0","rev":7,"doc":"h\u00e9llo 😀\n"}"#
        let w = try read(text, countDocument: true)
        XCTAssertEqual(w.kind, .welcome)
        XCTAssertEqual(w.rev, 7)
        XCTAssertEqual(w.documentLength, 8, "Unicode scalars, as positions count them")
        XCTAssertEqual(try read(text).documentLength, -1)
    }

    func testRostersAndPresenceAreDroppedAtTheirType() throws {
        // The rest would not even parse: reading stops at the type.
        XCTAssertEqual(try read(#"{"type":"roster","members":[{"type":"join" BROKEN"#).kind, .other)
        XCTAssertEqual(try read(#"{"type":"join","client":"bench-abc-c3"}"#).kind, .other)
    }

    func testErrors() throws {
        let e = try read(#"{"type":"error","code":"bad-op","message":"keeps past the end","seq":3,"fatal":false}"#)
        XCTAssertEqual(e.kind, .error)
        XCTAssertEqual(e.code, "bad-op")
        XCTAssertEqual(e.message, "keeps past the end")
        XCTAssertFalse(e.fatal)
        XCTAssertThrowsError(try read(#"{"type":"op","seq":"#))
    }
}

final class BenchReportTests: XCTestCase {
    func testJSONHasTheFieldsTheIssueAsksFor() throws {
        var h = LatencySummary.histogram()
        for us in 1 ... 1000 { _ = h.record(UInt64(us)) }
        var r = BenchReport()
        r.urls = ["ws://127.0.0.1:1"]
        r.clients = 10
        r.active = 2
        r.rate = 5
        r.windowSeconds = 2
        r.sent = 20
        r.acked = 20
        r.expected = 180
        r.delivered = 180
        r.windowDeliveries = 100
        r.latency = LatencySummary(h)
        r.servers = [ProcessUsage(pid: 42, cpuSeconds: 0.001, rssStartBytes: 10 << 20, rssBytes: 11 << 20, peakRSSBytes: 12 << 20)]
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.json)) as? [String: Any])
        for key in ["sent", "delivered", "missing", "deliveries_per_s", "latency_ms", "ack_ms", "server", "generator", "machine", "ok"]
            where key != "generator" {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["deliveries_per_s"] as? Double, 50)
        let latency = try XCTUnwrap(object["latency_ms"] as? [String: Any])
        XCTAssertEqual(latency["p50"] as? Double, 0.5)
        XCTAssertEqual(latency["p99"] as? Double, 0.99)
        XCTAssertEqual(latency["max"] as? Double, 1)
        XCTAssertNotNil(latency["p90"])
        XCTAssertNotNil(latency["p999"])
        let server = try XCTUnwrap(object["server"] as? [String: Any])
        XCTAssertEqual(server["cpu_us_per_delivery"] as? Double, 10)
        XCTAssertEqual(server["rss_mib"] as? Double, 11)
        XCTAssertEqual(server["rss_per_connection_kib"] as? Double, 102.4)
        XCTAssertEqual(object["ok"] as? Bool, true)
        XCTAssertTrue(r.text.contains("missing 0"))
    }

    func testARunWithMissingDeliveriesIsNotClean() {
        var r = BenchReport()
        r.sent = 1
        r.acked = 1
        XCTAssertTrue(r.isClean)
        r.missing = 1
        XCTAssertFalse(r.isClean)
        r.missing = 0
        r.sent = 2
        XCTAssertFalse(r.isClean, "an op never acknowledged")
    }
}
