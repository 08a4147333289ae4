import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds a built executable: `COLLAB_BIN_DIR` if set, else the build directory, which holds both
/// the test bundle and the executables. On Linux the test bundle is an executable
/// (`CommandLine.arguments[0]`, also `Bundle.main`'s directory); on macOS it is a `.xctest`
/// directory inside the build directory.
public enum BinaryLocator {
    public static func binary(_ name: String) -> URL? {
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

    /// The binary, or a failed test: a missing binary is a broken build, not a reason to skip.
    public static func require(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        guard let url = binary(name) else {
            XCTFail("\(name) not found next to the test bundle (\(CommandLine.arguments[0])); set COLLAB_BIN_DIR",
                    file: file, line: line)
            throw XCTSkip("no \(name)")
        }
        return url
    }
}

/// Bytes read from a file descriptor by a background thread until EOF, waitable with a deadline.
public final class OutputCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer = Data()
    private var finished = false

    /// `fd` < 0: nothing to read (the stream goes elsewhere), already at EOF.
    public init(fd: Int32) {
        guard fd >= 0 else {
            finished = true
            return
        }
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

    public var data: Data {
        condition.lock(); defer { condition.unlock() }
        return buffer
    }

    public var text: String { String(decoding: data, as: UTF8.self) }

    /// Waits until `predicate` holds for the bytes so far, EOF, or the deadline; returns whether
    /// the predicate holds.
    @discardableResult
    public func wait(until deadline: Date, for predicate: (Data) -> Bool) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while !predicate(buffer) {
            if finished { return false }
            if !condition.wait(until: deadline) { return predicate(buffer) }
        }
        return true
    }

    @discardableResult
    public func wait(timeout: Double, for predicate: (Data) -> Bool) -> Bool {
        wait(until: Date(timeIntervalSinceNow: timeout), for: predicate)
    }

    /// The first line containing `needle`, waiting for it (bounded); nil if it did not come
    /// before EOF or the timeout.
    public func firstLine(containing needle: String, timeout: Double) -> String? {
        var found: String?
        wait(timeout: timeout) { data in
            found = String(decoding: data, as: UTF8.self).split(separator: "\n")
                .first { $0.contains(needle) }.map(String.init)
            return found != nil
        }
        return found
    }

    public func waitForEOF(until deadline: Date) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while !finished {
            if !condition.wait(until: deadline) { return finished }
        }
        return true
    }

    public func waitForEOF(timeout: Double) -> Bool {
        waitForEOF(until: Date(timeIntervalSinceNow: timeout))
    }
}

/// Writes bytes to a file descriptor on a background thread (so a child that stops reading
/// cannot block the test), then closes it.
public final class InputFeeder: @unchecked Sendable {
    public let done = DispatchSemaphore(value: 0)

