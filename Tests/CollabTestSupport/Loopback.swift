import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body` with 127.0.0.1:`port` as the `sockaddr` that bind(2), connect(2) and
/// getsockname(2) take; returns the address as it is afterwards (getsockname fills it in).
@discardableResult
public func withLoopbackAddress(port: Int, _ body: (UnsafeMutablePointer<sockaddr>, inout socklen_t) -> Void) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, &len) }
    }
    return addr
}

/// connect(2) of `fd` to 127.0.0.1:`port`; false with `errno` set on failure.
public func connectLoopback(_ fd: Int32, port: Int) -> Bool {
    var result: Int32 = -1
    var saved: Int32 = 0
    withLoopbackAddress(port: port) { sa, len in
        result = connect(fd, sa, len)
        saved = errno
    }
    errno = saved
    return result == 0
}

/// A free TCP port on 127.0.0.1 (bound with port 0, then released).
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw XCTSkip("no socket") }
    defer { close(fd) }
    var ok = false
    let addr = withLoopbackAddress(port: 0) { sa, len in
        ok = bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
    }
    guard ok else { throw XCTSkip("cannot bind a probe socket") }
    return Int(UInt16(bigEndian: addr.sin_port))
}
