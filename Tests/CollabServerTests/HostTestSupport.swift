@testable import CollabServer
import CollabOT
import CollabProtocol
import CollabTestSupport
import CollabTransport
import Foundation
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Log lines of an in-process host, waitable. Set COLLAB_TEST_LOG=1 to echo them.
final class LogCapture: @unchecked Sendable {
    private let condition = NSCondition()
    private var storage: [String] = []
    let echo = ProcessInfo.processInfo.environment["COLLAB_TEST_LOG"] != nil

    func append(_ level: ServerLog.Level, _ text: String) {
        if echo { FileHandle.standardError.write(Data("[server \(level)] \(text)\n".utf8)) }
        condition.lock()
        storage.append("\(level): \(text)")
        condition.broadcast()
        condition.unlock()
    }

    var lines: [String] {
        condition.lock(); defer { condition.unlock() }
        return storage
    }

    func contains(_ needle: String) -> Bool { lines.contains { $0.contains(needle) } }

    @discardableResult
    func wait(for needle: String, timeout: Double = 10) throws -> String {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while true {
            if let line = storage.first(where: { $0.contains(needle) }) { return line }
            if !condition.wait(until: deadline) {
                throw WaitTimeout(description: "no log line containing \"\(needle)\" within \(timeout) s; log:\n" + storage.joined(separator: "\n"))
            }
        }
    }
}

/// A `ServerHost` running on its own thread (created there too: a loop stays on one thread).
final class ServerThread: @unchecked Sendable {
    let logs = LogCapture()
    private(set) var port = 0
    private(set) var control: ServerControl?
    private let finished = DispatchSemaphore(value: 0)
    private let stats = Locked<ServerStats?>(nil)
    private var stopped = false

    /// Starts a host; `prepare` runs on the loop thread before the loop does (fault injection).
    init(_ configuration: ServerConfiguration, prepare: (@Sendable (ServerHost) -> Void)? = nil) throws {
        let ready = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<(Int, ServerControl), any Error>?>(nil)
        let logs = self.logs
        let finished = self.finished
        let stats = self.stats
        let thread = Thread {
            do {
                let host = try ServerHost(configuration: configuration,
                                          log: ServerLog(level: .debug, sink: { logs.append($0, $1) }))
                prepare?(host)
                outcome.withLock { $0 = .success((host.port, host.control)) }
                ready.signal()
                host.run()
                let final = host.stats
                stats.withLock { $0 = final }
            } catch {
                outcome.withLock { $0 = .failure(error) }
                ready.signal()
            }
            finished.signal()
        }
        thread.start()
        guard ready.wait(timeout: .now() + 10) == .success else {
            throw WaitTimeout(description: "server did not start within 10 s")
        }
        let (port, control) = try outcome.withLock { $0! }.get()
        self.port = port
        self.control = control
    }

    var url: String { "ws://127.0.0.1:\(port)" }

    /// Graceful shutdown (like SIGTERM); waits for the host thread to end. Returns the host's
    /// final counters.
    @discardableResult
    func stop(timeout: Double = 10) throws -> ServerStats {
        if !stopped {
            stopped = true
            control?.shutdown()
            guard finished.wait(timeout: .now() + timeout) == .success else {
                throw WaitTimeout(description: "server did not stop within \(timeout) s")
            }
        }
        return stats.withLock { $0 } ?? ServerStats()
    }
}

/// A client event loop on its own thread, for test clients.
final class ClientLoop: @unchecked Sendable {
    private(set) var loop: EventLoop!
    private let finished = DispatchSemaphore(value: 0)
    private var stopped = false

