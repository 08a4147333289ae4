import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The server's log: one line per event on stderr, `collab-serve: warning: text`, in the style of
/// the other tools' diagnostics (info lines carry no label). Colour only when stderr is a terminal
/// and NO_COLOR is not set (https://no-color.org). Used on the loop thread only.
public final class ServerLog {
    public enum Level: Int, Comparable, CaseIterable, Sendable, CustomStringConvertible {
        case error, warn, info, debug

        public init?(name: String) {
            switch name.lowercased() {
            case "error": self = .error
            case "warn", "warning": self = .warn
            case "info": self = .info
            case "debug": self = .debug
            default: return nil
            }
        }

        public var description: String {
            switch self {
            case .error: return "error"
            case .warn: return "warn"
            case .info: return "info"
            case .debug: return "debug"
            }
        }

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public let level: Level
    let sink: (Level, String) -> Void

    /// Lines go to `sink` (tests); nothing is formatted for levels below `level`.
    public init(level: Level, sink: @escaping (Level, String) -> Void) {
        self.level = level
        self.sink = sink
    }

    /// Lines go to stderr as `program: label: text`.
    public convenience init(level: Level, program: String = "collab-serve", fd: Int32 = STDERR_FILENO) {
        let writer = LineWriter(fd: fd, flushEachLine: true)
        let color = ServerLog.colorAllowed(fd: fd)
        self.init(level: level) { lvl, text in
            writer.writeLine(ServerLog.format(lvl, text, program: program, color: color))
        }
    }

    public static func format(_ level: Level, _ text: String, program: String, color: Bool) -> String {
        let label: String
        let code: String
        switch level {
        case .error: label = "error"; code = "31"
        case .warn: label = "warning"; code = "33"
        case .info: return "\(program): \(text)"
        case .debug: label = "debug"; code = "2"
        }
        return color ? "\(program): \u{1B}[\(code)m\(label)\u{1B}[0m: \(text)" : "\(program): \(label): \(text)"
    }

    public static func colorAllowed(fd: Int32) -> Bool {
        if let v = getenv("NO_COLOR"), v.pointee != 0 { return false }
        if let term = getenv("TERM"), String(cString: term) == "dumb" { return false }
        return isatty(fd) == 1
    }

    @inline(__always)
    public func enabled(_ l: Level) -> Bool { l <= level }

    /// Printed whatever the level: the start-up lines (address, data directory).
    public func always(_ text: String) { sink(.info, text) }

    public func error(_ text: @autoclosure () -> String) { if enabled(.error) { sink(.error, text()) } }
    public func warn(_ text: @autoclosure () -> String) { if enabled(.warn) { sink(.warn, text()) } }
    public func info(_ text: @autoclosure () -> String) { if enabled(.info) { sink(.info, text()) } }
    public func debug(_ text: @autoclosure () -> String) { if enabled(.debug) { sink(.debug, text()) } }
}
