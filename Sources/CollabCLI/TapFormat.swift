import CollabOT
import CollabPresence
import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// The human view of `collab-tap`: one line per message, `TIME ROOM TYPE USER SUMMARY`.
///
/// Lines are built as bytes, not with string interpolation: the view is the tool's hot path when
/// a capture is read through it, and this halves its cost per line.
public struct TapFormatter {
    /// User names in their member colour (24-bit ANSI); only on a terminal, never with NO_COLOR.
    public var color: Bool
    /// Seconds east of UTC at a time given in seconds since 1970 (the local zone by default;
    /// tests pin it).
    public var utcOffset: (Int) -> Int
    /// The room of messages that carry none (client-side lines on stdin: the room of the URL).
    public var defaultRoom: String?

    /// `HH:MM:SS.` of the last second formatted: consecutive messages mostly share it, and
    /// localtime_r is the dearest call of a line.
    var cachedSecond = Int.min
    var cachedClock: [UInt8] = []
    /// Columns grow to the widest room and user seen (up to a limit), so lines stay aligned
    /// without knowing the names in advance.
    var roomWidth = 1
    var userWidth = 1
    static let maxColumn = 16
    var colorCodes: [String: [UInt8]] = [:]

    public init(color: Bool, defaultRoom: String? = nil, utcOffset: @escaping (Int) -> Int = TapFormatter.localOffset) {
        self.color = color
        self.defaultRoom = defaultRoom
        self.utcOffset = utcOffset
    }

    public static func localOffset(_ seconds: Int) -> Int {
        var t = time_t(seconds)
        var parts = tm()
        guard localtime_r(&t, &parts) != nil else { return 0 }
        return Int(parts.tm_gmtoff)
    }

    /// Appends the line for `m` (with its newline) to `out`. `arrivalMillis` stands in for a
    /// message without `ts`.
    public mutating func append(_ m: Message, arrivalMillis: Int, room: String? = nil, to out: inout [UInt8]) {
        appendClock(m.ts ?? arrivalMillis, to: &out)
        out.append(0x20)
        let room = m.room ?? room ?? defaultRoom ?? "-"
        Self.appendPadded(room, width: &roomWidth, to: &out)
        out.append(0x20)
        let type = m.type.rawValue
        out.appendText(type)
        out.appendSpaces(9 - type.utf8.count)
        appendUser(m, to: &out)
        out.append(0x20)
        TapSummary.append(m, to: &out)
        // A summary may be empty (undo): no trailing blanks either way.
        while out.last == 0x20 { out.removeLast() }
        out.append(0x0A)
    }

    public mutating func line(_ m: Message, arrivalMillis: Int) -> String {
        var out: [UInt8] = []
        append(m, arrivalMillis: arrivalMillis, to: &out)
        return String(decoding: out.dropLast(), as: UTF8.self)
    }

    mutating func appendClock(_ millis: Int, to out: inout [UInt8]) {
        let (second, ms) = millis.floorDivided(by: 1000)
        if second != cachedSecond {
            cachedSecond = second
            let local = (second + utcOffset(second)).floorDivided(by: 86_400).remainder
            cachedClock = []
            cachedClock.appendTwoDigits(local / 3600)
            cachedClock.append(UInt8(ascii: ":"))
            cachedClock.appendTwoDigits(local / 60 % 60)
            cachedClock.append(UInt8(ascii: ":"))
            cachedClock.appendTwoDigits(local % 60)
            cachedClock.append(UInt8(ascii: "."))
        }
        out.append(contentsOf: cachedClock)
        out.append(0x30 + UInt8(ms / 100))
        out.appendTwoDigits(ms % 100)
    }

    static func appendPadded(_ text: String, width: inout Int, to out: inout [UInt8]) {
        let n = text.scalarCount
        if n > width { width = min(n, Self.maxColumn) }
        out.appendText(text)
        out.appendSpaces(width - n)
    }

    mutating func appendUser(_ m: Message, to out: inout [UInt8]) {
        guard let user = m.user else {
            Self.appendPadded("-", width: &userWidth, to: &out)
            return
        }
        guard color else {
            Self.appendPadded(user, width: &userWidth, to: &out)
            return
        }
        // The server stamps the member's colour; a line without one gets the colour the
        // palette would give this user, so a user looks the same in every source.
        let hex = m.color ?? Palette.color(for: user)
        let code: [UInt8]
        if let c = colorCodes[hex] {
            code = c
        } else {
            code = Palette.components(hex).map { Array("\u{1B}[38;2;\($0.red);\($0.green);\($0.blue)m".utf8) } ?? []
            if colorCodes.count < 256 { colorCodes[hex] = code }
        }
        out.append(contentsOf: code)
        out.appendText(user)
        if !code.isEmpty { out.append(contentsOf: [0x1B, UInt8(ascii: "["), UInt8(ascii: "0"), UInt8(ascii: "m")]) }
        let n = user.scalarCount
        if n > userWidth { userWidth = min(n, Self.maxColumn) }
        out.appendSpaces(userWidth - n)
    }
}

