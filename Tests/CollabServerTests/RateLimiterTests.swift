@testable import CollabServer
import XCTest

/// The token bucket, the per-connection limiter and the per-address counter, on a clock of the
/// test's own (nanoseconds): no sleeps.
final class RateLimiterTests: XCTestCase {
    let second: UInt64 = 1_000_000_000
    let t0: UInt64 = 5_000_000_000

    func testBucketAllowsItsBurstThenItsRate() {
        var b = TokenBucket(rate: 10, capacity: 3, now: t0)
        XCTAssertEqual((0..<5).map { _ in b.take(now: t0) }, [true, true, true, false, false])
        // A tenth of a second gives one token back; a twentieth none.
        XCTAssertFalse(b.take(now: t0 + second / 20))
        XCTAssertTrue(b.take(now: t0 + second / 10))
        XCTAssertFalse(b.take(now: t0 + second / 10))
        // A long pause refills to the capacity, not beyond.
        let later = t0 + 100 * second
        XCTAssertEqual((0..<4).map { _ in b.take(now: later) }, [true, true, true, false])
    }

    func testBucketSustainsExactlyItsRate() {
        var b = TokenBucket(rate: 200, capacity: 1000, now: t0)
        var taken = 0
        // 10 seconds of one attempt every 100 µs (10,000/s): burst + 10 s × rate get through.
        var now = t0
        for _ in 0..<100_000 {
            now += 100_000
            if b.take(now: now) { taken += 1 }
        }
        XCTAssertEqual(Double(taken), 1000 + 2000, accuracy: 2)
    }

    func testBucketIgnoresAClockGoingBackwards() {
        var b = TokenBucket(rate: 1, capacity: 1, now: t0)
        XCTAssertTrue(b.take(now: t0))
        XCTAssertFalse(b.take(now: t0 - second))
        XCTAssertFalse(b.take(now: t0 + second / 2))
        XCTAssertTrue(b.take(now: t0 + second))
    }

    func testDefaults() {
        let l = RateLimit(rate: 200)
        XCTAssertEqual(l.burst, 1000)
        XCTAssertEqual(l.abuseAllowance, 1000)
        XCTAssertEqual(l.forgivenPerSecond, 20)
        XCTAssertTrue(l.isEnabled)
        XCTAssertFalse(RateLimit.unlimited.isEnabled)
        XCTAssertEqual(RateLimit(rate: 50, burst: 7).burst, 7)
    }

    /// One error per interval however many messages are dropped, and an op's seq never goes
    /// unreported: a client waiting for its op's answer gets one.
    func testRefusalsAreAnsweredAtMostOncePerIntervalAndOpsAreNeverLeftUnanswered() {
        var l = ConnectionRateLimiter(RateLimit(rate: 10, burst: 2), now: t0)
        XCTAssertTrue(l.admit(now: t0))
        XCTAssertTrue(l.admit(now: t0))
        XCTAssertFalse(l.admit(now: t0))
        XCTAssertEqual(l.refuse(seq: nil, now: t0), .report(seq: nil))
        // Within the interval: a presence is dropped silently, an op's report is put off to the
        // end of the interval, once; a later op replaces the seq to report.
        XCTAssertFalse(l.admit(now: t0 + 1))
        XCTAssertEqual(l.refuse(seq: nil, now: t0 + 1), .silent)
        XCTAssertEqual(l.refuse(seq: 7, now: t0 + 2), .reportLater(at: t0 + second))
        XCTAssertEqual(l.refuse(seq: 8, now: t0 + 3), .silent)
        XCTAssertEqual(l.dueReport(now: t0 + second), .report(seq: 8))
        // Nothing left to report: a second timer finds nothing.
        XCTAssertEqual(l.dueReport(now: t0 + second + 1), .silent)
        XCTAssertEqual(l.dropped, 4)
    }

    func testAReportAfterTheIntervalClearsThePendingOne() {
        var l = ConnectionRateLimiter(RateLimit(rate: 1, burst: 1), now: t0)
        XCTAssertEqual(l.refuse(seq: 1, now: t0), .report(seq: 1))
        XCTAssertEqual(l.refuse(seq: 2, now: t0 + 10), .reportLater(at: t0 + second))
        // A refusal right at the end of the interval reports at once (its own seq)...
        XCTAssertEqual(l.refuse(seq: 3, now: t0 + second), .report(seq: 3))
        // ...so the timer armed for seq 2 must not add a second error within this interval.
        XCTAssertEqual(l.refuse(seq: 4, now: t0 + second + 5), .silent)
        XCTAssertEqual(l.dueReport(now: t0 + second + 6), .reportLater(at: t0 + 2 * second))
        XCTAssertEqual(l.dueReport(now: t0 + 2 * second), .report(seq: 4))
    }

