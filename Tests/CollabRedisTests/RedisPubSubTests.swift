import CollabRedis
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

final class RedisPubSubTests: XCTestCase {
    var server: RedisServer?
    var runner: LoopThread!

    override func tearDown() {
        runner?.stop()
        runner = nil
        server = nil
    }

    func makeSubscriber(_ url: RedisURL, _ rec: UncheckedSendable<Recorder>) {
        _ = runner.sync { [runner] loop in
            var o = RedisOptions()
            o.commandTimeout = .seconds(5)
            let pub = RedisConnection(loop: loop, url: url, options: o)
            let sub = RedisSubscriber(loop: loop, url: url, options: o)
            sub.onMessage = { ch, payload in rec.value.messages.append((ch, payload)) }
            sub.onPatternMessage = { p, ch, payload in rec.value.messages.append(("\(p)|\(ch)", payload)) }
            sub.onResubscribed = { rec.value.events.append("resubscribed") }
            sub.onDisconnect = { e in rec.value.events.append("sub down: \(e)") }
            pub.onDisconnect = { e in rec.value.events.append("pub down: \(e)") }
            runner!.objects["pub"] = pub
            runner!.objects["sub"] = sub
            pub.start()
            sub.start()
        }
    }

    func subscribe(_ channels: [String], pattern: Bool = false, _ rec: UncheckedSendable<Recorder>) {
        let tag = "confirmed \(channels)"
        _ = runner.sync { [runner] _ in
            let sub = runner!.objects["sub"] as! RedisSubscriber
            let done = { rec.value.events.append(tag) }
            if pattern { sub.psubscribe(channels, confirmed: done) } else { sub.subscribe(channels, confirmed: done) }
        }
        runner.wait(tag) { _ in rec.value.events.contains(tag) }
    }

    func publish(_ channel: String, _ payloads: [[UInt8]], _ rec: UncheckedSendable<Recorder>) -> [Int64] {
        let box = UncheckedSendable(Recorder())
        _ = runner.sync { [runner] _ in
            let pub = runner!.objects["pub"] as! RedisConnection
            for p in payloads {
                pub.command(bytes: [Array("PUBLISH".utf8), Array(channel.utf8), p]) { box.value.results.append($0) }
            }
        }
        runner.wait("\(payloads.count) publish replies") { _ in box.value.results.count == payloads.count }
        return runner.sync { _ in box.value.results.map { $0.reply?.integer ?? -1 } } ?? []
    }

    func testTenThousandMessagesLosslessInOrder() throws {
        let s = try RedisServer()
        server = s
        runner = LoopThread()
        let rec = UncheckedSendable(Recorder())
        makeSubscriber(s.url, rec)
        subscribe(["room:a"], rec)
        let count = 10_000
        let payloads = (0..<count).map { i in Array("op \(i) ".utf8) + [0, 255, UInt8(i & 0xFF)] }
        let start = Date()
        let receivers = publish("room:a", payloads, rec)
        runner.wait("\(count) messages") { _ in rec.value.messages.count == count }
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(receivers, Array(repeating: 1, count: count))
        let ok = runner.sync { _ in
            rec.value.messages.enumerated().allSatisfy { i, m in m.0 == "room:a" && m.1 == payloads[i] }
        }
        XCTAssertEqual(ok, true)
        print("pub/sub: \(count) messages published and received in \(String(format: "%.1f", elapsed * 1000)) ms = \(Int(Double(count) / elapsed)) msgs/s")
    }

    func testSubscribeUnsubscribeAndPattern() throws {
        let s = try RedisServer()
        server = s
        runner = LoopThread()
        let rec = UncheckedSendable(Recorder())
        makeSubscriber(s.url, rec)
        runner.wait("first resubscribed") { _ in rec.value.events.contains("resubscribed") }
        subscribe(["a", "b"], rec)
        XCTAssertEqual(publish("a", [Array("1".utf8)], rec), [1])
        XCTAssertEqual(publish("b", [Array("2".utf8)], rec), [1])
        _ = runner.sync { [runner] _ in (runner!.objects["sub"] as! RedisSubscriber).unsubscribe(["a"]) }
        runner.wait("a unsubscribed") { [runner] _ in !(runner!.objects["sub"] as! RedisSubscriber).activeChannels.contains("a") }
        XCTAssertEqual(publish("a", [Array("3".utf8)], rec), [0])
        subscribe(["room:*"], pattern: true, rec)
        XCTAssertEqual(publish("room:x", [Array("4".utf8)], rec), [1])
        XCTAssertEqual(publish("b", [Array("5".utf8)], rec), [1])
        runner.wait("4 messages") { _ in rec.value.messages.count == 4 }
        let got = runner.sync { _ in rec.value.messages.map { "\($0.0)=\(String(decoding: $0.1, as: UTF8.self))" } }
        XCTAssertEqual(got, ["a=1", "b=2", "room:*|room:x=4", "b=5"])
        let sets = runner.sync { [runner] _ in
            let sub = runner!.objects["sub"] as! RedisSubscriber
            return (sub.channels, sub.patterns)
        }
        XCTAssertEqual(sets?.0, ["b"])
        XCTAssertEqual(sets?.1, ["room:*"])
    }