    init() throws {
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            var options = EventLoop.Options()
            options.logLevel = .errors
            do {
                self.loop = try EventLoop(options: options)
            } catch {
                ready.signal()
                self.finished.signal()
                return
            }
            ready.signal()
            self.loop.run()
            self.finished.signal()
        }
        thread.start()
        guard ready.wait(timeout: .now() + 10) == .success, loop != nil else {
            throw WaitTimeout(description: "client loop did not start")
        }
    }

    /// Runs `body` on the loop thread and waits for it.
    func sync<T>(_ body: @escaping (EventLoop) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = Locked<Result<T, any Error>?>(nil)
        let box = UncheckedBox(body)
        let loop = UncheckedBox(self.loop!)
        guard self.loop.handle.post({
            let r = Result { try box.value(loop.value) }
            result.withLock { $0 = r }
            done.signal()
        }) else { throw WaitTimeout(description: "client loop finished") }
        guard done.wait(timeout: .now() + 10) == .success else { throw WaitTimeout(description: "client loop did not answer") }
        return try result.withLock { $0! }.get()
    }

    /// Runs `body` on the loop thread soon (no wait).
    func post(_ body: @escaping (EventLoop) -> Void) {
        let box = UncheckedBox(body)
        let loop = UncheckedBox(self.loop!)
        self.loop.handle.post { box.value(loop.value) }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        loop.handle.stop()
        _ = finished.wait(timeout: .now() + 10)
    }

    /// Connects and waits until the connection is open (or failed).
    func connect(_ url: String, options: ClientOptions = ClientOptions(), timeout: Double = 10) throws -> TestClient {
        let client = TestClient(loop: self, url: url)
        try sync { loop in
            var h = WebSocketHandlers()
            h.onOpen = { _ in client.update { $0.opened = true } }
            h.onText = { _, bytes in
                let text = String(decoding: bytes, as: UTF8.self)
                let message = try? Message.decode(text)
                client.update {
                    $0.texts.append(text)
                    if let message { $0.messages.append(message) }
                }
            }
            h.onClose = { _, code, reason in client.update { $0.closeStatus = (code, reason) } }
            h.onConnectFailure = { _, message in client.update { $0.failure = message } }
            client.connection = try loop.connect(to: url, options: options, handlers: h)
        }
        try client.waitUntil(timeout: timeout, "connection to \(url) opens") { s in
            if let f = s.failure { throw WaitTimeout(description: "connection to \(url) failed: \(f)") }
            return s.opened
        }
        return client
    }
}

/// A value behind a lock, shared between threads (tests only).
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&value)
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// One test connection: what it received, waitable from the test thread.
final class TestClient: @unchecked Sendable {
    struct State {
        var opened = false
        var failure: String?
        var texts: [String] = []
        var messages: [Message] = []
        var closeStatus: (code: UInt16, reason: String)?
    }

    let loop: ClientLoop
    let url: String
    /// Loop thread only.
    var connection: WebSocketConnection?
    private let condition = NSCondition()
    private var state = State()
    /// `expect` looks at messages from here on.
    private var cursor = 0

    init(loop: ClientLoop, url: String) {
        self.loop = loop
        self.url = url
    }

    func update(_ body: (inout State) -> Void) {
        condition.lock()
        body(&state)
        condition.broadcast()
        condition.unlock()
    }

    var snapshot: State {
        condition.lock(); defer { condition.unlock() }
        return state
    }

    var messages: [Message] { snapshot.messages }

    func waitUntil(timeout: Double = 10, _ what: String, _ predicate: (State) throws -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while try !predicate(state) {
            if !condition.wait(until: deadline) {
                if try predicate(state) { return }
                throw WaitTimeout(description: "\(url): \(what) did not happen within \(timeout) s; received:\n"
                                  + state.texts.joined(separator: "\n")
                                  + (state.closeStatus.map { "\nclosed \($0.code) \($0.reason)" } ?? ""))
            }
        }
    }

    /// Waits for the next message (after the previous `expect`) that matches, and returns it.
    @discardableResult
    func expect(_ what: String, timeout: Double = 10, _ predicate: @escaping (Message) -> Bool) throws -> Message {
        var found: Message?
        // Each wake-up looks only at messages that arrived since the last look: rescanning from
        // the cursor made waiting for the 20,000th message of a burst quadratic (and the
        // benchmarks measured this loop instead of the server).
        var scanned = cursor
        try waitUntil(timeout: timeout, what) { s in
            guard scanned < s.messages.count else { return false }
            if let i = s.messages[scanned...].firstIndex(where: predicate) {
                found = s.messages[i]
                cursor = i + 1
                return true
            }
            scanned = s.messages.count
            return false
        }
        return found!
    }

    /// Waits until any message received so far (whatever `expect` has consumed) matches.
    @discardableResult
    func waitForAny(_ what: String, timeout: Double = 10, _ predicate: @escaping (Message) -> Bool) throws -> Message {
        var found: Message?
        try waitUntil(timeout: timeout, what) { s in
            found = s.messages.first(where: predicate)
            return found != nil
        }
        return found!
    }

    /// The next message (after the previous `expect`/`poll`) that matches, if it arrived already.
    func poll(_ predicate: (Message) -> Bool) -> Message? {
        condition.lock(); defer { condition.unlock() }
        guard cursor < state.messages.count,
              let i = state.messages[cursor...].firstIndex(where: predicate) else { return nil }
        cursor = i + 1
        return state.messages[i]
    }

