import CollabTransport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class LoopTests: XCTestCase {
    private func makeLoop() throws -> EventLoop {
        var o = EventLoop.Options()
        o.logLevel = .errors
        return try EventLoop(options: o)
    }

    func testTheOpenFileLimitIsRaisedTowardsTheHardLimitButNotPastTheCap() throws {
        var before = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &before)
        defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &before) }
        // Lower the soft limit first, so there is something to raise.
        var low = before
        low.rlim_cur = min(before.rlim_max, 256)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low)
        let capped = EventLoop.raiseOpenFileLimit(cap: 300)
        XCTAssertEqual(capped, Int(min(before.rlim_max, 300)))
        XCTAssertEqual(EventLoop.raiseOpenFileLimit(cap: 100), capped, "never lowered")
        _ = try makeLoop() // the default options raise it as far as their cap
        var after = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &after)
        XCTAssertEqual(after.rlim_cur, min(before.rlim_max, 65_536))
    }

    func testTimersFireInOrderAndCancel() throws {
        let loop = try makeLoop()
        var fired: [String] = []
        loop.schedule(after: .milliseconds(30)) { fired.append("30") }
        loop.schedule(after: .milliseconds(10)) { fired.append("10") }
        let cancelled = loop.schedule(after: .milliseconds(20)) { fired.append("20") }
        XCTAssertTrue(cancelled.isScheduled)
        cancelled.cancel()
        XCTAssertFalse(cancelled.isScheduled)
        var ticks = 0
        var repeating: LoopTimer?
        repeating = loop.schedule(every: .milliseconds(2)) {
            ticks += 1
            if ticks == 5 { repeating?.cancel() }
        }
        // A timer cancelled from another timer's body does not run.
        var late: LoopTimer?
        late = loop.schedule(after: .milliseconds(40)) { fired.append("late") }
        loop.schedule(after: .milliseconds(35)) { late?.cancel() }
        loop.schedule(after: .milliseconds(50)) { loop.stop() }
        let start = DispatchTime.now().uptimeNanoseconds
        runLoop(loop)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        XCTAssertEqual(fired, ["10", "30"])
        XCTAssertEqual(ticks, 5)
        XCTAssertGreaterThanOrEqual(elapsed, 49)
    }

    func testPostAndMailboxFromAnotherThreadRunOnTheLoop() throws {
        let loop = try makeLoop()
        let handle = loop.handle
        let jobsRun = SharedCounter()
        let jobsOnLoop = SharedCounter()
        var received: [Int] = []
        let mailbox = loop.makeMailbox { (n: Int) in received.append(n) }
        let sender = mailbox.sender
        var wakeUps = 0
        loop.onWakeUp = { wakeUps += 1 }
        let count = 10_000
        loop.schedule(after: .milliseconds(1)) {
            Thread.detachNewThread {
                for i in 0..<count {
                    sender.send(i)
                    if i % 10 == 0 {
                        handle.post {
                            jobsRun.add()
                            if handle.isOnLoopThread { jobsOnLoop.add() }
                        }
                    }
                }
                handle.wakeUp()
                handle.post { handle.stop() }
            }
        }
        XCTAssertFalse(handle.isOnLoopThread)
        runLoop(loop)
        XCTAssertEqual(received, Array(0..<count))
        XCTAssertEqual(jobsRun.current, count / 10)
        XCTAssertEqual(jobsOnLoop.current, count / 10)
        XCTAssertGreaterThanOrEqual(wakeUps, 1)
        XCTAssertTrue(handle.isFinished)
        XCTAssertFalse(handle.post {})
        XCTAssertFalse(sender.send(1))
    }

    func testStopFromAnotherThreadBeforeAndDuringRun() throws {
        let loop = try makeLoop()
        loop.handle.stop()
        runLoop(loop, timeout: .seconds(5))

        let loop2 = try makeLoop()
        let handle = loop2.handle
        loop2.schedule(after: .milliseconds(5)) {
            Thread.detachNewThread { handle.stop() }
        }
        runLoop(loop2, timeout: .seconds(5))
    }

    func testSignalsAreHandledOnTheLoop() throws {
        let loop = try makeLoop()
        var got: [Int32] = []
        loop.handleSignals([SIGUSR2]) { signo in
            got.append(signo)
            loop.stop()
        }
        loop.schedule(after: .milliseconds(5)) {
            Thread.detachNewThread { kill(getpid(), SIGUSR2) }
        }
        runLoop(loop, timeout: .seconds(5))
        XCTAssertEqual(got, [SIGUSR2])
    }

    func testRawDescriptorsReadWritePauseResume() throws {
        let loop = try makeLoop()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let readEnd = fds[0], writeEnd = fds[1]

        var chunks: [String] = []
        var readableWhilePaused = 0
        var readerClosed = false
        let reader = try loop.adopt(fd: readEnd)
        reader.onReadable = { r in
            if r.isReadingPaused { readableWhilePaused += 1 }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = buf.withUnsafeMutableBytes { read(r.fd, $0.baseAddress!, $0.count) }
            if n <= 0 { r.close(); return }
            chunks.append(String(decoding: buf[0..<n], as: UTF8.self))
            if chunks.count == 1 {
                r.pauseReading()
                // While paused, more data arrives; it must wait until resume.
                writeAll(writeEnd, "second")
                loop.schedule(after: .milliseconds(30)) {
                    XCTAssertEqual(chunks, ["first"])
                    r.resumeReading()
                }
            }
        }
        reader.onClose = { _ in
            readerClosed = true
            loop.stop()
        }
        var writable = 0
        let writer = try loop.adopt(fd: writeEnd, ownsDescriptor: false)
        writer.onWritable = { w in
            writable += 1
            writeAll(w.fd, "first")
        }
        writer.requestWritable()
        loop.schedule(every: .milliseconds(2)) {
            if chunks.count == 2 && writer.isOpen {
                writer.close()  // then close the pipe's write end: the reader sees end of file
            }
        }
        writer.onClose = { w in systemCloseForTest(w.fd) }
        runLoop(loop)
        XCTAssertEqual(chunks, ["first", "second"])
        XCTAssertEqual(writable, 1)
        XCTAssertEqual(readableWhilePaused, 0)
        XCTAssertTrue(readerClosed)
        XCTAssertFalse(reader.isOpen)
    }

    func testALoopThatNeverRanIsReleasedCleanly() throws {
        weak var weakLoop: EventLoop?
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        var client: WebSocketConnection?
        do {
            let loop = try makeLoop()
            weakLoop = loop
            let server = try loop.listen()
            client = try loop.connect(to: "ws://127.0.0.1:\(server.port)/x", handlers: WebSocketHandlers())
            _ = try loop.adopt(fd: fds[0])
            loop.schedule(after: .seconds(60)) {}
            _ = loop.makeMailbox { (_: Int) in }
        }
        XCTAssertNil(weakLoop, "nothing may keep a loop alive once its owner lets go")
        XCTAssertEqual(client?.state, .closed)
        XCTAssertEqual(client?.send(text: "x"), .closed)
        // The adopted read end was closed with the loop: writing now fails with EPIPE.
        signal(SIGPIPE, SIG_IGN)
        XCTAssertEqual(write(fds[1], "x", 1), -1)
        close(fds[1])
    }

    func testHTTPGetAndUpgradeRejection() throws {
        let loop = try makeLoop()
        let server = try loop.listen()
        server.onHTTP = { head in
            switch head.path {
            case "/healthz":
                return HTTPResponse(text: "ok \(head.queryValue("verbose") ?? "-")\n",
                                    headers: [("Cache-Control", "no-store")])
            case "/metrics":
                return HTTPResponse(contentType: "text/plain; version=0.0.4",
                                    body: Array(String(repeating: "m 1\n", count: 50_000).utf8))
            default:
                return nil
            }
        }
        server.onAccept = { head in
            head.queryValue("token") == nil ? .reject(status: 401, message: "token required") : .accept
        }
        var responses: [String: String] = [:]
        var readers: [RawReader] = []
        func request(_ name: String, _ text: String) throws {
            let fd = try tcpConnect(port: server.port)
            writeAll(fd, text)
            readers.append(try RawReader(loop: loop, fd: fd) { r in
                responses[name] = r.text
                if responses.count == 4 { loop.stop() }
            })
        }
        try request("health", "GET /healthz?verbose=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try request("metrics", "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try request("missing", "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try request("upgrade", upgradeRequest(path: "/room", extraHeaders: "Connection: close\r\n"))
        runLoop(loop)

        let health = responses["health"] ?? ""
        XCTAssertTrue(health.hasPrefix("HTTP/1.1 200"), health)
        XCTAssertTrue(health.lowercased().contains("cache-control: no-store"), health)
        XCTAssertTrue(health.hasSuffix("\r\n\r\nok 1\n"), health)
        let metrics = responses["metrics"] ?? ""
        XCTAssertTrue(metrics.hasPrefix("HTTP/1.1 200"))
        XCTAssertTrue(metrics.hasSuffix(String(repeating: "m 1\n", count: 50_000)))
        XCTAssertTrue((responses["missing"] ?? "").hasPrefix("HTTP/1.1 404"), responses["missing"] ?? "")
        // lws answers a refused upgrade as HTTP/1.0.
        XCTAssertTrue((responses["upgrade"] ?? "").hasPrefix("HTTP/1.0 401")
                      || (responses["upgrade"] ?? "").hasPrefix("HTTP/1.1 401"), responses["upgrade"] ?? "")
        XCTAssertTrue((responses["upgrade"] ?? "").contains("token required"))
    }
}

func systemCloseForTest(_ fd: Int32) { _ = Glibc.close(fd) }
