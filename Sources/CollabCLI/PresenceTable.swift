import CollabOT
import CollabPresence
import CollabProtocol

/// The rosters as a table for people: one block per room, one row per member with its initials
/// and name in its colour, user, status, cursor (line:column when the text is known, else the
/// offset), typing and idle time. Pure: the caller says how wide and tall the terminal is and
/// whether colour is allowed.
struct PresenceTable {
    var color: Bool
    var columns: Int
    var rows: Int

    /// The lines to show, without newlines, none wider than `columns` and at most `rows - 1` of
    /// them (the last terminal row stays free, so the cursor below the table never scrolls it).
    func render(_ feed: inout PresenceFeed, now: Int?) -> [String] {
        var lines: [[Cell]] = []
        if feed.rooms.isEmpty { lines.append([Cell("waiting for messages…", style: dim)]) }
        for i in feed.rooms.values.indices {
            if i > 0 { lines.append([]) }
            lines.append(contentsOf: block(feed.rooms.values[i], positions: feed.positions(room: i), now: now))
        }
        let limit = max(1, rows - 1)
        if lines.count > limit {
            let hidden = lines.count - (limit - 1)
            lines = Array(lines.prefix(limit - 1)) + [[Cell("… \(hidden) more line\(hidden == 1 ? "" : "s")", style: dim)]]
        }
        return lines.map { fit($0) }
    }

    // MARK: Cells

    /// Text with an optional SGR style (applied only with colour).
    struct Cell {
        var text: String
        var style: String?
        init(_ text: String, style: String? = nil) {
            self.text = text
            self.style = style
        }
    }

    var dim: String { "2" }
    var bold: String { "1" }

    func block(_ room: PresenceRoom, positions: [String: (anchor: LineColumn, head: LineColumn)], now: Int?) -> [[Cell]] {
        var title: [String] = []
        if let name = room.name { title.append("room \(Self.printable(name))") }
        if let rev = room.roster.revision { title.append("revision \(rev)") }
        let count = room.roster.count
        title.append("\(count) member\(count == 1 ? "" : "s")")
        var out: [[Cell]] = [[Cell(title.joined(separator: " · "), style: bold)]]
        guard count > 0 else { return out }

        let header = ["", "NAME", "USER", "STATUS", "CURSOR", "TYPING", "IDLE"]
        var rowsText: [[String]] = []
        var colours: [String?] = []
        for m in room.roster.members.values {
            let initials = m.initials ?? Palette.initials(name: m.name, user: m.user)
            var name = Self.printable(m.name ?? m.user)
            if m.client == room.ownClient { name += " (you)" }
            let cursor: String
            if let c = m.cursor {
                if let p = positions[m.client] {
                    cursor = c.anchor == c.head ? "\(p.head)" : "\(p.anchor)-\(p.head)"
                } else {
                    cursor = c.anchor == c.head ? "@\(c.head)" : "@\(c.anchor)-\(c.head)"
                }
            } else {
                cursor = "-"
            }
            let idle = (now.flatMap { n in m.lastActive.map { Self.duration(n - $0) } }) ?? "-"
            rowsText.append([Self.printable(initials), Self.truncate(name, 24), Self.truncate(Self.printable(m.user), 16),
                             Self.truncate(Self.printable(m.status ?? "-"), 16), cursor, m.typing ? "typing…" : "", idle])
            colours.append(m.color ?? Palette.color(for: m.user))
        }
        var widths = header.map(Self.width)
        for r in rowsText { for (i, t) in r.enumerated() { widths[i] = max(widths[i], Self.width(t)) } }
        widths[0] = max(widths[0], 2) + 2 // the badge: initials with a space either side

        out.append(header.enumerated().map { i, t in Cell(Self.pad(t, widths[i]) + (i < header.count - 1 ? " " : ""), style: dim) })
        for (r, text) in rowsText.enumerated() {
            let rgb = colours[r].flatMap(Palette.components)
            let fg = rgb.map { "38;2;\($0.red);\($0.green);\($0.blue)" }
            // White initials on the member's colour: the palette is chosen for that contrast.
            let badge = rgb.map { "1;97;48;2;\($0.red);\($0.green);\($0.blue)" }
            var cells: [Cell] = []
            for (i, t) in text.enumerated() {
                let last = i == text.count - 1
                switch i {
                case 0:
                    cells.append(Cell(" " + Self.pad(t, widths[0] - 2) + " ", style: badge))
                    cells.append(Cell(" "))
                case 1:
                    cells.append(Cell(Self.pad(t, widths[i]), style: fg))
                    cells.append(Cell(" "))
                case 5:
                    cells.append(Cell(Self.pad(t, widths[i]), style: fg.map { "1;" + $0 }))
                    cells.append(Cell(" "))
                default:
                    cells.append(Cell(last ? t : Self.pad(t, widths[i]) + " "))
                }
            }
            out.append(cells)
        }
        return out
    }

    /// Joins cells into one line no wider than `columns`, styled when colour is on.
    func fit(_ cells: [Cell]) -> String {
        var line = ""
        var left = columns
        for cell in cells where left > 0 {
            var text = cell.text
            let w = Self.width(text)
            if w > left { text = Self.truncate(text, left) }
            left -= Self.width(text)
            if color, let style = cell.style, text.contains(where: { $0 != " " }) {
                line += "\u{1B}[\(style)m\(text)\u{1B}[0m"
            } else {
                line += text
            }
        }
        // Trailing padding would only make a narrowed terminal wrap.
        while line.last == " " { line.removeLast() }
        return line
    }

    // MARK: Text

    /// Names and statuses come from other people: control characters (escape sequences above
    /// all) are shown as U+FFFD instead of reaching the terminal.
    static func printable(_ s: String) -> String {
        guard s.unicodeScalars.contains(where: isControl) else { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars { out.append(isControl(u) ? "\u{FFFD}" : u) }
        return String(out)
    }

    static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (u.value >= 0x7F && u.value < 0xA0) || u.value == 0x2028 || u.value == 0x2029
    }

    /// Terminal columns a string takes: two for wide East Asian characters and emoji, else one
    /// per character (close enough for names; a terminal may disagree on rare scalars).
    static func width(_ s: String) -> Int {
        var n = 0
        for c in s { n += width(c) }
        return n
    }

    static func width(_ c: Character) -> Int {
        guard let u = c.unicodeScalars.first, u.value >= 0x1100 else { return 1 }
        if u.properties.isEmojiPresentation { return 2 }
        switch u.value {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x20000...0x3FFFD:
            return 2
        default:
            return 1
        }
    }

    static func pad(_ s: String, _ width: Int) -> String {
        let w = Self.width(s)
        return w >= width ? s : s + String(repeating: " ", count: width - w)
    }

    /// At most `width` columns; a cut string ends with "…".
    static func truncate(_ s: String, _ width: Int) -> String {
        guard Self.width(s) > width else { return s }
        guard width > 0 else { return "" }
        var out = ""
        var used = 0
        for c in s {
            let w = Self.width(c)
            if used + w > width - 1 { break }
            out.append(c)
            used += w
        }
        return out + "…"
    }

    /// An idle time as people say it: 42s, 3m05s, 2h07m.
    static func duration(_ milliseconds: Int) -> String {
        let s = max(0, milliseconds) / 1000
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + (s % 60 < 10 ? "0" : "") + "\(s % 60)s" }
        let m = (s / 60) % 60
        return "\(s / 3600)h" + (m < 10 ? "0" : "") + "\(m)m"
    }
}