    /// Waits until a message arrives after those seen so far (or the timeout passes).
    func waitForMore(timeout: Double) {
        condition.lock(); defer { condition.unlock() }
        if cursor < state.messages.count { return }
        _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
    }

    @discardableResult
    func expect(type: MessageType, timeout: Double = 10) throws -> Message {
        try expect("a \(type.rawValue) message", timeout: timeout) { $0.type == type }
    }

    /// Waits for the connection to end; returns the close code and reason.
    @discardableResult
    func waitClosed(timeout: Double = 10) throws -> (code: UInt16, reason: String) {
        try waitUntil(timeout: timeout, "close") { $0.closeStatus != nil }
        return snapshot.closeStatus!
    }

    func send(_ text: String) {
        loop.post { [self] _ in _ = self.connection?.send(text: text) }
    }

    func send(_ message: Message) { send(message.json) }

    func sendRaw(text bytes: [UInt8]) {
        loop.post { [self] _ in _ = self.connection?.send(text: bytes) }
    }

    func sendBinary(_ bytes: [UInt8]) {
        loop.post { [self] _ in _ = self.connection?.send(binary: bytes) }
    }

    func pauseReading() {
        loop.post { [self] _ in self.connection?.pauseReading() }
    }

    func close() {
        loop.post { [self] _ in self.connection?.close(code: 1000, reason: "test done") }
    }

    // MARK: Protocol helpers

    func hello(_ user: String, client: String, since: Int? = nil) {
        var m = Message(.hello)
        m.user = user
        m.client = client
        m.since = since
        send(m)
    }

    func op(_ json: String, seq: Int, base: Int) throws {
        var m = Message(.op)
        m.op = try TextOperation(json: json)
        m.seq = seq
        m.base = base
        send(m)
    }

    /// hello, then waits for the welcome.
    @discardableResult
    func join(_ user: String, client: String, since: Int? = nil) throws -> Message {
        hello(user, client: client, since: since)
        return try expect(type: .welcome)
    }
}

/// Temporary data directories, removed at teardown.
class HostTestCase: XCTestCase {
    var clients: ClientLoop!
    var servers: [ServerThread] = []

    override class func setUp() {
        super.setUp()
        signal(SIGPIPE, SIG_IGN)
    }

    override func setUpWithError() throws {
        clients = try ClientLoop()
    }

    /// Removed in tearDown, after the servers stopped (teardown blocks would run before
    /// tearDown, while a server may still write its shutdown snapshot).
    var directories: [String] = []

    override func tearDownWithError() throws {
        clients?.stop()
        for s in servers { _ = try? s.stop() }
        servers = []
        for dir in directories { try? FileManager.default.removeItem(atPath: dir) }
        directories = []
    }

    func temporaryDirectory() -> String {
        let dir = NSTemporaryDirectory() + "collab-serve-tests-\(UUID().uuidString)"
        directories.append(dir)
        return dir
    }

    func configuration(data: String? = nil) -> ServerConfiguration {
        var c = ServerConfiguration(dataDirectory: data ?? temporaryDirectory())
        c.port = 0
        c.shutdownGrace = .seconds(2)
        return c
    }

    func startServer(_ c: ServerConfiguration, prepare: (@Sendable (ServerHost) -> Void)? = nil) throws -> ServerThread {
        let s = try ServerThread(c, prepare: prepare)
        servers.append(s)
        return s
    }

    func connect(_ server: ServerThread, room: String) throws -> TestClient {
        try clients.connect(server.url + "/" + room)
    }

    /// An HTTP GET with a bounded wait, through a raw socket (no Foundation networking needed).
    func httpGet(port: Int, path: String) throws -> (status: Int, headers: String, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WaitTimeout(description: "socket failed") }
        defer { Glibc.close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connectLoopback(fd, port: port) else { throw WaitTimeout(description: "connect failed: errno \(errno)") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buf[..<n])
            // Stop once the whole body is in (Content-Length).
            let text = String(decoding: data, as: UTF8.self)
            if let split = text.range(of: "\r\n\r\n"),
               let cl = text[..<split.lowerBound].lowercased().split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
               let length = Int(cl.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
               text.utf8.count - text[..<split.upperBound].utf8.count >= length {
                break
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw WaitTimeout(description: "no HTTP response: \(text)") }
        let head = String(text[..<split.lowerBound])
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, head, String(text[split.upperBound...]))
    }
}
