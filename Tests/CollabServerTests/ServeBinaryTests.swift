import CollabProtocol
import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A running `collab-serve` on a port of its choosing, read from its log.
final class ServeProcess {
    let child: ChildProcess
    let port: Int

    init(_ binary: URL, _ arguments: [String]) throws {
        child = try ChildProcess(binary, arguments, stdin: .null, stdout: .null)
        let line = try Self.waitForStderr(child, containing: "listening on ws://")
        guard let r = line.range(of: #"ws://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let p = Int(line[r].split(separator: ":").last ?? "") else {
            throw WaitTimeout(description: "no port in \(line)")
        }
        port = p
    }

    var stderr: String { child.stderr.text }

    /// The first stderr line containing `needle`.
    @discardableResult
    func waitForStderr(containing needle: String, timeout: Double = 10) throws -> String {
        try Self.waitForStderr(child, containing: needle, timeout: timeout)
    }

    private static func waitForStderr(_ child: ChildProcess, containing needle: String, timeout: Double = 10) throws -> String {
        guard let line = child.stderr.firstLine(containing: needle, timeout: timeout) else {
            throw WaitTimeout(description: "collab-serve: no stderr line with \"\(needle)\"; stderr:\n\(child.stderr.text)")
        }
        return line
    }

    func signal(_ signo: Int32) { child.signal(signo) }

    /// Waits for the exit; kills the process if it takes longer than `timeout`.
    func waitForExit(timeout: Double = 10) throws -> (status: Int32, reason: Process.TerminationReason) {
        guard let status = child.waitForExit(timeout: timeout) else {
            throw WaitTimeout(description: "collab-serve did not exit within \(timeout) s; stderr:\n\(stderr)")
        }
        return (status, child.process.terminationReason)
    }

    /// Kills the process if it still runs (test teardown).
    func terminate() { child.kill9() }
}

final class ServeBinaryTests: HostTestCase {
    var children: [ServeProcess] = []

    override func tearDownWithError() throws {
        for c in children { c.terminate() }
        children = []
        try super.tearDownWithError()
    }

    func serve(_ arguments: [String]) throws -> ServeProcess {
        let child = try ServeProcess(try BinaryLocator.require("collab-serve"), arguments)
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
        let binary = try BinaryLocator.require("collab-serve")
        func run(_ args: [String]) throws -> (Int32, String) {
            // Bounded: a child that hangs instead of exiting fails this test, not the run.
            let r = try ChildProcess(binary, args, stdin: .null, stdout: .null).finish(timeout: 20)
            return (r.status, r.err)
        }
        let data = temporaryDirectory()
        XCTAssertEqual(try run(["--port", "70000", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-message", "lots", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-rate", "-1", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-burst", "0", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-rate", "0", "--max-burst", "5", "--data", data]).0, 64)
        XCTAssertEqual(try run(["--max-conns-per-ip", "-1", "--data", data]).0, 64)
        // A port that is taken: exit 69 with a clear message.
        let holder = try serve(["--port", "0", "--data", data])
        let (status, text) = try run(["--port", "\(holder.port)", "--data", data + "/other"])
        XCTAssertEqual(status, 69, text)
        XCTAssertTrue(text.contains("cannot listen"), text)
        holder.signal(SIGTERM)
        XCTAssertEqual(try holder.waitForExit().status, 0)
    }
}
