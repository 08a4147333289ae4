import CollabTransport
import Foundation
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class WebSocketTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        LogLevel.apply(.errors)
    }

    private func quietOptions() -> EventLoop.Options {
        var o = EventLoop.Options()
        o.logLevel = .errors
        return o
    }

    func testEchoBetweenServerAndClientOnOneLoop() throws {
        let loop = try EventLoop(options: quietOptions())
        let server = try loop.listen()
        XCTAssertGreaterThan(server.port, 0)

        var accepted: RequestHead?
        var serverClose: (UInt16, String)?
        var serverOpened = 0
        server.onAccept = { head in
            accepted = head
            return .accept
        }
        server.handlers.onOpen = { _ in serverOpened += 1 }
        server.handlers.onText = { c, bytes in c.send(text: bytes) }
        server.handlers.onBinary = { c, bytes in c.send(binary: bytes) }
        server.handlers.onClose = { _, code, reason in serverClose = (code, reason) }

        let big = (0..<100_000).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        var texts: [[UInt8]] = []
        var binaries: [[UInt8]] = []
        var clientClose: (UInt16, String)?
        var handlers = WebSocketHandlers()
        handlers.onOpen = { c in
            c.send(text: "hello")
            c.send(binary: [0, 1, 2, 255])
            c.send(text: big)
            c.send(OutgoingMessage(text: "shared"))  // a shared message is copied before masking
        }
        handlers.onText = { c, bytes in
            texts.append(bytes)
            if texts.count == 3 { c.close(code: CloseCode.normal, reason: "bye") }
        }
        handlers.onBinary = { _, bytes in binaries.append(bytes) }
        handlers.onClose = { _, code, reason in
            clientClose = (code, reason)
        }
        var options = ClientOptions()
        options.headers = [("Authorization", "Bearer secret")]
        options.origin = "http://example.test"
        let client = try loop.connect(to: "ws://127.0.0.1:\(server.port)/room-1?token=abc&x=1",
                                      options: options, handlers: handlers)
        XCTAssertEqual(client.state, .connecting)
        // Stop once both sides saw the close.
        loop.schedule(every: .milliseconds(5)) {
            if clientClose != nil && serverClose != nil { loop.stop() }
        }
        runLoop(loop)

        XCTAssertEqual(serverOpened, 1)
        XCTAssertEqual(accepted?.path, "/room-1")
        XCTAssertEqual(accepted?.queryValue("token"), "abc")
        XCTAssertEqual(accepted?.queryValue("x"), "1")
        XCTAssertEqual(accepted?.query, "token=abc&x=1")
        XCTAssertEqual(accepted?.header("Authorization"), "Bearer secret")
        XCTAssertEqual(accepted?.header("origin"), "http://example.test")
        XCTAssertEqual(accepted?.peerAddress, "127.0.0.1")
        XCTAssertEqual(texts.count, 3)
        XCTAssertEqual(texts.first.map { String(decoding: $0, as: UTF8.self) }, "hello")
        XCTAssertEqual(texts.count > 1 ? texts[1] : [], big)
        XCTAssertEqual(texts.last.map { String(decoding: $0, as: UTF8.self) }, "shared")
        XCTAssertEqual(binaries, [[0, 1, 2, 255]])
        XCTAssertEqual(clientClose?.0, 1000)
        XCTAssertEqual(clientClose?.1, "bye")
        XCTAssertEqual(serverClose?.0, 1000)
        XCTAssertEqual(serverClose?.1, "bye")
        XCTAssertEqual(client.state, .closed)
    }

    func testBurstArrivesCompleteAndInOrder() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.maxQueuedBytes = 64 << 20
        let server = try loop.listen(serverOptions)
        server.handlers.onText = { c, bytes in
            XCTAssertEqual(c.send(text: bytes), .queued)
        }

        let count = 50_000
        var next = 0
        var outOfOrder = 0
        var started: UInt64 = 0
        var elapsed: Double = 0
        var handlers = WebSocketHandlers()
        handlers.onOpen = { c in
            started = DispatchTime.now().uptimeNanoseconds
            for i in 0..<count {
                // ~100-byte messages, like small collab ops.
                c.send(text: "{\"type\":\"op\",\"seq\":\(i),\"pad\":\"0123456789012345678901234567890123456789012345678901234567\"}")
            }
        }
        handlers.onText = { c, bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if !text.contains("\"seq\":\(next),") { outOfOrder += 1 }
            next += 1
            if next == count {
                elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                c.close()
                loop.stop()
            }
        }
        var options = ClientOptions()
        options.limits.maxQueuedBytes = 64 << 20
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/burst", options: options, handlers: handlers)
        runLoop(loop, timeout: .seconds(20))
        XCTAssertEqual(next, count)
        XCTAssertEqual(outOfOrder, 0)
        if elapsed > 0 {
            print("burst: \(count) messages echoed (client→server→client) in "
                  + "\(String(format: "%.3f", elapsed)) s = \(Int(Double(count) / elapsed)) round trips/s")
        }
    }

    func testSharedBroadcastReachesEveryClient() throws {
        let loop = try EventLoop(options: quietOptions())
        let server = try loop.listen()
        let clients = 3
        let messages = 2_000
        var opened = 0
        server.handlers.onOpen = { _ in
            opened += 1
            guard opened == clients else { return }
            for i in 0..<messages {
                let m = OutgoingMessage(text: "broadcast \(i)")  // encoded once, queued on all
                for c in server.connections { XCTAssertEqual(c.send(m), .queued) }
            }
        }
        var received = [Int](repeating: 0, count: clients)
        var wrong = 0
        for k in 0..<clients {
            var h = WebSocketHandlers()
            h.onText = { _, bytes in
                if String(decoding: bytes, as: UTF8.self) != "broadcast \(received[k])" { wrong += 1 }
                received[k] += 1
                if received.allSatisfy({ $0 == messages }) { loop.stop() }
            }
            _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/room", handlers: h)
        }
        runLoop(loop)
        XCTAssertEqual(received, [Int](repeating: messages, count: clients))
        XCTAssertEqual(wrong, 0)
    }

    func testCoalescedFramesOfEverySizeArriveIntact() throws {
        // Sizes around the 7-bit / 16-bit / 64-bit length boundaries and beyond one batch (64 KiB).
        let sizes = [0, 1, 125, 126, 127, 65535, 65536, 70_000, 5, 300_000, 2, 40_000, 40_000]
        let payloads = sizes.enumerated().map { i, n in [UInt8]((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) }) }
        let loop = try EventLoop(options: quietOptions())
        let server = try loop.listen()
        server.handlers.onOpen = { c in
            for (i, p) in payloads.enumerated() {
                // Alternate text (ASCII bytes) and binary frames.
                if i % 2 == 0 {
                    c.send(text: p.map { $0 & 0x7f })
                } else {
                    c.send(binary: p)
                }
            }
            XCTAssertEqual(c.queuedMessages, sizes.count)
        }
        var got: [[UInt8]] = []
        var kinds: [Bool] = []
        var h = WebSocketHandlers()
        h.onText = { _, b in
            got.append(b)
            kinds.append(false)
            if got.count == sizes.count { loop.stop() }
        }
        h.onBinary = { _, b in
            got.append(b)
            kinds.append(true)
            if got.count == sizes.count { loop.stop() }
        }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/sizes", handlers: h)
        runLoop(loop)
        XCTAssertEqual(got.count, sizes.count)
        for i in 0..<min(got.count, sizes.count) {
            let expected = i % 2 == 0 ? payloads[i].map { $0 & 0x7f } : payloads[i]
            XCTAssertEqual(got[i], expected, "message \(i) of size \(sizes[i])")
            XCTAssertEqual(kinds[i], i % 2 == 1)
        }
    }

    func testInvalidUTF8TextIsRefusedByTheServer() throws {
        let loop = try EventLoop(options: quietOptions())
        let server = try loop.listen()
        var delivered = 0
        var serverClose: UInt16?
        server.handlers.onText = { _, _ in delivered += 1 }
        server.handlers.onClose = { _, code, _ in serverClose = code }
        var clientClose: UInt16?
        var h = WebSocketHandlers()
        h.onOpen = { c in c.send(text: [0xC3, 0x28]) }
        h.onClose = { _, code, _ in clientClose = code }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/utf8", handlers: h)
        loop.schedule(every: .milliseconds(2)) { if clientClose != nil && serverClose != nil { loop.stop() } }
        runLoop(loop)
        XCTAssertEqual(delivered, 0)
        XCTAssertEqual(clientClose, CloseCode.invalidPayload)
        print("invalid UTF-8: client saw \(clientClose ?? 0), server reported \(serverClose ?? 0)")
    }

    func testTwoLoopsOnTwoThreads() throws {
        // The server loop lives on its own thread; it is created there (loops are not Sendable).
        let ready = DispatchSemaphore(value: 0)
        let shared = Mutex<(port: Int, handle: LoopHandle?)>((0, nil))
        let serverDone = DispatchSemaphore(value: 0)
        let serverThreadMessages = SharedCounter()
        Thread.detachNewThread {
            var o = EventLoop.Options()
            o.logLevel = .errors
            guard let loop = try? EventLoop(options: o), let server = try? loop.listen() else {
                ready.signal()
                serverDone.signal()
                return
            }
            server.handlers.onText = { c, b in
                if loop.handle.isOnLoopThread { serverThreadMessages.add() }
                c.send(text: b)
            }
            shared.withLock { $0 = (server.port, loop.handle) }
            ready.signal()
            loop.run()
            serverDone.signal()
        }
        ready.wait()
        let (port, serverHandle) = shared.withLock { $0 }
        XCTAssertGreaterThan(port, 0)

        let loop = try EventLoop(options: quietOptions())
        let count = 1000
        var echoed = 0
        var h = WebSocketHandlers()
        h.onOpen = { c in for i in 0..<count { c.send(text: "m\(i)") } }
        h.onText = { c, b in
            if String(decoding: b, as: UTF8.self) == "m\(echoed)" { echoed += 1 }
            if echoed == count { c.close() }
        }
        h.onClose = { _, _, _ in loop.stop() }
        _ = try loop.connect(to: "ws://127.0.0.1:\(port)/threads", handlers: h)
        runLoop(loop)
        serverHandle?.stop()
        XCTAssertEqual(serverDone.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(echoed, count)
        XCTAssertEqual(serverThreadMessages.current, count)
    }

    func testOversizedMessageIsRefusedWith1009() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.maxMessageSize = 10_000
        serverOptions.rxBufferSize = 4096
        let server = try loop.listen(serverOptions)
        var tooBig: [Int] = []
        var delivered: [Int] = []
        server.handlers.onText = { c, bytes in
            delivered.append(bytes.count)
            c.send(text: "ok \(bytes.count)")
        }
        server.handlers.onMessageTooBig = { c, size in
            tooBig.append(size)
            c.send(text: "{\"type\":\"error\",\"code\":\"too-big\"}")
        }

        // Two clients: one message that fits in one receive buffer, one that arrives in pieces.
        var results: [String: (texts: [String], close: UInt16?)] = [:]
        func client(_ name: String, sizes: [Int]) throws {
            results[name] = ([], nil)
            var h = WebSocketHandlers()
            h.onOpen = { c in
                for s in sizes { c.send(text: [UInt8](repeating: UInt8(ascii: "x"), count: s)) }
            }
            h.onText = { _, bytes in results[name]!.texts.append(String(decoding: bytes, as: UTF8.self)) }
            h.onClose = { _, code, _ in
                results[name]!.close = code
                if results.values.allSatisfy({ $0.close != nil }) { loop.stop() }
            }
            _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/\(name)", handlers: h)
        }
        try client("a", sizes: [9_000, 10_001, 5])      // second is too big (arrives in pieces)
        try client("b", sizes: [100, 200_000, 7])       // far too big
        runLoop(loop)

        XCTAssertEqual(results["a"]?.close, CloseCode.messageTooBig)
        XCTAssertEqual(results["b"]?.close, CloseCode.messageTooBig)
        XCTAssertEqual(results["a"]?.texts, ["ok 9000", "{\"type\":\"error\",\"code\":\"too-big\"}"])
        XCTAssertEqual(results["b"]?.texts, ["ok 100", "{\"type\":\"error\",\"code\":\"too-big\"}"])
        XCTAssertEqual(tooBig.count, 2)
        XCTAssertTrue(tooBig.allSatisfy { $0 > 10_000 })
        XCTAssertEqual(delivered.sorted(), [100, 9_000])
    }

    func testQueueCapIsReportedAndCloseWith1008() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.maxQueuedBytes = 32_000
        let server = try loop.listen(serverOptions)
        var results: [WebSocketConnection.SendResult] = []
        server.handlers.onOpen = { c in
            let chunk = [UInt8](repeating: UInt8(ascii: "z"), count: 10_000)
            for _ in 0..<5 { results.append(c.send(text: chunk)) }
            XCTAssertEqual(c.queuedBytes, 30_000)
            c.close(code: CloseCode.policyViolation, reason: "too slow", discardQueued: true)
            XCTAssertEqual(c.send(text: "late"), .closed)
        }
        var clientTexts = 0
        var clientClose: (UInt16, String)?
        var h = WebSocketHandlers()
        h.onText = { _, _ in clientTexts += 1 }
        h.onClose = { _, code, reason in
            clientClose = (code, reason)
            loop.stop()
        }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/slow", handlers: h)
        runLoop(loop)
        XCTAssertEqual(results, [.queued, .queued, .queued, .queueFull, .queueFull])
        XCTAssertEqual(clientTexts, 0)
        XCTAssertEqual(clientClose?.0, CloseCode.policyViolation)
        XCTAssertEqual(clientClose?.1, "too slow")
    }

    func testNonReadingPeerFillsTheQueueAndIsDropped() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.maxQueuedBytes = 1 << 20
        serverOptions.limits.closeTimeout = .milliseconds(500)
        let server = try loop.listen(serverOptions)
        let chunk = OutgoingMessage(text: [UInt8](repeating: UInt8(ascii: "q"), count: 64 << 10))
        var sent = 0
        var full = false
        var closed: (UInt16, String)?
        var pump: LoopTimer?
        server.handlers.onOpen = { c in
            pump = loop.schedule(every: .milliseconds(1)) {
                for _ in 0..<16 {
                    switch c.send(chunk) {
                    case .queued: sent += 1
                    case .queueFull:
                        full = true
                        pump?.cancel()
                        c.close(code: CloseCode.policyViolation, reason: "slow consumer", discardQueued: true)
                        return
                    case .closed: return
                    }
                }
            }
        }
        server.handlers.onClose = { _, code, reason in
            closed = (code, reason)
            loop.stop()
        }
        // A raw peer that completes the handshake and then never reads.
        let fd = try tcpConnect(port: server.port, receiveBuffer: 4096)
        defer { close(fd) }
        writeAll(fd, upgradeRequest(path: "/slow"))
        runLoop(loop, timeout: .seconds(15))
        XCTAssertTrue(full)
        XCTAssertGreaterThan(sent, 16)
        XCTAssertEqual(closed?.0, CloseCode.policyViolation)
        XCTAssertEqual(closed?.1, "slow consumer")
    }

    func testHeartbeatDropsADeadPeerAndKeepsALiveOne() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.heartbeat = Heartbeat(idle: .milliseconds(200), timeout: .milliseconds(300))
        let server = try loop.listen(serverOptions)
        var deadClosed: (code: UInt16, reason: String, after: Double)?
        var livePongs = 0
        var stopping = false
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        server.handlers.onPong = { c in
            if c.request.path == "/live" { livePongs += 1 }
        }
        server.handlers.onClose = { c, code, reason in
            if c.request.path == "/dead" { deadClosed = (code, reason, seconds()) }
        }
        var liveClosedEarly = false
        var h = WebSocketHandlers()
        h.onClose = { _, _, _ in if !stopping { liveClosedEarly = true } }
        let live = try loop.connect(to: "ws://127.0.0.1:\(server.port)/live", handlers: h)
        // The dead peer: handshake sent, then silence (never reads, never answers pings).
        let fd = try tcpConnect(port: server.port)
        defer { close(fd) }
        writeAll(fd, upgradeRequest(path: "/dead"))
        loop.schedule(after: .milliseconds(1500)) {
            stopping = true
            loop.stop()
        }
        runLoop(loop)
        XCTAssertEqual(deadClosed?.code, CloseCode.abnormal)
        XCTAssertEqual(deadClosed?.reason, "heartbeat timeout")
        if let after = deadClosed?.after {
            XCTAssertGreaterThanOrEqual(after, 0.45)
            XCTAssertLessThan(after, 1.0)
        }
        XCTAssertFalse(liveClosedEarly, "the live connection must survive the heartbeat")
        XCTAssertGreaterThanOrEqual(livePongs, 3)
        XCTAssertEqual(live.state, .closed)  // teardown closed it afterwards
    }

    /// Regression: libwebsockets 4.1 keeps the UTF-8 check of the last text message on for the
    /// control frames that follow, so a PING payload that is not UTF-8 got connections that had
    /// exchanged text closed with 1007 "bad utf8" at the first heartbeat.
    func testHeartbeatAfterTextMessagesKeepsTheConnection() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.heartbeat = Heartbeat(idle: .milliseconds(50), timeout: .milliseconds(500))
        let server = try loop.listen(serverOptions)
        var serverPongs = 0
        var clientPongs = 0
        var closes: [(UInt16, String)] = []
        var stopping = false
        server.handlers.onText = { c, bytes in c.send(text: bytes) }
        server.handlers.onPong = { _ in serverPongs += 1 }
        server.handlers.onClose = { _, code, reason in if !stopping { closes.append((code, reason)) } }
        var options = ClientOptions()
        options.limits.heartbeat = Heartbeat(idle: .milliseconds(50), timeout: .milliseconds(500))
        var h = WebSocketHandlers()
        h.onOpen = { c in c.send(text: "héllo") }
        h.onPong = { _ in clientPongs += 1 }
        h.onClose = { _, code, reason in if !stopping { closes.append((code, reason)) } }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/text-then-ping", options: options, handlers: h)
        loop.schedule(every: .milliseconds(5)) {
            if (serverPongs >= 3 && clientPongs >= 3) || !closes.isEmpty {
                stopping = true
                loop.stop()
            }
        }
        runLoop(loop)
        XCTAssertTrue(closes.isEmpty, "closed: \(closes)")
        XCTAssertGreaterThanOrEqual(serverPongs, 3)
        XCTAssertGreaterThanOrEqual(clientPongs, 3)
    }

    func testUTF8ValidationCanBeLeftToTheApplication() throws {
        var o = quietOptions()
        o.validateUTF8 = false
        let loop = try EventLoop(options: o)
        let server = try loop.listen()
        var received: [[UInt8]] = []
        server.handlers.onText = { c, bytes in
            received.append(bytes)
            loop.stop()
        }
        var h = WebSocketHandlers()
        h.onOpen = { c in c.send(text: [0x7B, 0xFF, 0xFE, 0x7D]) }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/raw", handlers: h)
        runLoop(loop)
        XCTAssertEqual(received, [[0x7B, 0xFF, 0xFE, 0x7D]])
    }

    func testClientHeartbeatDetectsAServerThatStoppedReading() throws {
        let loop = try EventLoop(options: quietOptions())
        var serverOptions = WebSocketServer.Options()
        serverOptions.limits.heartbeat = nil
        let server = try loop.listen(serverOptions)
        // The server stops reading right after the handshake: the client's pings go unanswered.
        server.handlers.onOpen = { c in c.pauseReading() }
        var options = ClientOptions()
        options.limits.heartbeat = Heartbeat(idle: .milliseconds(100), timeout: .milliseconds(200))
        var closed: (UInt16, String)?
        var h = WebSocketHandlers()
        h.onClose = { _, code, reason in
            closed = (code, reason)
            loop.stop()
        }
        _ = try loop.connect(to: "ws://127.0.0.1:\(server.port)/paused", options: options, handlers: h)
        runLoop(loop, timeout: .seconds(5))
        XCTAssertEqual(closed?.0, CloseCode.abnormal)
        XCTAssertEqual(closed?.1, "heartbeat timeout")
    }

    func testClientConnectFailureAndCancel() throws {
        let loop = try EventLoop(options: quietOptions())
        // A port with no listener: bind, read the port, close.
        let probe = try loop.listen()
        let deadPort = probe.port
        _ = deadPort
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) }
        }
        let closedPort = Int(UInt16(bigEndian: addr.sin_port))
        close(s)

        var failures: [String: String] = [:]
        var opened = 0
        func handlers(_ name: String) -> WebSocketHandlers {
            var h = WebSocketHandlers()
            h.onOpen = { _ in opened += 1 }
            h.onConnectFailure = { _, message in
                failures[name] = message
                if failures.count == 3 { loop.stop() }
            }
            return h
        }
        probe.onAccept = { head in head.queryValue("token") == "good" ? .accept : .reject(status: 401, message: "no") }
        _ = try loop.connect(to: "ws://127.0.0.1:\(closedPort)/x", handlers: handlers("refused"))
        let cancelled = try loop.connect(to: "ws://127.0.0.1:\(probe.port)/x?token=good", handlers: handlers("cancelled"))
        cancelled.close()
        _ = try loop.connect(to: "ws://127.0.0.1:\(probe.port)/x?token=bad", handlers: handlers("rejected"))
        XCTAssertThrowsError(try loop.connect(to: "http://127.0.0.1/x", handlers: WebSocketHandlers()))
        XCTAssertThrowsError(try loop.connect(to: "ws://127.0.0.1:99999/x", handlers: WebSocketHandlers()))
        runLoop(loop)
        XCTAssertEqual(opened, 0)
        XCTAssertEqual(Set(failures.keys), ["refused", "cancelled", "rejected"])
        XCTAssertEqual(failures["cancelled"], "cancelled")
        print("connect failures reported: \(failures)")
    }

    func testListenOnABusyPortThrows() throws {
        let loop = try EventLoop(options: quietOptions())
        // A port held by another socket (a second vhost on a port this loop already serves
        // would share that listener instead: libwebsockets' name-based virtual hosting).
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(holder, 4)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &len) }
        }
        var o = WebSocketServer.Options()
        o.port = Int(UInt16(bigEndian: addr.sin_port))
        XCTAssertThrowsError(try loop.listen(o))
        loop.shutdown()
        XCTAssertTrue(loop.isFinished)
    }

    func testTeardownClosesOpenConnections() throws {
        let loop = try EventLoop(options: quietOptions())
        let server = try loop.listen()
        var serverClosed = 0
        var clientClosed = 0
        server.handlers.onClose = { _, _, _ in serverClosed += 1 }

        var h = WebSocketHandlers()
        h.onClose = { _, _, _ in clientClosed += 1 }
        var pendingFailure: String?
        var pending = WebSocketHandlers()
        pending.onConnectFailure = { _, message in pendingFailure = message }
        h.onOpen = { _ in
            // A second attempt still connecting when the loop stops reports its failure at teardown.
            _ = try? loop.connect(to: "ws://127.0.0.1:\(server.port)/y", handlers: pending)
            loop.stop()
        }
        let c = try loop.connect(to: "ws://127.0.0.1:\(server.port)/x", handlers: h)
        runLoop(loop)
        XCTAssertEqual(serverClosed, 1)
        XCTAssertEqual(clientClosed, 1)
        XCTAssertNotNil(pendingFailure)
        print("pending connect at teardown: \(pendingFailure ?? "-")")
        XCTAssertEqual(c.state, .closed)
        XCTAssertEqual(c.send(text: "after"), .closed)
    }

    func testURLParsing() throws {
        let u = try WebSocketURL(parsing: "ws://example.org:8080/room?token=1")
        XCTAssertEqual(u.host, "example.org")
        XCTAssertEqual(u.port, 8080)
        XCTAssertEqual(u.pathAndQuery, "/room?token=1")
        let v = try WebSocketURL(parsing: "ws://[::1]:9/")
        XCTAssertEqual(v.host, "::1")
        XCTAssertEqual(v.port, 9)
        let w = try WebSocketURL(parsing: "ws://host?x=1")
        XCTAssertEqual(w.port, 80)
        XCTAssertEqual(w.pathAndQuery, "/?x=1")
        XCTAssertThrowsError(try WebSocketURL(parsing: "http://host/"))
        XCTAssertThrowsError(try WebSocketURL(parsing: "ws://:80/"))
    }
}