    public init(fd: Int32, data: Data, close closeAfter: Bool = true) {
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

/// How a child that ran to the end finished, and everything it wrote.
public struct ProcessResult {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var out: String { String(decoding: stdout, as: UTF8.self) }
    public var err: String { String(decoding: stderr, as: UTF8.self) }
    public var outLines: [String] { out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
    public var errLines: [String] { err.split(separator: "\n").map(String.init) }
}

public struct ProcessTimeout: Error, CustomStringConvertible {
    public var arguments: [String]
    public var seconds: Double
    public var description: String { "\(arguments.joined(separator: " ")) did not finish within \(seconds) s (killed)" }
}

/// One child process of a test. stderr is always collected; stdin and stdout are pipes the test
/// holds unless told otherwise. Every wait is bounded and a child that outlives it is killed, so
/// a hang fails one test instead of the run; a child still running on deinit is killed too.
public final class ChildProcess: @unchecked Sendable {
    public enum Input {
        /// A pipe the test writes (`send`, `feed`) and closes (`closeInput`).
        case pipe
        case null
        /// The read end of a pipe another child writes (a pipeline).
        case from(Pipe)
        /// A regular file: input is not a pipe, as for a redirect.
        case file(FileHandle)
    }

    public enum Output {
        /// A pipe read into `stdout`.
        case pipe
        case null
        /// The write end of a pipe another child reads (a pipeline).
        case into(Pipe)
        /// A regular file: output is not a pipe, as for a redirect.
        case file(FileHandle)
    }

    public let process = Process()
    public let arguments: [String]
    public let name: String
    public let stdout: OutputCollector
    public let stderr: OutputCollector
    private let exited = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var inputFD: Int32 = -1
    private var hasExited = false

    /// `unsetting` names environment variables the child must not inherit (a developer's own
    /// settings that would change what the test sees).
    public init(_ executable: URL, _ arguments: [String], stdin: Input = .pipe, stdout: Output = .pipe,
                unsetting: [String] = []) throws {
        self.arguments = arguments
        name = executable.lastPathComponent
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        for key in unsetting { env.removeValue(forKey: key) }
        process.environment = env

        let input: Pipe? = if case .pipe = stdin { Pipe() } else { nil }
        switch stdin {
        case .pipe: process.standardInput = input
        case .null: process.standardInput = FileHandle.nullDevice
        case .from(let pipe): process.standardInput = pipe
        case .file(let handle): process.standardInput = handle
        }
        let output: Pipe? = if case .pipe = stdout { Pipe() } else { nil }
        switch stdout {
        case .pipe: process.standardOutput = output
        case .null: process.standardOutput = FileHandle.nullDevice
        case .into(let pipe): process.standardOutput = pipe
        case .file(let handle): process.standardOutput = handle
        }
        let errors = Pipe()
        process.standardError = errors
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()

        // Our copies of the child's ends must be closed, or EOF never comes.
        try? errors.fileHandleForWriting.close()
        switch stdout {
        case .pipe: try? output?.fileHandleForWriting.close()
        case .into(let pipe): try? pipe.fileHandleForWriting.close()
        case .null, .file: break
        }
        switch stdin {
        case .pipe: try? input?.fileHandleForReading.close()
        case .from(let pipe): try? pipe.fileHandleForReading.close()
        case .null, .file: break
        }
        self.stdout = OutputCollector(fd: output?.fileHandleForReading.fileDescriptor ?? -1)
        self.stderr = OutputCollector(fd: errors.fileHandleForReading.fileDescriptor)
        if let input {
            // Keep our write end of stdin out of every later child (fds are inherited across spawn).
            inputFD = input.fileHandleForWriting.fileDescriptor
            _ = fcntl(inputFD, F_SETFD, FD_CLOEXEC)
        }
    }

    public var pid: Int32 { process.processIdentifier }

    /// Writes to the child's stdin (blocking; for small interactive writes the child reads).
    public func send(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        guard inputFD >= 0 else { return }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(inputFD, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }

    /// Feeds `data` from a background thread and closes stdin afterwards.
    public func feed(_ data: Data) -> InputFeeder {
        lock.lock()
        let fd = inputFD
        inputFD = -1
        lock.unlock()
        return InputFeeder(fd: fd, data: data)
    }

    public func closeInput() {
        lock.lock(); defer { lock.unlock() }
        if inputFD >= 0 { close(inputFD); inputFD = -1 }
    }

    /// Signals the child unless it has been reaped (its pid may belong to someone else by then).
    public func signal(_ signo: Int32) {
        if !exitedAlready { kill(pid, signo) }
    }

    private var exitedAlready: Bool {
        lock.lock(); defer { lock.unlock() }
        return hasExited
    }

    private func markExited() {
        lock.lock(); hasExited = true; lock.unlock()
    }

    /// Waits up to `timeout` for the exit; past it, SIGTERM first if `termGrace` is given (the
    /// child may flush and clean up), then SIGKILL. Returns whether the child exited by itself.
    private func awaitExit(timeout: Double, termGrace: Double?) -> Bool {
        if exitedAlready { return true }
        if exited.wait(timeout: .now() + timeout) == .success {
            markExited()
            return true
        }
        if let termGrace {
            kill(pid, SIGTERM)
            if exited.wait(timeout: .now() + termGrace) == .success {
                markExited()
                closeInput()
                return false
            }
        }
        kill(pid, SIGKILL)
        exited.wait()
        markExited()
        closeInput()
        return false
    }

    /// Waits (bounded) for the exit and the end of its output; nil on timeout (the child is
    /// then killed).
    public func waitForExit(timeout: Double) -> Int32? {
        guard awaitExit(timeout: timeout, termGrace: nil) else { return nil }
        closeInput()
        _ = stdout.waitForEOF(timeout: 5)
        _ = stderr.waitForEOF(timeout: 5)
        return process.terminationStatus
    }

    /// Waits for the exit (SIGTERM, then SIGKILL, after `timeout`) and for the end of its
    /// output; a timeout throws.
    public func finish(timeout: Double) throws -> ProcessResult {
        let deadline = Date(timeIntervalSinceNow: timeout)
        guard awaitExit(timeout: timeout, termGrace: 2) else {
            throw ProcessTimeout(arguments: arguments, seconds: timeout)
        }
        closeInput()
        // The pipes reach EOF once every writer (the child, and any grandchild) is gone.
        _ = stdout.waitForEOF(until: deadline.addingTimeInterval(2))
        _ = stderr.waitForEOF(until: deadline.addingTimeInterval(2))
        return ProcessResult(status: process.terminationStatus, stdout: stdout.data, stderr: stderr.data)
    }

    /// SIGKILL and reap (teardown, or a crash on purpose).
    public func kill9() {
        guard !exitedAlready else { return }
        kill(pid, SIGKILL)
        exited.wait()
        markExited()
        closeInput()
    }

    deinit { kill9() }
}
