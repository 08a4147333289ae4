/// The colours members are shown in, and their initials.
///
/// Twelve colours, one per hue family of the Material palette, chosen by search so that each has
/// a contrast ratio of at least 3:1 against both white and black (WCAG's minimum for large text
/// and graphics: white initials on the colour, the colour as text on a light page or a dark
/// terminal) and any two differ by at least 25 in CIE76 ΔE (tests check both). The order only
/// spreads neighbours in hue apart.
public enum Palette {
    public static let colors: [String] = [
        "#c62828", // red
        "#0097a7", // cyan
        "#689f38", // light green
        "#9c27b0", // purple
        "#e65100", // orange
        "#3f51b5", // indigo
        "#827717", // olive
        "#c2185b", // pink
        "#00695c", // teal
        "#2196f3", // blue
        "#795548", // brown
        "#546e7a", // blue grey
    ]

    /// The palette index a user prefers: FNV-1a of the user id's UTF-8, so every instance and
    /// every client computes the same one (Swift's `Hasher` is seeded per process).
    public static func preferredIndex(for user: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in user.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int(hash % UInt64(colors.count))
    }

    /// The colour for `user` in a room where `taken` colours are already worn by other users:
    /// the preferred one if free, else the next free one in palette order; once all are taken,
    /// the preferred one (collisions are then unavoidable, and a stable choice is the least
    /// confusing).
    public static func color(for user: String, avoiding taken: Set<String> = []) -> String {
        let start = preferredIndex(for: user)
        for step in 0 ..< colors.count {
            let candidate = colors[(start + step) % colors.count]
            if !taken.contains(candidate) { return candidate }
        }
        return colors[start]
    }

    /// One or two capital letters for an avatar: the first letters of the first and last words
    /// of the display name, else of the user id's parts (split at spaces, dots, dashes,
    /// underscores and @), else "?".
    public static func initials(name: String?, user: String) -> String {
        func words(_ text: String) -> [Substring] {
            text.split { $0 == " " || $0 == "." || $0 == "-" || $0 == "_" || $0 == "@" || $0 == "\t" }
                .filter { $0.first.map { $0.isLetter || $0.isNumber } ?? false }
        }
        var parts = words(name ?? "")
        if parts.isEmpty { parts = words(user) }
        guard let first = parts.first?.first else { return "?" }
        var result = String(first).uppercased()
        if parts.count > 1, let last = parts.last?.first { result += String(last).uppercased() }
        return result
    }

    /// Red, green and blue of a `#rrggbb` colour.
    public static func components(_ color: String) -> (red: Int, green: Int, blue: Int)? {
        let hex = color.utf8.dropFirst()
        guard color.utf8.first == UInt8(ascii: "#"), hex.count == 6, let value = Int(String(decoding: hex, as: UTF8.self), radix: 16) else {
            return nil
        }
        return (value >> 16, (value >> 8) & 0xff, value & 0xff)
    }
}
