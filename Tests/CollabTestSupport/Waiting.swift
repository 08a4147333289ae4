import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A test step that did not happen within its deadline.
public struct WaitTimeout: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Waits for `condition`, polling; fails the test on timeout. For state with no notification to
/// wait on (another process's output, a file); never a fixed sleep.
@discardableResult
public func waitUntil(_ what: @autoclosure () -> String, timeout: Double = 15, file: StaticString = #filePath, line: UInt = #line,
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
