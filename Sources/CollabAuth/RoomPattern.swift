/// A room name or a glob over room names, as listed in a token's `rooms` claim.
///
/// Room names are paths (`team/notes`), so the globs are path globs: `*` matches any run of
/// characters within one segment (not `/`), `**` any run including `/`, `?` one character other
/// than `/`. So `docs/*` opens `docs/a` but neither `docs/a/b` nor `docs2/a`, and `**` opens every
/// room. `[...]` classes are not supported: a room name has no use for them, and a token
/// minted for `a[1]` should mean exactly that name.
public struct RoomPattern: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let parts: [Part]

    enum Part: Hashable {
        case literal([UInt8])
        case one        // ?
        case segment    // *
        case any        // **
    }

    public init(_ pattern: String) {
        self.pattern = pattern
        var parts: [Part] = []
        var literal: [UInt8] = []
        let bytes = Array(pattern.utf8)
        var i = 0
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)); literal = [] }
        }
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "*"):
                flush()
                if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "*") {
                    while i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "*") { i += 1 }
                    // `a/**` + `*`: one `any` is as good as any run of stars.
                    if parts.last != .any { parts.append(.any) }
                } else if parts.last != .segment && parts.last != .any {
                    parts.append(.segment)
                }
            case UInt8(ascii: "?"):
                flush()
                parts.append(.one)
            default:
                literal.append(bytes[i])
            }
            i += 1
        }
        flush()
        self.parts = parts
    }

    public var description: String { pattern }

    /// Whether the room named `name` matches. Tracks the set of positions of `name` that the
    /// pattern so far can end at: O(parts × length) whatever the stars, so a token listing odd
    /// patterns cannot make a join slow.
    public func matches(_ name: String) -> Bool {
        let s = Array(name.utf8)
        let slash = UInt8(ascii: "/")
        var reach = [Bool](repeating: false, count: s.count + 1)
        reach[0] = true
        for part in parts {
            var next = [Bool](repeating: false, count: s.count + 1)
            var any = false
            switch part {
            case .literal(let l):
                for p in 0...s.count where reach[p] && s.count - p >= l.count && s[p..<(p + l.count)].elementsEqual(l) {
                    next[p + l.count] = true
                    any = true
                }
            case .one:
                for p in 0..<s.count where reach[p] && s[p] != slash {
                    next[p + 1] = true
                    any = true
                }
            case .segment, .any:
                // Sweep left to right: a position is reachable if the star started at or before
                // it without crossing a `/` (a `**` crosses them).
                var open = false
                for p in 0...s.count {
                    if reach[p] { open = true }
                    if open { next[p] = true; any = true }
                    if p < s.count && part == .segment && s[p] == slash { open = false }
                }
            }
            guard any else { return false }
            reach = next
        }
        return reach[s.count]
    }
}
