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


extension RedisServer {
    var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }
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

/// A redis-server (COLLAB_TEST_REDIS_URL's, or one of its own) and a loop thread, with helpers to
/// open connections on the loop and run commands from the test thread. Holds no tests itself.
class RedisTestCase: XCTestCase {
    var server: RedisServer?
    var url: RedisURL!
    var runner: LoopThread!

    override func setUpWithError() throws {
        if let env = ProcessInfo.processInfo.environment["COLLAB_TEST_REDIS_URL"], !env.isEmpty {
            url = try RedisURL(parsing: env)
        } else {
            let s = try RedisServer()
            server = s
            url = s.url
        }
        runner = LoopThread()
    }

    override func tearDown() {
        runner?.stop()
        runner = nil
        server = nil
    }

    /// A connection on the loop, stored under `name`, started; waits until ready.
    func connect(_ name: String = "c", url: RedisURL? = nil, options: RedisOptions = RedisOptions()) {
        let u = url ?? self.url!
        _ = runner.sync { [runner] loop in
            let c = RedisConnection(loop: loop, url: u, options: options)
            runner!.objects[name] = c
            c.start()
        }
        runner.wait("\(name) ready") { [runner] _ in (runner!.objects[name] as! RedisConnection).isReady }
    }

    /// Runs commands on connection `name` and waits for all replies (in completion order).
    func exec(_ commands: [[String]], on name: String = "c", timeout: Double = 10) -> [Result<RedisReply, RedisError>] {
        let rec = Recorder()
        let recBox = UncheckedSendable(rec)
        _ = runner.sync { [runner] _ in
            let c = runner!.objects[name] as! RedisConnection
            for cmd in commands { c.command(cmd) { recBox.value.results.append($0) } }
        }
        runner.wait("\(commands.count) replies", timeout: timeout) { _ in recBox.value.results.count == commands.count }
        return runner.sync { _ in recBox.value.results } ?? []
    }

    func key(_ s: String) -> String { "collab-test:\(name):\(s)" }

    /// Writes a snapshot through the snapshot script on connection "c" and waits for the outcome.
    func writeSnapshot(_ keys: RoomKeys, revision: Int, message: String, keep: Int) -> Result<RoomLog.SnapshotOutcome, RedisError>? {
        let rec = UncheckedSendable(Box<Result<RoomLog.SnapshotOutcome, RedisError>>())
        _ = runner.sync { [runner] _ in
            let c = runner!.objects["c"] as! RedisConnection
            let script = (runner!.objects["snapshot"] as? RedisScript) ?? RedisScript(source: RoomLog.snapshotSource)
            runner!.objects["snapshot"] = script
            RoomLog.writeSnapshot(on: c, script: script, keys: keys, revision: revision, message: Array(message.utf8), keep: keep) {
                rec.value.value = $0
            }
        }
        runner.wait("snapshot outcome") { _ in rec.value.value != nil }
        return runner.sync { _ in rec.value.value } ?? nil
    }
}
