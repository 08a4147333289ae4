/// Room names come from URL paths (`ws://host/docs/a` is room `docs/a`) and name directories on
/// disk and keys in Redis, so they are restricted to what is safe in all three: segments of
/// letters, digits and `. _ ~ -`, separated by single `/`, at most 128 bytes, no `.` or `..`
/// segment.
public enum RoomName {
    public static let maxLength = 128

    /// Returns the room name for a URL path, or a reason it is not one.
    public static func validate(path: String) -> Result<String, RoomNameError> {
        var name = Substring(path)
        if name.hasPrefix("/") { name = name.dropFirst() }
        guard !name.isEmpty else { return .failure(.init("the URL path must name a room, as in ws://host:port/ROOM")) }
        guard name.utf8.count <= maxLength else {
            return .failure(.init("room name longer than \(maxLength) bytes"))
        }
        for segment in name.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { return .failure(.init("room name has an empty segment (// or a trailing /)")) }
            guard segment != "." && segment != ".." else { return .failure(.init("room name segments cannot be . or ..")) }
            for b in segment.utf8 where !isAllowed(b) {
                let shown = b >= 0x20 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte \(b)"
                return .failure(.init("room name has a character that is not allowed (\(shown)); use letters, digits, . _ ~ - and /"))
            }
        }
        return .success(String(name))
    }

    static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a") ... UInt8(ascii: "z"), UInt8(ascii: "A") ... UInt8(ascii: "Z"),
             UInt8(ascii: "0") ... UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
             UInt8(ascii: "~"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// A file name for the room: `/` becomes `%2F` (names never contain `%`), so every room is one
    /// directory entry and no name can escape the data directory.
    public static func fileName(_ room: String) -> String {
        room.replacingOccurrences(of: "/", with: "%2F")
    }

    public static func roomName(fileName: String) -> String {
        fileName.replacingOccurrences(of: "%2F", with: "/")
    }
}

public struct RoomNameError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}
