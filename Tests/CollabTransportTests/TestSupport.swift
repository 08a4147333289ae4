import CollabTestSupport
import CollabTransport
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Runs `loop` on the current thread until something calls `stop()`, failing the test if that
/// takes longer than `timeout` (the loop is stopped then, so every test ends).
func runLoop(_ loop: EventLoop, timeout: Duration = .seconds(10),
             file: StaticString = #filePath, line: UInt = #line) {
    var timedOut = false
    loop.schedule(after: timeout) {
        timedOut = true
        loop.stop()
    }
    loop.run()
    XCTAssertFalse(timedOut, "loop did not finish within \(timeout)", file: file, line: line)
    XCTAssertTrue(loop.isFinished, file: file, line: line)
}

/// A blocking TCP connection to 127.0.0.1:port (the kernel completes the handshake from the
/// listen backlog, so this works before the loop runs).
func tcpConnect(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TransportError("socket failed") }
    if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    guard connectLoopback(fd, port: port) else {
        close(fd)
        throw TransportError("connect failed: errno \(errno)")
    }
    return fd
}

func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
        if n <= 0 { return }
        off += n
    }
}

/// A WebSocket upgrade request as a raw client would send it.
func upgradeRequest(path: String, extraHeaders: String = "") -> String {
    "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + extraHeaders + "\r\n"
}

/// Reads everything `fd` delivers until EOF, inside the loop (adopted raw descriptor).
final class RawReader {
    var data: [UInt8] = []
    var ended = false
    let raw: RawDescriptor

    init(loop: EventLoop, fd: Int32, onEnd: @escaping (RawReader) -> Void) throws {
        raw = try loop.adopt(fd: fd)
        raw.onReadable = { [unowned self] r in
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = buf.withUnsafeMutableBytes { read(r.fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                self.data.append(contentsOf: buf[0..<n])
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                r.close()
            }
        }
        raw.onClose = { [unowned self] _ in
            self.ended = true
            onEnd(self)
        }
    }

    var text: String { String(decoding: data, as: UTF8.self) }
}

/// A counter other threads may bump.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
    func add(_ n: Int = 1) { value.add(n, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}
