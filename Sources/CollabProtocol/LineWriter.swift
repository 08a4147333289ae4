#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered output to a file descriptor with write(2), one NDJSON line at a time.
///
/// Flushing follows what the output is: a pipe, socket or terminal gets every line as soon as it
/// is complete, so tools work live in pipelines (`collab-join … | collab-ot-apply apply --follow`);
/// a regular file gets large writes. (stdio's FILE* globals are not concurrency-safe in Swift 6,
/// which is the other reason this exists.)
public final class LineWriter {
    public let fd: Int32
    public let flushEachLine: Bool
    var buffer: [UInt8] = []
    let threshold = 64 << 10
    /// Set when a write failed (e.g. EPIPE: the reader went away); later writes are dropped.
    public private(set) var failure: SystemError?

    public init(fd: Int32, flushEachLine: Bool? = nil) {
        self.fd = fd
        self.flushEachLine = flushEachLine ?? LineWriter.isInteractive(fd)
        buffer.reserveCapacity(threshold)
    }

    /// True for pipes, sockets and terminals: outputs where a reader waits for each line.
    public static func isInteractive(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return true }
        let kind = st.st_mode & S_IFMT
        return kind == S_IFIFO || kind == S_IFSOCK || kind == S_IFCHR
    }

    /// Writes bytes that end with a newline (one or more complete lines).
    public func writeLine(_ bytes: UnsafeBufferPointer<UInt8>) {
        buffer.append(contentsOf: bytes)
        if flushEachLine || buffer.count >= threshold { flush() }
    }

    public func writeLine(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { writeLine($0) }
    }

    public func writeLine(_ text: String) {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
        buffer.append(0x0A)
        if flushEachLine || buffer.count >= threshold { flush() }
    }

    /// Writes a message as one NDJSON line.
    public func write(_ message: Message) {
        var w = JSONWriter()
        message.write(to: &w)
        w.newline()
        writeLine(w.bytes)
    }

    /// Writes raw bytes (no newline added), e.g. a document's text.
    public func writeRaw(_ bytes: UnsafeBufferPointer<UInt8>) {
        if buffer.count + bytes.count > threshold { flush() }
        if bytes.count >= threshold {
            writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func writeRaw(_ text: String) {
        var text = text
        text.withUTF8 { writeRaw($0) }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBufferPointer { writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard failure == nil else { return }
        var done = 0
        while done < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                failure = SystemError(operation: "write", errno: errno)
                return
            }
            done += n
        }
    }

    deinit { flush() }
}

@inline(__always)
func systemWrite(_ fd: Int32, _ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
    write(fd, p, n)
}
