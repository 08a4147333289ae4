// Small shared pieces of the transport: errors, log levels, close codes, clocks, C string storage.
import CLibWebSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An error from setting up the transport (context, listener, adoption, bad URL).
public struct TransportError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Which libwebsockets log lines reach stderr. The library logs through its own writer.
public struct LogLevel: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let errors = LogLevel(rawValue: 1 << 0)
    public static let warnings = LogLevel(rawValue: 1 << 1)
    public static let notices = LogLevel(rawValue: 1 << 2)
    public static let info = LogLevel(rawValue: 1 << 3)
    public static let debug = LogLevel(rawValue: 1 << 4)
    public static let none: LogLevel = []
    /// Errors and warnings: the default.
    public static let standard: LogLevel = [.errors, .warnings]

    /// Sets the process-wide libwebsockets log mask (it is global C state in libwebsockets).
    public static func apply(_ level: LogLevel) {
        lws_set_log_level(level.rawValue, nil)
    }
}

/// WebSocket close status codes (RFC 6455 §7.4.1) used by the transport and its callers.
public enum CloseCode {
    public static let normal: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let unsupportedData: UInt16 = 1003
    /// Reported when the peer's close frame carried no status code.
    public static let noStatus: UInt16 = 1005
    /// Reported when the connection ended without a close handshake (reset, heartbeat timeout).
    public static let abnormal: UInt16 = 1006
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
    public static let internalError: UInt16 = 1011
}

/// Idle-connection policy: when nothing (no message, no pong) has been heard from the peer for
/// `idle`, send a PING; when nothing is heard for a further `timeout`, drop the connection
/// (reported with code 1006 and reason "heartbeat timeout"). Implemented with one loop timer that
/// sweeps the connections, not with libwebsockets' validity timer: in 4.1.6 that timer sends
/// empty PINGs whose empty PONGs never reach the protocol callback, has one-second granularity,
/// and does not say why it closed a connection.
public struct Heartbeat: Sendable, Equatable, Hashable {
    public var idle: Duration
    public var timeout: Duration
    public init(idle: Duration, timeout: Duration) {
        precondition(idle > .zero && timeout > .zero, "heartbeat intervals must be positive")
        self.idle = idle
        self.timeout = timeout
    }

    var idleNanos: UInt64 { Self.nanos(idle) }
    var timeoutNanos: UInt64 { Self.nanos(timeout) }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        return UInt64(max(0, s)) &* 1_000_000_000 &+ UInt64(max(0, atto / 1_000_000_000))
    }
}

/// Monotonic clock in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Bytes of headroom libwebsockets needs in front of every payload it writes.
let lwsPre: Int = Int(collab_lws_pre)

/// C strings and other allocations that libwebsockets keeps pointers to for the life of the
/// context (vhost names, interface names, protocol tables, retry policies). Freed after the
/// context is destroyed.
final class CAllocations {
    private var blocks: [UnsafeMutableRawPointer] = []

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    func track(_ p: UnsafeMutableRawPointer) { blocks.append(p) }

    func freeAll() {
        for b in blocks { free(b) }
        blocks.removeAll()
    }

    deinit { freeAll() }
}

/// Copies `count` bytes at `base` into a new array.
@inline(__always)
func bytesArray(_ base: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let base, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: base, count: count))
}

/// close(2), unambiguous next to the methods named `close`.
func systemClose(_ fd: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(fd)
    #elseif canImport(Musl)
    _ = Musl.close(fd)
    #endif
}
