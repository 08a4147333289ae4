import CollabCLI
import CollabProtocol
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// Running the real binaries: the approach of Tests/CollabToolTests/ToolRunner.swift (binaries are
// found next to the test bundle), plus long-running children that every test stops on teardown.

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

    var data: Data {
        condition.lock(); defer { condition.unlock() }
        return buffer
    }

    var text: String { String(decoding: data, as: UTF8.self) }

    /// Waits until `predicate` holds for the bytes so far, EOF, or the deadline.
    @discardableResult
    func wait(timeout: Double, for predicate: (Data) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while !predicate(buffer) {
            if finished { return false }
            if !condition.wait(until: deadline) { return predicate(buffer) }
        }
        return true
    }

    func waitForEOF(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while !finished {
            if !condition.wait(until: deadline) { return finished }
        }
        return true
    }
}

/// One child process with piped stdin, stdout and stderr. Killed on deinit if still running.
final class Child: @unchecked Sendable {
    let process = Process()
    let arguments: [String]
    let name: String
    let stdout: OutputCollector
    let stderr: OutputCollector
    private let exited = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var inputFD: Int32
    private var hasExited = false

    init(_ executable: URL, _ arguments: [String], stdinNull: Bool = false) throws {
        self.arguments = arguments
        name = executable.lastPathComponent
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "COLLAB_TOKEN")
        process.environment = env
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = stdinNull ? FileHandle.nullDevice : input
        process.standardOutput = output
        process.standardError = errors
        process.terminationHandler = { [exited] _ in exited.signal() }
        try process.run()
        try? output.fileHandleForWriting.close()
        try? errors.fileHandleForWriting.close()
        try? input.fileHandleForReading.close()
        stdout = OutputCollector(fd: output.fileHandleForReading.fileDescriptor)
        stderr = OutputCollector(fd: errors.fileHandleForReading.fileDescriptor)
        // Keep our write end of stdin out of every later child (fds are inherited across spawn).
        inputFD = input.fileHandleForWriting.fileDescriptor
        _ = fcntl(inputFD, F_SETFD, FD_CLOEXEC)
        if stdinNull { try? input.fileHandleForWriting.close(); inputFD = -1 }
    }

    var pid: Int32 { process.processIdentifier }

    /// Writes to the child's stdin (blocking; the child reads it).
    func send(_ text: String) {
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

    func closeInput() {
        lock.lock(); defer { lock.unlock() }
        if inputFD >= 0 { close(inputFD); inputFD = -1 }
    }

    func signal(_ signo: Int32) {
        if !exitedAlready { kill(pid, signo) }
    }

    private var exitedAlready: Bool {
        lock.lock(); defer { lock.unlock() }
        return hasExited
    }

    /// Waits (bounded) for the exit and the end of its output; nil on timeout (the child is
    /// then killed).
    func waitForExit(timeout: Double) -> Int32? {
        if !exitedAlready {
            if exited.wait(timeout: .now() + timeout) == .timedOut {
                kill(pid, SIGKILL)
                exited.wait()
                markExited()
                closeInput()
                return nil
            }
            markExited()
        }
        closeInput()
        _ = stdout.waitForEOF(timeout: 5)
        _ = stderr.waitForEOF(timeout: 5)
        return process.terminationStatus
    }

    private func markExited() {
        lock.lock(); hasExited = true; lock.unlock()
    }

    /// SIGKILL and reap (teardown, or a crash on purpose).
    func kill9() {
        guard !exitedAlready else { return }
        kill(pid, SIGKILL)
        exited.wait()
        markExited()
        closeInput()
    }

    deinit { kill9() }
}

/// Waits for `condition`, polling; fails the test on timeout. Never a fixed sleep.
@discardableResult
func waitUntil(_ what: @autoclosure () -> String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line,
               _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(5_000)
    }
    if try condition() { return true }
    XCTFail("timed out after \(timeout) s waiting for \(what())", file: file, line: line)
    return false
}

/// A free TCP port on 127.0.0.1 (bound with port 0, then released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw XCTSkip("no socket") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
        }
    }
    guard ok else { throw XCTSkip("cannot bind a probe socket") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

// MARK: - Room history from a join's stdout

/// What a `collab-join` printed, read back: the messages, and the document its history leads to.
struct JoinTranscript {
    var messages: [Message] = []

    init(_ data: Data) {
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            if let m = try? Array(line).withUnsafeBufferPointer({ try Message.decode($0) }) { messages.append(m) }
        }
    }

    func count(_ type: MessageType) -> Int { messages.filter { $0.type == type }.count }

    /// The document at the end of the history (nil if a revision is out of order).
    var document: (text: String, rev: Int)? {
        var doc = ""
        var rev = -1
        for m in messages {
            switch m.type {
            case .welcome:
                if let text = m.doc { doc = text; rev = m.rev ?? 0 }
                else if let since = m.since, since != rev { return nil }
            case .op:
                guard let r = m.rev, let op = m.op else { continue }
                if r <= rev { continue }
                guard r == rev + 1, let next = try? op.apply(to: doc) else { return nil }
                doc = next
                rev = r
            default:
                continue
            }
        }
        return rev < 0 ? nil : (doc, rev)
    }
}

/// Runs a join's stdout through `collab-ot-apply apply`'s logic (the library, in-process, with
/// --strict: a revision gap or repeat fails) and returns the document.
func applyThroughOTApply(_ data: Data) throws -> String {
    let dir = FileManager.default.temporaryDirectory
    let inURL = dir.appendingPathComponent("collab-join-test-\(UUID().uuidString).ndjson")
    let outURL = dir.appendingPathComponent("collab-join-test-\(UUID().uuidString).txt")
    defer {
        try? FileManager.default.removeItem(at: inURL)
        try? FileManager.default.removeItem(at: outURL)
    }
    try data.write(to: inURL)
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    let inFD = open(inURL.path, O_RDONLY)
    let outFD = open(outURL.path, O_WRONLY | O_TRUNC)
    defer { close(inFD); close(outFD) }
    var tool = OTApplyTool(diagnostics: Diagnostics(program: "apply-in-test"), output: LineWriter(fd: outFD))
    tool.inputFD = inFD
    tool.strict = true
    try tool.apply(document: "", follow: false)
    tool.output.flush()
    return try String(contentsOf: outURL, encoding: .utf8)
}

extension Data {
    func occurrences(of needle: String) -> Int {
        let n = Data(needle.utf8)
        var count = 0
        var start = startIndex
        while let r = range(of: n, in: start ..< endIndex) {
            count += 1
            start = r.upperBound
        }
        return count
    }
}