    /// A client that ignores the errors is closed once its drops exceed the allowance (5 s of
    /// the rate at the defaults); one that backs off is not, however long it runs at the limit.
    func testSustainedAbuseCloses() {
        let limit = RateLimit(rate: 200)
        var flood = ConnectionRateLimiter(limit, now: t0)
        var now = t0
        var accepted = 0, refusals: [ConnectionRateLimiter.Refusal] = []
        // 10,000 messages at once.
        for _ in 0..<10_000 {
            now += 10
            if flood.admit(now: now) { accepted += 1 } else { refusals.append(flood.refuse(seq: nil, now: now)) }
            if flood.closing { break }
        }
        XCTAssertEqual(accepted, 1000)
        XCTAssertEqual(refusals.last, .close)
        XCTAssertEqual(refusals.count, 1001)
        XCTAssertEqual(refusals.filter { $0 == .close }.count, 1)
        XCTAssertFalse(flood.admit(now: now + 100 * second), "nothing is processed after the close")
        XCTAssertEqual(flood.refuse(seq: 1, now: now + 100 * second), .silent)

        // Twice the rate, steadily: closed, but only after seconds.
        var fast = ConnectionRateLimiter(limit, now: t0)
        now = t0
        var closedAfter: UInt64?
        for _ in 0..<(400 * 60) where closedAfter == nil {
            now += second / 400
            if !fast.admit(now: now), fast.refuse(seq: nil, now: now) == .close { closedAfter = now - t0 }
        }
        let seconds = Double(closedAfter ?? 0) / 1e9
        XCTAssertGreaterThan(seconds, 5)
        XCTAssertLessThan(seconds, 30)

        // A client that backs off after each refusal (one op in flight, resubmitted 100 ms later)
        // and otherwise sends as fast as it may, for ten minutes: never closed.
        var polite = ConnectionRateLimiter(limit, now: t0)
        now = t0
        for _ in 0..<(600 * 1000) {
            now += second / 1000
            if !polite.admit(now: now) {
                XCTAssertNotEqual(polite.refuse(seq: 1, now: now), .close)
                now += second / 10
            }
        }
        XCTAssertFalse(polite.closing)
        XCTAssertGreaterThan(polite.dropped, 0)
    }

    // MARK: Connections per address

    func testCounterAdmitsUpToTheLimitPerAddress() {
        var c = ConnectionCounter(limit: 2)
        XCTAssertTrue(c.admits("10.0.0.1"))
        c.opened("10.0.0.1")
        c.opened("10.0.0.1")
        XCTAssertFalse(c.admits("10.0.0.1"))
        XCTAssertTrue(c.admits("10.0.0.2"), "other addresses have their own share")
        XCTAssertTrue(c.refused("10.0.0.1"), "the first refusal is worth a log line")
        XCTAssertFalse(c.refused("10.0.0.1"), "the next ones are not")
        c.closed("10.0.0.1")
        XCTAssertTrue(c.admits("10.0.0.1"))
        XCTAssertEqual(c.count("10.0.0.1"), 1)
        c.opened("10.0.0.1")
        XCTAssertTrue(c.refused("10.0.0.1"), "a new episode of refusals is logged again")
        c.closed("10.0.0.1")
        c.closed("10.0.0.1")
        XCTAssertEqual(c.count("10.0.0.1"), 0)
        XCTAssertTrue(c.open.isEmpty, "no entry is kept for an address with nothing open")
        // A close never counted (cannot happen: every close follows an open) leaves it at zero.
        c.closed("10.0.0.1")
        XCTAssertEqual(c.total, 0)
    }

    func testCounterOffCountsNothing() {
        var c = ConnectionCounter(limit: 0)
        for _ in 0..<10_000 { c.opened("127.0.0.1") }
        XCTAssertTrue(c.admits("127.0.0.1"))
        XCTAssertTrue(c.open.isEmpty)
    }
}
