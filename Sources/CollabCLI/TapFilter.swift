import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A shell glob (fnmatch(3): `*`, `?`, `[...]`). A pattern without those is compared as it is,
/// which is most patterns and much cheaper than fnmatch per message.
public struct Glob: Sendable, Equatable {
    public let pattern: String
    let isLiteral: Bool

    public init(_ pattern: String) {
        self.pattern = pattern
        isLiteral = !pattern.utf8.contains { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "\\") }
    }

    public func matches(_ text: String) -> Bool {
        if isLiteral { return text == pattern }
        return fnmatch(pattern, text, 0) == 0
    }
}

/// Which messages `collab-tap` shows: each of `--type`, `--user`, `--room` keeps a message when
/// any of its patterns matches (none given: all); a message must pass all three. A message
/// without the field is matched as the empty string, so only a pattern such as `*` keeps it.
public struct TapFilter: Sendable, Equatable {
    public var types: [Glob] = []
    public var users: [Glob] = []
    public var rooms: [Glob] = []

    public init(types: [String] = [], users: [String] = [], rooms: [String] = []) {
        self.types = types.map(Glob.init)
        self.users = users.map(Glob.init)
        self.rooms = rooms.map(Glob.init)
    }

    public var isEmpty: Bool { types.isEmpty && users.isEmpty && rooms.isEmpty }

    public func accepts(type: MessageType, room: String?, user: String?) -> Bool {
        Self.any(types, type.rawValue) && Self.any(rooms, room ?? "") && Self.any(users, user ?? "")
    }

    static func any(_ globs: [Glob], _ text: String) -> Bool {
        globs.isEmpty || globs.contains { $0.matches(text) }
    }

    /// A `--type` pattern that can match no message type is a typo: said before anything runs.
    public static func problem(withTypes patterns: [String]) -> String? {
        for p in patterns {
            let g = Glob(p)
            if !MessageType.allCases.contains(where: { g.matches($0.rawValue) }) {
                let names = MessageType.allCases.map(\.rawValue).joined(separator: ", ")
                return "--type \(p) matches no message type (\(names))"
            }
        }
        return nil
    }
}
