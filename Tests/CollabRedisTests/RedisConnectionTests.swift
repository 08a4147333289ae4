import CollabRedis
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

final class RedisConnectionTests: RedisTestCase {
    func testSetGetIncrAndErrors() throws {
        connect()
        let k = key("k"), n = key("n")
        let r = exec([["DEL", k, n], ["SET", k, "héllo"], ["GET", k], ["INCR", n], ["INCRBY", n, "41"],
                     ["GET", key("missing")], ["INCR", k], ["NOSUCHCOMMAND"], ["RPUSH", key("l"), "a", "b"],
                     ["LRANGE", key("l"), "0", "-1"], ["DEL", key("l")]])
        XCTAssertEqual(r[1].reply, .status("OK"))
        XCTAssertEqual(r[2].reply?.string, "héllo")
        XCTAssertEqual(r[3].reply, .integer(1))
        XCTAssertEqual(r[4].reply, .integer(42))
        XCTAssertEqual(r[5].reply, .null)
        XCTAssertEqual(r[6].error?.replyCode, "ERR")   // not an integer
        XCTAssertEqual(r[7].error?.replyCode, "ERR")   // unknown command
        XCTAssertEqual(r[9].reply, .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8))]))
        // The connection is still fine after error replies.
        XCTAssertEqual(exec([["PING"]])[0].reply, .status("PONG"))
    }

    func testBinarySafeValues() throws {
        connect()
        var value = [UInt8](0...255)
        value += [0, 0, 13, 10, 36, 42] + [UInt8](repeating: 0xFF, count: 100_000)
        let k = Array(key("bin\u{0}\r\n").utf8)
        let v = value
        let rec = UncheckedSendable(Recorder())
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            c.command(bytes: [Array("SET".utf8), k, v]) { rec.value.results.append($0) }
            c.command(bytes: [Array("GET".utf8), k]) { rec.value.results.append($0) }
            c.command(bytes: [Array("DEL".utf8), k]) { rec.value.results.append($0) }
        }
        runner.wait("replies") { _ in rec.value.results.count == 3 }
        let got: [UInt8]? = runner.sync { _ in rec.value.results[1].reply?.bytes ?? [] }
        XCTAssertEqual(got?.count, value.count)
        XCTAssertTrue(got == value)
    }

    func testPipelining10000InOrder() throws {
        connect()
        let count = 10_000
        let rec = UncheckedSendable(Recorder())
        let start = Date()
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            for i in 0..<count {
                c.command(["ECHO", "m\(i)"]) { rec.value.results.append($0) }
            }
        }
        runner.wait("\(count) replies") { _ in rec.value.results.count == count }
        let elapsed = Date().timeIntervalSince(start)
        let ok = runner.sync { _ in
            rec.value.results.enumerated().allSatisfy { i, r in r.reply?.string == "m\(i)" }
        }
        XCTAssertEqual(ok, true)
        print("pipelined \(count) ECHO in \(String(format: "%.1f", elapsed * 1000)) ms = \(Int(Double(count) / elapsed)) cmds/s")
    }

    func testCommandTimeoutLeavesConnectionUsable() throws {
        connect()
        let rec = UncheckedSendable(Recorder())
        let started = Date()
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            // Blocks the connection server-side for 1 s; we give up after 100 ms.
            c.command(["BLPOP", "collab-test:nothing", "1"], timeout: .milliseconds(100)) { r in
                rec.value.results.append(r)
                rec.value.events.append("timeout after \(Date().timeIntervalSince(started))")
            }
            c.command(["PING"]) { rec.value.results.append($0) }
        }
        runner.wait("timeout") { _ in rec.value.results.count >= 1 }
        let first = runner.sync { _ in rec.value.results[0].error }
        XCTAssertEqual(first, .timeout)
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.9)
        runner.wait("PING after the blocked command") { _ in rec.value.results.count == 2 }
        XCTAssertEqual(runner.sync { _ in rec.value.results[1].reply?.string }, "PONG")
        XCTAssertEqual(exec([["ECHO", "still here"]])[0].reply?.string, "still here")
    }

    func testScriptLoadAndNoScriptRetry() throws {
        connect()
        let rec = UncheckedSendable(Recorder())
        let k = key("script")
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            let script = RedisScript(source: "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}")
            runner!.objects["script"] = script
            c.command(["DEL", k]) { _ in }
            // Two calls before the load finished share one SCRIPT LOAD.
            script.evalsha(c, keys: [k], args: ["a"]) { rec.value.results.append($0) }
            script.evalsha(c, keys: [k], args: ["b"]) { rec.value.results.append($0) }
        }
        runner.wait("two evalsha") { _ in rec.value.results.count == 2 }
        XCTAssertEqual(exec([["SCRIPT", "FLUSH"]])[0].reply, .status("OK"))
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            (runner!.objects["script"] as! RedisScript).evalsha(c, keys: [k], args: ["c"]) { rec.value.results.append($0) }
        }
        runner.wait("evalsha after SCRIPT FLUSH") { _ in rec.value.results.count == 3 }
        let (results, loads) = runner.sync { [runner] _ in
            (rec.value.results, (runner!.objects["script"] as! RedisScript).loadCount)
        }!
        XCTAssertEqual(results.map { $0.reply?.array?[1].string }, ["a", "b", "c"])
        XCTAssertEqual(results.map { $0.reply?.array?[2] }, [.integer(1), .integer(2), .integer(3)])
        XCTAssertEqual(loads, 2)
        _ = exec([["DEL", k]])
    }

    func testNothingListeningFailsAndRetriesWithBackoff() throws {
        let port = try freePort()
        let rec = UncheckedSendable(Recorder())
        let start = Date()
        _ = runner.sync { [runner] loop in
            let c = RedisConnection(loop: loop, url: RedisURL(host: "127.0.0.1", port: port))
            runner!.objects["dead"] = c
            c.onConnectFailed = { e, attempt in
                rec.value.events.append("\(attempt) \(Date().timeIntervalSince(start)) \(e)")
            }
            c.start()
            c.command(["PING"]) { rec.value.results.append($0) }
        }
        runner.wait("4 failed attempts") { _ in rec.value.events.count >= 4 }
        let (events, results) = runner.sync { _ in (rec.value.events, rec.value.results) }!
        print("failed attempts:", events)
        XCTAssertEqual(results.count, 1)
        XCTAssertNotNil(results.first?.error)
        // Backoff: 4 attempts need at least 50 + 100 + 200 ms of waiting (equal jitter).
        XCTAssertGreaterThan(Date().timeIntervalSince(start), 0.35)
        XCTAssertTrue(events[0].hasPrefix("1 "))
        XCTAssertTrue(events[3].hasPrefix("4 "))
        // While waiting between attempts, commands fail at once.
        let stateAndResult: (RedisConnection.State, RedisError?)? = runner.sync { [runner] _ in
            let c = runner!.objects["dead"] as! RedisConnection
            var err: RedisError?
            if c.state == .waiting { c.command(["PING"]) { err = $0.error } }
            return (c.state, err)
        }
        if stateAndResult?.0 == .waiting { XCTAssertEqual(stateAndResult?.1, .notConnected) }
        _ = runner.sync { [runner] _ in (runner!.objects["dead"] as! RedisConnection).close() }
    }

    func testHostNamesAreResolvedOffTheLoopThread() throws {
        // "localhost" goes through getaddrinfo (on a thread of its own) and reaches the server.
        var byName = url!
        byName.host = "localhost"
        connect("named", url: byName)
        XCTAssertEqual(try exec([["PING"]], on: "named").first?.get(), .status("PONG"))

        // A name that does not resolve is a failed attempt with the resolver's reason, retried.
        let rec = UncheckedSendable(Recorder())
        _ = runner.sync { [runner] loop in
            let c = RedisConnection(loop: loop, url: RedisURL(host: "no-such-host.invalid", port: 6379))
            runner!.objects["nowhere"] = c
            c.onConnectFailed = { e, attempt in rec.value.events.append("\(attempt) \(e)") }
            c.start()
        }
        runner.wait("2 failed attempts") { _ in rec.value.events.count >= 2 }
        let events = runner.sync { _ in rec.value.events } ?? []
        XCTAssertTrue(events[0].contains("cannot resolve no-such-host.invalid"), events[0])
        XCTAssertTrue(events[1].hasPrefix("2 "), events[1])
        _ = runner.sync { [runner] _ in (runner!.objects["nowhere"] as! RedisConnection).close() }
    }
}
