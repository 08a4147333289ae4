import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The real binaries on loopback around a real redis-server: two `collab-serve --redis`
/// instances, `collab-join` clients that fail over between them, and crashes in the middle of
/// a stream of edits (an instance, then Redis itself). Every edit fed must end up in the room
/// exactly once and every client must exit 0.
final class FailoverIntegrationTests: JoinTestCase {
    /// Generous for a slow shared machine; a normal run takes a few seconds.
    let patience = 60.0
    let room = "/failover"

    /// A redis-server of this test's own (it gets killed), stopped on teardown.
    func startRedis(appendOnly: Bool) throws -> RedisServer {
        let redis = try RedisServer(appendOnly: appendOnly)
        addTeardownBlock { redis.kill9() }
        return redis
    }

    /// `collab-serve --redis`: no data directory, the rooms live in Redis.
    func startInstance(_ redis: RedisServer) throws -> ServerProcess {
        try startServer(data: nil, extra: ["--redis", "redis://127.0.0.1:\(redis.port)"])
    }

    /// One `collab-join` typing unique markers (`<b2-17>`) at position 0: whatever the others
    /// do, each marker stays whole, so its count in the final text says how often it was committed.
    struct MarkerBot {
        let child: ChildProcess
        let markers: [String]
        let urls: [String]
        var lines: [String] { markers.map { #"{"type":"insert","pos":0,"text":"\#($0)"}"# } }
    }

    func startBots(_ urlLists: [[String]], markersEach: Int) throws -> [MarkerBot] {
        var bots: [MarkerBot] = []
        for (b, urls) in urlLists.enumerated() {
            let child = try spawn("collab-join", ["--user", "bot\(b)"] + urls)
            bots.append(MarkerBot(child: child, markers: (0 ..< markersEach).map { "<b\(b)-\($0)>" }, urls: urls))
        }
        for bot in bots {
            XCTAssertTrue(bot.child.stdout.wait(timeout: patience) { $0.occurrences(of: #""type":"welcome""#) >= 1 },
                          bot.child.stderr.text)
        }
        return bots
    }

    /// Feeds every bot's lines from a thread of its own, paced like typing (the pauses shape the
    /// stream; nothing waits on them). Each feeder signals `halfway` after half its lines and
    /// holds its last quarter until `gate` opens, so that part is typed after the crash.
    final class Feeders: @unchecked Sendable {
        let halfway = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        let count: Int

        init(_ bots: [MarkerBot], seed: UInt64) {
            count = bots.count
            for (b, bot) in bots.enumerated() {
                let lines = bot.lines
                let child = bot.child
                done.enter()
                Thread.detachNewThread { [self] in
                    var rng = SplitMix64(seed: seed &+ UInt64(b))
                    let gateAt = lines.count * 3 / 4
                    for (i, line) in lines.enumerated() {
                        if i == lines.count / 2 { halfway.signal() }
                        if i == gateAt { _ = gate.wait(timeout: .now() + 60) }
                        child.send(line + "\n")
                        usleep(UInt32(rng.int(1_000 ... 8_000)))
                    }
                    done.leave()
                }
            }
        }

        func waitHalfway(timeout: Double) -> Bool {
            let deadline = DispatchTime.now() + timeout
            return (0 ..< count).allSatisfy { _ in halfway.wait(timeout: deadline) == .success }
        }

        func openGate() {
            for _ in 0 ..< count { gate.signal() }
        }
    }

    /// Waits until every bot has seen every marker, closes their input, and checks they exit 0
    /// and agree with a fresh snapshot from `snapshotURL`, which holds each marker exactly once.
    func finish(_ bots: [MarkerBot], snapshotURL: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let all = bots.flatMap(\.markers)
        let total = all.reduce(0) { $0 + $1.unicodeScalars.count }
        for (b, bot) in bots.enumerated() {
            waitForDocument(bot.child, "bot \(b) to see all \(all.count) markers", timeout: patience, file: file, line: line) {
                $0.unicodeScalars.count >= total
            }
        }
        for bot in bots { bot.child.closeInput() }
        var documents: [String] = []
        for (b, bot) in bots.enumerated() {
            XCTAssertEqual(bot.child.waitForExit(timeout: patience), 0, "bot \(b): \(bot.child.stderr.text)", file: file, line: line)
            XCTAssertFalse(bot.child.stderr.text.contains("were dropped"), bot.child.stderr.text, file: file, line: line)
            documents.append(try applyThroughOTApply(bot.child.stdout.data))
        }
        let snap = try snapshot(snapshotURL, file: file, line: line)
        for (b, doc) in documents.enumerated() { XCTAssertEqual(doc, snap, "bot \(b) diverged", file: file, line: line) }
        let wrong = all.filter { snap.components(separatedBy: $0).count - 1 != 1 }
        XCTAssertEqual(wrong, [], "markers not present exactly once in \(snap)", file: file, line: line)
        XCTAssertEqual(snap.unicodeScalars.count, total, file: file, line: line)
    }

    func testClientsOfAKilledInstanceFailOverAndLoseNothing() throws {
        let redis = try startRedis(appendOnly: false)
        let a = try startInstance(redis)
        let b = try startInstance(redis)
        let urlA = a.url + room, urlB = b.url + room
        let bots = try startBots([[urlA, urlB], [urlB, urlA], [urlA, urlB], [urlB, urlA]], markersEach: 60)
        let feeders = Feeders(bots, seed: 17)
        XCTAssertTrue(feeders.waitHalfway(timeout: patience), "the feeders did not get halfway")

        a.child.kill9()
        feeders.openGate()
        XCTAssertEqual(feeders.done.wait(timeout: .now() + patience), .success, "the feeders did not finish")
        try finish(bots, snapshotURL: urlB)

        for bot in bots where bot.urls.first == urlA {
            XCTAssertTrue(bot.child.stderr.text.contains("reconnected to \(urlB)"), bot.child.stderr.text)
        }
        for bot in bots where bot.urls.first == urlB {
            XCTAssertFalse(bot.child.stderr.text.contains("disconnected"), bot.child.stderr.text)
        }
    }

    func testRedisKilledAndRestartedWithAOFMidStreamLosesNothingAndDuplicatesNothing() throws {
        let redis = try startRedis(appendOnly: true)
        let a = try startInstance(redis)
        let b = try startInstance(redis)
        let urlA = a.url + room, urlB = b.url + room
        let bots = try startBots([[urlA, urlB], [urlB, urlA], [urlA, urlB], [urlB, urlA]], markersEach: 60)
        let feeders = Feeders(bots, seed: 29)
        XCTAssertTrue(feeders.waitHalfway(timeout: patience), "the feeders did not get halfway")

        redis.kill9()
        feeders.openGate()
        // Every bot keeps typing, so each has an edit refused while Redis is down.
        for (n, bot) in bots.enumerated() {
            waitUntil("bot \(n) to get an unavailable error; stderr:\n\(bot.child.stderr.text)", timeout: patience) {
                bot.child.stdout.data.occurrences(of: #""code":"unavailable""#) >= 1
            }
        }
        try redis.start()
        XCTAssertEqual(feeders.done.wait(timeout: .now() + patience), .success, "the feeders did not finish")
        try finish(bots, snapshotURL: urlA)
        XCTAssertEqual(try snapshot(urlB), try snapshot(urlA))

        for bot in bots {
            let err = bot.child.stderr.text
            XCTAssertTrue(err.contains("server unavailable for seq "), err)
            XCTAssertFalse(err.contains("disconnected"), "the connection should have stayed up: \(err)")
        }
    }
}
