import CollabRedis
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// An EventLoop running on its own thread. Everything that touches the loop or objects living
/// on it goes through `sync`, which runs a block on the loop thread and waits (bounded).
final class LoopThread: @unchecked Sendable {
    private(set) var loop: EventLoop!
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// Objects the test keeps on the loop (touched on the loop thread only).
    var objects: [String: AnyObject] = [:]

    init() {
        let thread = Thread { [self] in
            loop = try! EventLoop()
            started.signal()
            loop.run()
            objects = [:]
            finished.signal()
        }
        thread.start()
        started.wait()
    }

    /// Runs `body` on the loop thread and returns its result; fails the test after `timeout`.
    func sync<T>(timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
                 _ body: @escaping (EventLoop) -> T) -> T? {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        let job = UncheckedSendable { [self] in
            box.value = body(loop)
            done.signal()
        }
        guard loop.handle.post({ job.value() }) else {
            XCTFail("loop finished", file: file, line: line)
            return nil
        }
        guard done.wait(timeout: .now() + timeout) == .success else {
            XCTFail("loop did not run the job within \(timeout) s", file: file, line: line)
            return nil
        }
        return box.value
    }

    /// Polls `condition` on the loop thread until it holds (bounded).
    @discardableResult
    func wait(_ what: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
              _ condition: @escaping (EventLoop) -> Bool) -> Bool {
        waitUntil(what, timeout: timeout, file: file, line: line) { sync(file: file, line: line, condition) ?? false }
    }

    func stop() {
        loop.handle.stop()
        if finished.wait(timeout: .now() + 10) != .success { XCTFail("loop did not stop") }
    }
}

final class ResultBox<T>: @unchecked Sendable { var value: T? }
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A redis-server child on a free loopback port in a temporary directory.
final class RedisServer {
    let port: Int
    let dir: URL
    let extraArgs: [String]
    private(set) var process: ChildProcess?

    init(port: Int? = nil, _ extraArgs: [String] = []) throws {
        let exe = URL(fileURLWithPath: "/usr/bin/redis-server")
        guard FileManager.default.isExecutableFile(atPath: exe.path) else { throw XCTSkip("no redis-server") }
        self.port = try port ?? freePort()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        self.extraArgs = extraArgs
        try start()
    }

    func start() throws {
        let args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", dir.path, "--daemonize", "no", "--loglevel", "warning"] + extraArgs
        let p = try ChildProcess(URL(fileURLWithPath: "/usr/bin/redis-server"), args, stdin: .null, stdout: .null)
        process = p
        let port = self.port
        waitUntil("redis-server listening on \(port)") {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            return connectLoopback(fd, port: port)
        }
    }

    func kill9() {
        process?.kill9()
        process = nil
    }

    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    deinit {
        kill9()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Records what callbacks saw (loop thread only; read through LoopThread.sync).
final class Recorder {
    var results: [Result<RedisReply, RedisError>] = []
    var events: [String] = []
    var messages: [(String, [UInt8])] = []
}

extension Result where Success == RedisReply, Failure == RedisError {
    var reply: RedisReply? { if case .success(let r) = self { return r } else { return nil } }
    var error: RedisError? { if case .failure(let e) = self { return e } else { return nil } }
}
