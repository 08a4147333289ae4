import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// Exit statuses shared by every tool (sysexits.h values where one fits).
public enum ExitStatus: Int32, Sendable {
    case ok = 0
    /// The result is wrong (a replay that did not reach the expected text).
    case failure = 1
    case usage = 64
    /// Bad input under `--strict`.
    case dataError = 65
    /// An input file named on the command line cannot be opened.
    case noInput = 66
    /// A server or Redis could not be reached.
    case unavailable = 69
    case software = 70
    case ioError = 74
    /// Refused by the server (authentication).
    case noPermission = 77
}

/// Messages for people, on stderr: `tool: line 3: invalid JSON …`. Colour only on a terminal and
/// never when NO_COLOR is set (https://no-color.org).
public final class Diagnostics {
    public let program: String
    let stderr: LineWriter
    public let useColor: Bool
    /// Problems reported so far.
    public private(set) var errorCount = 0

    public init(program: String) {
        self.program = program
        stderr = LineWriter(fd: STDERR_FILENO, flushEachLine: true)
        useColor = Diagnostics.colorAllowed(fd: STDERR_FILENO)
    }

    public static func colorAllowed(fd: Int32) -> Bool {
        if let v = getenv("NO_COLOR"), v.pointee != 0 { return false }
        if let term = getenv("TERM"), String(cString: term) == "dumb" { return false }
        return isatty(fd) == 1
    }

    public static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    public func error(_ text: String) {
        errorCount += 1
        emit(label: "error", color: "31", text)
    }

    public func warning(_ text: String) {
        emit(label: "warning", color: "33", text)
    }

    public func note(_ text: String) {
        stderr.writeLine("\(program): \(text)")
    }

    /// A transient status line (progress) that the next line overwrites; terminals only.
    public func progress(_ text: String) {
        stderr.writeRaw("\r\u{1B}[K\(program): \(text)")
        stderr.flush()
    }

    public func clearProgress() {
        stderr.writeRaw("\r\u{1B}[K")
        stderr.flush()
    }

    private func emit(label: String, color: String, _ text: String) {
        if useColor {
            stderr.writeLine("\(program): \u{1B}[\(color)m\(label)\u{1B}[0m: \(text)")
        } else {
            stderr.writeLine("\(program): \(label): \(text)")
        }
    }
}

extension ExitStatus {
    /// The status to end with when `output` (stdout) failed, nil while it is fine: 0 when its
    /// reader went away (EPIPE: `| head` is not an error), 74 otherwise, reported.
    public static func afterFailure(of output: LineWriter, _ diagnostics: Diagnostics) -> ExitStatus? {
        guard let failure = output.failure else { return nil }
        if failure.errno == EPIPE { return .ok }
        diagnostics.error("stdout: \(failure)")
        return .ioError
    }
}

/// Thrown by tools to end with a status after the message was reported.
public struct ToolExit: Error, Sendable {
    public var status: ExitStatus
    public init(_ status: ExitStatus) { self.status = status }
}