    /// redis-server SIGKILLed and restarted on the same port: in-flight commands fail, commands
    /// while down fail, both connections come back with backoff, subscriptions are restored.
    func testServerKilledAndRestarted() throws {
        let s = try RedisServer()
        server = s
        runner = LoopThread()
        let rec = UncheckedSendable(Recorder())
        makeSubscriber(s.url, rec)
        subscribe(["r1", "r2"], rec)
        subscribe(["r*"], pattern: true, rec)
        XCTAssertEqual(publish("r1", [Array("before".utf8)], rec), [2]) // channel and pattern
        runner.wait("resubscribed once") { _ in rec.value.events.filter { $0 == "resubscribed" }.count == 1 }
        // Commands in flight when the server dies.
        _ = runner.sync { [runner] _ in
            let pub = runner!.objects["pub"] as! RedisConnection
            for _ in 0..<3 { pub.command(["BLPOP", "collab-test:never", "10"]) { rec.value.results.append($0) } }
        }
        s.kill9()
        runner.wait("in-flight commands failed") { _ in rec.value.results.count == 3 }
        runner.wait("both disconnects reported") { _ in
            rec.value.events.contains { $0.hasPrefix("pub down") } && rec.value.events.contains { $0.hasPrefix("sub down") }
        }
        let failures = runner.sync { _ in rec.value.results.map { $0.error } }
        for f in failures ?? [] {
            guard case .disconnected = f else { XCTFail("expected .disconnected, got \(String(describing: f))"); continue }
        }
        try s.start()
        runner.wait("resubscribed after restart", timeout: 15) { _ in
            rec.value.events.filter { $0 == "resubscribed" }.count == 2
        }
        runner.wait("publisher back") { [runner] _ in (runner!.objects["pub"] as! RedisConnection).isReady }
        XCTAssertEqual(publish("r2", [Array("after".utf8)], rec), [2]) // channel and pattern
        runner.wait("4 messages") { _ in rec.value.messages.count == 4 }
        let got = runner.sync { _ in rec.value.messages.map { "\($0.0)=\(String(decoding: $0.1, as: UTF8.self))" } }
        XCTAssertEqual(Set(got ?? []), ["r1=before", "r*|r1=before", "r2=after", "r*|r2=after"])
        let counts = runner.sync { [runner] _ in (runner!.objects["pub"] as! RedisConnection).connectionCount }
        XCTAssertEqual(counts, 2)
        print("restart events:", runner.sync { _ in rec.value.events } ?? [])
    }

    func testAuthAndDatabase() throws {
        let s = try RedisServer(["--requirepass", "s3cr3t"])
        server = s
        runner = LoopThread()
        let good = try RedisURL(parsing: "redis://:s3cr3t@127.0.0.1:\(s.port)/3")
        let bad = try RedisURL(parsing: "redis://:wrong@127.0.0.1:\(s.port)")
        let rec = UncheckedSendable(Recorder())
        _ = runner.sync { [runner] loop in
            let c = RedisConnection(loop: loop, url: good)
            let d = RedisConnection(loop: loop, url: bad)
            d.onConnectFailed = { e, n in rec.value.events.append("bad \(n): \(e)") }
            runner!.objects["good"] = c
            runner!.objects["bad"] = d
            c.start()
            d.start()
            c.command(["SET", "k", "in db 3"]) { rec.value.results.append($0) }
            c.command(["CLIENT", "INFO"]) { rec.value.results.append($0) }
        }
        runner.wait("replies") { _ in rec.value.results.count == 2 }
        runner.wait("bad password retried") { _ in rec.value.events.count >= 2 }
        let (results, events) = runner.sync { _ in (rec.value.results, rec.value.events) }!
        XCTAssertEqual(results[0].reply, .status("OK"))
        XCTAssertTrue(results[1].reply?.string?.contains("db=3") == true, "\(results[1])")
        XCTAssertTrue(events[0].contains("WRONGPASS") || events[0].contains("invalid"), events[0])
        _ = runner.sync { [runner] _ in (runner!.objects["bad"] as! RedisConnection).close() }
    }
}