/// The short summary of a message in the human view (the last column).
public enum TapSummary {
    /// Inserted text and statuses longer than this (in characters) are cut, with "…".
    public static let textLimit = 24

    public static func summary(of m: Message) -> String {
        var out: [UInt8] = []
        append(m, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func append(_ m: Message, to out: inout [UInt8]) {
        switch m.type {
        case .op:
            if let op = m.op { appendOp(op, to: &out) } else { out.appendText("(no op)") }
            if let rev = m.rev {
                out.appendText(" rev ")
                out.appendInt(rev)
            }
        case .ack:
            out.appendText("seq ")
            out.appendOptionalInt(m.seq)
            out.appendText(" → rev ")
            out.appendOptionalInt(m.rev)
        case .presence:
            appendPresence(m, to: &out)
        case .join:
            out.appendText("joined")
            appendName(m, to: &out)
        case .leave:
            out.appendText("left")
            appendName(m, to: &out)
        case .error:
            out.appendText(m.code ?? "error")
            if let text = m.message {
                out.appendText(": ")
                out.appendText(text)
            }
            if let seq = m.seq {
                out.appendText(" (seq ")
                out.appendInt(seq)
                out.append(UInt8(ascii: ")"))
            }
            if m.fatal == true { out.appendText(" (fatal)") }
        case .hello:
            out.appendText(m.observer == true ? "observer" : "member")
            if let since = m.since {
                out.appendText(" since ")
                out.appendInt(since)
            }
        case .welcome:
            out.appendText("rev ")
            out.appendOptionalInt(m.rev)
            if let doc = m.doc {
                out.appendText(", document of ")
                out.appendInt(doc.scalarCount)
                out.appendText(" characters")
            } else if let since = m.since {
                out.appendText(", catching up from ")
                out.appendInt(since)
            }
        case .snapshot:
            out.appendText("rev ")
            out.appendOptionalInt(m.rev)
            out.appendText(", ")
            out.appendInt(m.doc?.scalarCount ?? 0)
            out.appendText(" characters")
        case .roster:
            let members = m.members ?? []
            out.appendInt(members.count)
            out.appendText(members.count == 1 ? " member" : " members")
            for (i, member) in members.prefix(8).enumerated() {
                out.appendText(i == 0 ? ": " : ", ")
                out.appendText(member.user ?? "?")
            }
            if members.count > 8 { out.appendText(", …") }
        case .event:
            appendEvent(m, to: &out)
        case .insert:
            appendInsert(m.text ?? "", at: m.pos, to: &out)
        case .delete:
            out.append(UInt8(ascii: "-"))
            out.appendOptionalInt(m.len)
            out.appendText(" @")
            out.appendOptionalInt(m.pos)
        case .replace:
            out.appendText("with ")
            out.appendInt(m.text?.scalarCount ?? 0)
            out.appendText(" characters")
        case .undo, .redo:
            break
        case .cursor:
            appendSelection(anchor: m.anchor ?? m.head ?? 0, head: m.head ?? m.anchor ?? 0, to: &out)
        case .typing:
            out.appendText(m.typing == false ? "typing off" : "typing")
        }
    }

    /// `+3 "abc" @17`, `-2 @5`, one per component. Positions are where each component acts once
    /// the ones before it have: a keep moves on, an insert moves past its text, a delete stays.
    public static func appendOp(_ op: TextOperation, to out: inout [UInt8]) {
        if op.components.isEmpty {
            out.appendText("noop")
            return
        }
        var pos = 0
        var first = true
        for c in op.components {
            switch c {
            case .retain(let n):
                pos += n
                continue
            case .insert(let s):
                if !first { out.append(0x20) }
                appendInsert(s, at: pos, to: &out)
                pos += s.scalarCount
            case .delete(let n):
                if !first { out.append(0x20) }
                out.append(UInt8(ascii: "-"))
                out.appendInt(n)
                out.appendText(" @")
                out.appendInt(pos)
            }
            first = false
        }
        if first { out.appendText("noop") } // keeps only
    }

    static func appendInsert(_ s: String, at pos: Int?, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "+"))
        out.appendInt(s.scalarCount)
        out.append(0x20)
        appendQuoted(s, to: &out)
        out.appendText(" @")
        out.appendOptionalInt(pos)
    }

    static func appendPresence(_ m: Message, to out: inout [UInt8]) {
        let start = out.count
        if let c = m.cursor {
            appendSelection(anchor: c.anchor, head: c.head, to: &out)
        }
        if m.typing == true {
            if out.count > start { out.append(0x20) }
            out.appendText("typing")
        }
        if let status = m.status, !status.isEmpty {
            if out.count > start { out.append(0x20) }
            out.appendText("status ")
            appendQuoted(status, to: &out)
        }
        if out.count == start { out.appendText("idle") }
    }

