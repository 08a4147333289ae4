import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Base class of tests that run the tools' binaries: spawns them, and kills every process it
/// started on teardown.
open class ProcessTestCase: XCTestCase {
    private var children: [ChildProcess] = []

    override open class func setUp() {
        super.setUp()
        // A child that exits early must not kill the test runner with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    override open func tearDown() {
        for c in children { c.kill9() }
        children = []
        super.tearDown()
    }

    /// A fresh temporary directory, removed after the test.
    public func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("collab-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Starts the built binary `name`; a developer's COLLAB_TOKEN would make every join
    /// authenticate, so it is not passed on.
    public func spawn(_ name: String, _ arguments: [String], stdin: ChildProcess.Input = .pipe,
                      stdout: ChildProcess.Output = .pipe) throws -> ChildProcess {
        let c = try ChildProcess(try BinaryLocator.require(name), arguments, stdin: stdin, stdout: stdout, unsetting: ["COLLAB_TOKEN"])
        children.append(c)
        return c
    }

    /// Starts `collab-serve` on `port` (0: a free one) with `data`, and waits until it listens.
    public func startServer(data: URL?, port: Int = 0, extra: [String] = [],
                            file: StaticString = #filePath, line: UInt = #line) throws -> ServerProcess {
        try ServerProcess.start(data: data, port: port, extra: extra, spawn: { try spawn($0, $1, stdin: .null) },
                                file: file, line: line)
    }
}
