import CollabTestSupport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

class ToolTestCase: XCTestCase {
    /// Generous per-process limit: a hang fails the test instead of the whole run.
    static let timeout: Double = 20

    override class func setUp() {
        super.setUp()
        // A child that exits early (--strict) must not kill the test runner with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    func tool(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        try BinaryLocator.require("collab-ot-apply", file: file, line: line)
    }

    /// Runs `collab-ot-apply ARGS` with `stdin` as its input; waits (bounded) for it to end.
    func run(_ arguments: [String], stdin: String = "", timeout: Double = ToolTestCase.timeout) throws -> ProcessResult {
        try run(arguments, stdinBytes: Data(stdin.utf8), timeout: timeout)
    }

    func run(_ arguments: [String], stdinBytes: Data, timeout: Double = ToolTestCase.timeout) throws -> ProcessResult {
        let child = try ChildProcess(try tool(), arguments)
        let feeder = child.feed(stdinBytes)
        let result = try child.finish(timeout: timeout)
        _ = feeder.done.wait(timeout: .now() + 5)
        return result
    }

    /// A fresh temporary directory, removed after the test.
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-tool-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}
