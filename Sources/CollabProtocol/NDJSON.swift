#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A problem with one input line. Tools report it on stderr as `line N: …` and go on with the
/// next line, or stop with status 65 under `--strict`.
public struct LineError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
    public var description: String { "line \(line): \(reason)" }
}

/// Splits a byte stream into NDJSON lines, push style, so it serves a blocking `read` loop and an
/// event loop's readable callback alike.
///
/// A line longer than `maxLineLength` is reported as an error and its bytes are dropped as they
/// arrive, up to the next newline: memory stays bounded by the limit whatever the input.
/// A `\r` before the newline is dropped; lines holding only whitespace are skipped.
public struct LineSplitter: Sendable {
    public static let defaultMaxLineLength = 1 << 20

    public let maxLineLength: Int
    /// Bytes of an incomplete line carried over from the previous chunk.
    var pending: [UInt8] = []
    /// Discarding the rest of an overlong line.
    var skipping = false
    /// Number of the line being read (1-based).
    public private(set) var lineNumber = 1

    public init(maxLineLength: Int = LineSplitter.defaultMaxLineLength) {
        self.maxLineLength = maxLineLength
    }

    /// Feeds a chunk; calls `line` for each complete line (number, bytes without the newline) and
    /// `error` for each overlong one. Bytes passed to `line` are valid only during the call.
    public mutating func feed(
        _ chunk: UnsafeBufferPointer<UInt8>,
        line: (Int, UnsafeBufferPointer<UInt8>) throws -> Void,
        error: (LineError) throws -> Void
    ) rethrows {
        var start = 0
        let n = chunk.count
        while start < n {
            // memchr is vectorized; a byte loop here would dominate the cost of short lines.
            let rest = UnsafeRawPointer(chunk.baseAddress! + start)
            guard let nl = memchr(rest, 0x0A, n - start) else {
                try append(UnsafeBufferPointer(rebasing: chunk[start...]), error: error)
                return
            }
            let end = start + (UnsafeRawPointer(nl) - rest)
            if skipping {
                skipping = false
            } else if pending.isEmpty {
                if end - start > maxLineLength {
                    try error(overlong())
                } else {
                    try emit(UnsafeBufferPointer(rebasing: chunk[start ..< end]), line)
                }
            } else {
                if pending.count + (end - start) > maxLineLength {
                    try error(overlong())
                } else {
                    pending.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[start ..< end]))
                    try pending.withUnsafeBufferPointer { try emit($0, line) }
                }
                pending.removeAll(keepingCapacity: pending.capacity <= 64 << 10)
            }
            lineNumber += 1
            start = end + 1
        }
    }

    /// At end of input: a last line without a newline still counts.
    public mutating func finish(
        line: (Int, UnsafeBufferPointer<UInt8>) throws -> Void,
        error: (LineError) throws -> Void
    ) rethrows {
        if skipping {
            skipping = false
        } else if !pending.isEmpty {
            try pending.withUnsafeBufferPointer { try emit($0, line) }
        }
        pending = []
    }

    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>, error: (LineError) throws -> Void) rethrows {
        guard !skipping else { return }
        if pending.count + bytes.count > maxLineLength {
            try error(overlong())
            pending = []
            skipping = true
            return
        }
        pending.append(contentsOf: bytes)
    }

    private func overlong() -> LineError {
        LineError(line: lineNumber, reason: "line longer than the limit of \(maxLineLength) bytes")
    }

    private func emit(_ bytes: UnsafeBufferPointer<UInt8>, _ line: (Int, UnsafeBufferPointer<UInt8>) throws -> Void) rethrows {
        var count = bytes.count
        if count > 0, bytes[count - 1] == 0x0D { count -= 1 }
        var blank = true
        for b in UnsafeBufferPointer(rebasing: bytes[..<count]) where b != 0x20 && b != 0x09 {
            blank = false
            break
        }
        if blank { return }
        try line(lineNumber, UnsafeBufferPointer(rebasing: bytes[..<count]))
    }
}

/// Reads NDJSON lines from a file descriptor until end of input (blocking), for the filter tools.
public struct LineReader {
    public let fd: Int32
    var splitter: LineSplitter
    var buffer: [UInt8]

    public init(fd: Int32 = STDIN_FILENO, maxLineLength: Int = LineSplitter.defaultMaxLineLength) {
        self.fd = fd
        splitter = LineSplitter(maxLineLength: maxLineLength)
        buffer = [UInt8](repeating: 0, count: 256 << 10)
    }

    /// Calls `line` for each line and `error` for each overlong one, until EOF. A thrown error
    /// stops reading and propagates.
    public mutating func forEachLine(
        _ line: (Int, UnsafeBufferPointer<UInt8>) throws -> Void,
        error: (LineError) throws -> Void
    ) throws {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(operation: "read", errno: errno)
            }
            if n == 0 { break }
            try buffer.withUnsafeBufferPointer { buf in
                try splitter.feed(UnsafeBufferPointer(rebasing: buf[..<n]), line: line, error: error)
            }
        }
        try splitter.finish(line: line, error: error)
    }
}

/// A failed system call.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }
    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}
