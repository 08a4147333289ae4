import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the built `collab-ot-apply`: `COLLAB_BIN_DIR` if set, else the build directory, which
/// holds both the test bundle and the executables. On Linux the test bundle is an executable
/// (`CommandLine.arguments[0]`, also `Bundle.main`'s directory); on macOS it is a `.xctest`
/// directory inside the build directory.
enum ToolLocator {
    static func binary(_ name: String) -> URL? {
        var dirs: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["COLLAB_BIN_DIR"], !dir.isEmpty {
            dirs.append(URL(fileURLWithPath: dir))
        }
        let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        dirs.append(arg0.deletingLastPathComponent())
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

/// Bytes read from a file descriptor by a background thread until EOF, waitable with a deadline.
final class OutputCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer = Data()
    private var finished = false

    init(fd: Int32) {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                condition.lock()
                if n > 0 { buffer.append(contentsOf: chunk[..<n]) } else { finished = true }
                condition.broadcast()
                condition.unlock()
                if n <= 0 { break }
            }
        }
        thread.start()
    }

    var data: Data {
        condition.lock(); defer { condition.unlock() }
        return buffer
    }

    /// Waits until `predicate` holds for the bytes so far, EOF, or the deadline; returns whether
    /// the predicate holds.
    @discardableResult
    func wait(until deadline: Date, for predicate: (Data) -> Bool) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while !predicate(buffer) {
            if finished { return false }
            if !condition.wait(until: deadline) { return predicate(buffer) }
        }
        return true
    }

    func waitForEOF(until deadline: Date) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while !finished {
            if !condition.wait(until: deadline) { return finished }
        }
        return true
    }
}

/// Writes bytes to a file descriptor on a background thread (so a child that stops reading
/// cannot block the test), then closes it.
final class InputFeeder: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)

    init(fd: Int32, data: Data, close closeAfter: Bool = true) {
        let bytes = [UInt8](data)
        let thread = Thread { [done] in
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    break // EPIPE: the child exited early (e.g. --strict); that is its business
                }
                offset += n
            }
            if closeAfter { close(fd) }
            done.signal()
        }
        thread.start()
    }
}

struct ToolResult {
    var status: Int32
    var stdout: Data
    var stderr: Data
    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
    var outLines: [String] { out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
    var errLines: [String] { err.split(separator: "\n").map(String.init) }
}

struct ToolTimeout: Error, CustomStringConvertible {
    var arguments: [String]
    var seconds: Double
    var description: String { "\(arguments.joined(separator: " ")) did not finish within \(seconds) s (killed)" }
}

/// One running child process with piped stdin, stdout and stderr.
final class RunningTool: @unchecked Sendable {
    let process = Process()
    let arguments: [String]
    let input = Pipe()
    let output: OutputCollector
    let errors: OutputCollector
    private let exited = DispatchSemaphore(value: 0)
    private var inputFD: Int32

    /// `stdout` may be given to connect the child to another process (a pipeline).
    /// `stdoutFile` sends stdout to a file instead (a regular file, not a pipe).
    init(_ executable: URL, _ arguments: [String], stdin: Pipe? = nil, stdout: Pipe? = nil, stdoutFile: FileHandle? = nil) throws {
        self.arguments = arguments
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        process.environment = env
        let stdinPipe = stdin ?? input
        let stdoutPipe = stdout ?? Pipe()
        let stderrPipe = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = stdoutFile ?? stdoutPipe
        process.standardError = stderrPipe
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        // Our copies of the child's ends must be closed, or EOF never comes.
        try? stdoutPipe.fileHandleForWriting.close()
        try? stderrPipe.fileHandleForWriting.close()
        try? stdinPipe.fileHandleForReading.close()
        if stdoutFile != nil { try? stdoutPipe.fileHandleForReading.close() }
        output = stdout == nil && stdoutFile == nil ? OutputCollector(fd: stdoutPipe.fileHandleForReading.fileDescriptor) : OutputCollector(fd: -1)
        errors = OutputCollector(fd: stderrPipe.fileHandleForReading.fileDescriptor)
        inputFD = stdin == nil ? input.fileHandleForWriting.fileDescriptor : -1
    }

    /// Writes to the child's stdin (blocking; for small interactive writes).
    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(inputFD, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    /// Feeds `data` from a background thread and closes stdin afterwards.
    func feed(_ data: Data) -> InputFeeder {
        let fd = inputFD
        inputFD = -1
        return InputFeeder(fd: fd, data: data)
    }

    func closeInput() {
        if inputFD >= 0 { close(inputFD); inputFD = -1 }
    }

    /// Waits for the exit (killing the child after `timeout`) and for the end of its output.
    func finish(timeout: Double) throws -> ToolResult {
        let deadline = Date(timeIntervalSinceNow: timeout)
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            if exited.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
            }
            closeInput()
            throw ToolTimeout(arguments: arguments, seconds: timeout)
        }
        closeInput()
        // The pipes reach EOF once every writer (the child, and any grandchild) is gone.
        _ = output.waitForEOF(until: deadline.addingTimeInterval(2))
        _ = errors.waitForEOF(until: deadline.addingTimeInterval(2))
        return ToolResult(status: process.terminationStatus, stdout: output.data, stderr: errors.data)
    }
}

class ToolTestCase: XCTestCase {
    /// Generous per-process limit: a hang fails the test instead of the whole run.
    static let timeout: Double = 20

    override class func setUp() {
        super.setUp()
        // A child that exits early (--strict) must not kill the test runner with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
    }

    func tool(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        guard let url = ToolLocator.binary("collab-ot-apply") else {
            XCTFail("collab-ot-apply not found next to the test bundle (\(CommandLine.arguments[0])); set COLLAB_BIN_DIR", file: file, line: line)
            throw XCTSkip("no binary")
        }
        return url
    }

    /// Runs `collab-ot-apply ARGS` with `stdin` as its input; waits (bounded) for it to end.
    func run(_ arguments: [String], stdin: String = "", timeout: Double = ToolTestCase.timeout) throws -> ToolResult {
        try run(arguments, stdinBytes: Data(stdin.utf8), timeout: timeout)
    }

    func run(_ arguments: [String], stdinBytes: Data, timeout: Double = ToolTestCase.timeout) throws -> ToolResult {
        let child = try RunningTool(try tool(), arguments)
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
