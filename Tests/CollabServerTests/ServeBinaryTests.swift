import CollabProtocol
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Finds a built executable: `COLLAB_BIN_DIR` if set, else next to the test bundle (on Linux
/// the bundle is an executable in the build directory; on macOS a `.xctest` directory there).
enum BinaryLocator {
    static func binary(_ name: String) -> URL? {
        var dirs: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["COLLAB_BIN_DIR"], !dir.isEmpty {
            dirs.append(URL(fileURLWithPath: dir))
        }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL)
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            dirs.append(bundle.bundleURL.deletingLastPathComponent())
        }
        for dir in dirs {
            let candidate = dir.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }
}

/// A running `collab-serve` child: stderr collected by a thread, waitable.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    private let condition = NSCondition()
    private var stderrBytes: [UInt8] = []
    private var stderrEnded = false
    private let exited = DispatchSemaphore(value: 0)
    private(set) var port = 0

    init(_ binary: URL, _ arguments: [String]) throws {
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        process.environment = env
        let errPipe = Pipe()
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        try? errPipe.fileHandleForWriting.close()
        let fd = errPipe.fileHandleForReading.fileDescriptor
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                condition.lock()
                if n > 0 { stderrBytes.append(contentsOf: chunk[..<n]) } else { stderrEnded = true }
                condition.broadcast()
                condition.unlock()
                if n <= 0 { break }
            }
        }
        thread.start()
        let line = try waitForStderr(containing: "listening on ws://")
        guard let r = line.range(of: #"ws://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let p = Int(line[r].split(separator: ":").last ?? "") else {
            throw WaitTimeout(description: "no port in \(line)")
        }
        port = p
    }

    var stderr: String {
        condition.lock(); defer { condition.unlock() }
        return String(decoding: stderrBytes, as: UTF8.self)
    }

    /// The first stderr line containing `needle`.
    @discardableResult
    func waitForStderr(containing needle: String, timeout: Double = 10) throws -> String {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while true {
            let text = String(decoding: stderrBytes, as: UTF8.self)
            if let line = text.split(separator: "\n").first(where: { $0.contains(needle) }) { return String(line) }
            if stderrEnded || !condition.wait(until: deadline) {
                throw WaitTimeout(description: "collab-serve: no stderr line with \"\(needle)\"; stderr:\n\(text)")
            }
        }
    }

    func signal(_ signo: Int32) { kill(process.processIdentifier, signo) }

    /// Waits for the exit; kills the process if it takes longer than `timeout`.
    func waitForExit(timeout: Double = 10) throws -> (status: Int32, reason: Process.TerminationReason) {
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            throw WaitTimeout(description: "collab-serve did not exit within \(timeout) s; stderr:\n\(stderr)")
        }
        return (process.terminationStatus, process.terminationReason)
    }

    /// Kills the process if it still runs (test teardown).
    func terminate() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + 10)
        }
    }
}

final class ServeBinaryTests: HostTestCase {
    var children: [ServeProcess] = []

    override func tearDownWithError() throws {
        for c in children { c.terminate() }
        children = []
        try super.tearDownWithError()
    }

    func serve(_ arguments: [String]) throws -> ServeProcess {
        guard let binary = BinaryLocator.binary("collab-serve") else {
            XCTFail("collab-serve not found next to the test bundle (\(CommandLine.arguments[0])); set COLLAB_BIN_DIR")
            throw XCTSkip("no binary")
        }
        let child = try ServeProcess(binary, arguments)
        children.append(child)
        return child
    }

    func testAcknowledgedOpSurvivesSIGKILLAndSIGTERMExitsZero() throws {
        let data = temporaryDirectory()
        let first = try serve(["--port", "0", "--data", data])
        try first.waitForStderr(containing: "data directory \(data)")
        let a = try clients.connect("ws://127.0.0.1:\(first.port)/crash-test")
        try a.join("ann", client: "a")
        try a.op(#"["durable"]"#, seq: 1, base: 0)
        XCTAssertEqual(try a.expect(type: .ack).rev, 1)
        // The ack was sent after fdatasync: a crash now must not lose the op.
        first.signal(SIGKILL)
        let killed = try first.waitForExit()
        XCTAssertEqual(killed.reason, .uncaughtSignal)
        try a.waitClosed()

        let second = try serve(["--port", "0", "--data", data])
        let b = try clients.connect("ws://127.0.0.1:\(second.port)/crash-test")
        let welcome = try b.join("bob", client: "b")
        XCTAssertEqual(welcome.rev, 1)
        XCTAssertEqual(welcome.doc, "durable")
        try second.waitForStderr(containing: "room crash-test loaded at rev 1")

        second.signal(SIGTERM)
        let exit = try second.waitForExit()
        XCTAssertEqual(exit.reason, .exit)
        XCTAssertEqual(exit.status, 0, second.stderr)
        XCTAssertEqual(try b.waitClosed().code, 1001)
        XCTAssertTrue(second.stderr.contains("shutting down"), second.stderr)
        XCTAssertTrue(second.stderr.contains("room crash-test: snapshot at rev 1"), second.stderr)
    }

    func testUsageAndListenErrors() throws {
        guard let binary = BinaryLocator.binary("collab-serve") else {
            XCTFail("collab-serve not found")
            return
        }
        func run(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = binary
            p.arguments = args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let data = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        let data = temporaryDirectory()
        XCTAssertEqual(try run(["--port", "70000", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-message", "lots", "--data", data]).0, 64)
        // A port that is taken: exit 69 with a clear message.
        let holder = try serve(["--port", "0", "--data", data])
        let (status, text) = try run(["--port", "\(holder.port)", "--data", data + "/other"])
        XCTAssertEqual(status, 69, text)
        XCTAssertTrue(text.contains("cannot listen"), text)
        holder.signal(SIGTERM)
        XCTAssertEqual(try holder.waitForExit().status, 0)
    }
}