    static func appendSelection(anchor: Int, head: Int, to out: inout [UInt8]) {
        if anchor == head {
            out.appendText("cursor ")
            out.appendInt(head)
        } else {
            out.appendText("sel ")
            out.appendInt(min(anchor, head))
            out.append(UInt8(ascii: "-"))
            out.appendInt(max(anchor, head))
        }
    }

    static func appendName(_ m: Message, to out: inout [UInt8]) {
        guard let name = m.name, !name.isEmpty, name != m.user else { return }
        out.appendText(" (")
        out.appendText(name)
        out.append(UInt8(ascii: ")"))
    }

    /// The application's own fields, as compact JSON (cut like inserted text, but longer).
    static func appendEvent(_ m: Message, to out: inout [UInt8]) {
        var own = m
        // What the server stamps on every relayed event is in the other columns already.
        own.room = nil
        own.user = nil
        own.color = nil
        own.initials = nil
        own.client = nil
        own.ts = nil
        var w = JSONWriter()
        own.write(to: &w)
        // Drop `{"type":"event"` and the comma after it; keep the rest of the object.
        var body = w.bytes.dropFirst(#"{"type":"event""#.utf8.count)
        if body.first == UInt8(ascii: ",") { body = body.dropFirst() }
        if body.count <= 1 { return } // just the closing brace: nothing of its own
        let text = String(decoding: body.dropLast(), as: UTF8.self)
        let limit = textLimit * 3
        if text.scalarCount > limit {
            out.appendText(String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit - 1))))
            out.appendText("…")
        } else {
            out.appendText(text)
        }
    }

    /// `"text"` with newlines, tabs, quotes and other control characters escaped, cut at
    /// `textLimit` characters. Works on the UTF-8 bytes: raw control characters would act on
    /// the terminal, and all of them (C0, DEL, C1) are told apart by their bytes.
    static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let total = s.scalarCount
        var s = s
        s.withUTF8 { bytes in
            var scalars = 0
            var i = 0
            while i < bytes.count {
                let b = bytes[i]
                if b & 0xC0 != 0x80 {
                    if total > textLimit && scalars == textLimit - 1 {
                        out.appendText("…")
                        break
                    }
                    scalars += 1
                }
                switch b {
                case 0x0A: out.appendText("\\n")
                case 0x09: out.appendText("\\t")
                case 0x0D: out.appendText("\\r")
                case UInt8(ascii: "\""): out.appendText("\\\"")
                case UInt8(ascii: "\\"): out.appendText("\\\\")
                case 0 ..< 0x20, 0x7F:
                    appendEscape(UInt32(b), to: &out)
                case 0xC2 where i + 1 < bytes.count && (0x80 ... 0x9F).contains(bytes[i + 1]):
                    appendEscape(UInt32(bytes[i + 1]), to: &out)
                    i += 1
                default:
                    out.append(b)
                }
                i += 1
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendEscape(_ value: UInt32, to out: inout [UInt8]) {
        out.appendText("\\u00")
        for nibble in [value >> 4, value & 15] {
            out.append(UInt8(nibble < 10 ? 0x30 + nibble : 0x57 + nibble))
        }
    }
}

extension String {
    /// Unicode scalars, counted on the UTF-8 bytes (every byte but a continuation byte starts
    /// one): `unicodeScalars.count` walks the view through index validation, several times the
    /// cost, and the view counts three strings a line.
    var scalarCount: Int {
        var s = self
        return s.withUTF8 { bytes in
            var n = 0
            for b in bytes where b & 0xC0 != 0x80 { n += 1 }
            return n
        }
    }
}

extension Int {
    /// Quotient and non-negative remainder (times before 1970 still give a time of day).
    func floorDivided(by d: Int) -> (quotient: Int, remainder: Int) {
        let q = self / d, r = self % d
        return r < 0 ? (q - 1, r + d) : (q, r)
    }
}

extension Array where Element == UInt8 {
    mutating func appendText(_ s: String) {
        var s = s
        s.withUTF8 { append(contentsOf: $0) }
    }

    mutating func appendSpaces(_ n: Int) {
        if n > 0 { append(contentsOf: repeatElement(0x20, count: n)) }
    }

    mutating func appendTwoDigits(_ n: Int) {
        append(0x30 + UInt8(n / 10 % 10))
        append(0x30 + UInt8(n % 10))
    }

    mutating func appendInt(_ n: Int) {
        if n >= 0 && n < 10 {
            append(0x30 + UInt8(n))
            return
        }
        if n < 0 { append(UInt8(ascii: "-")) }
        // Digits into scratch space on the stack, last first: no String per number.
        var v = n.magnitude
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        Swift.withUnsafeMutableBytes(of: &scratch) { buf in
            var k = buf.count
            repeat {
                k -= 1
                buf[k] = UInt8(truncatingIfNeeded: 0x30 + v % 10)
                v /= 10
            } while v > 0
            append(contentsOf: buf[k...])
        }
    }

    mutating func appendOptionalInt(_ n: Int?) {
        if let n { appendInt(n) } else { append(UInt8(ascii: "?")) }
    }
}
