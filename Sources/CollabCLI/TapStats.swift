import CollabProtocol

/// `collab-tap --stats`: per room, what arrived in each interval (normally a second) and over the
/// whole run. Times are given by the caller (microseconds since 1970, the wall clock, since op
/// `ts` values are wall-clock milliseconds), so tests run on a clock of their own.
public struct TapStats {
    /// One room over one interval, or over the whole run (`final`).
    public struct Report: Equatable, Sendable {
        public var room: String
        /// When the interval ended (milliseconds since 1970).
        public var ts: Int
        /// Length of the interval the rates are over.
        public var seconds: Double
        public var messages = 0
        public var bytes = 0
        public var ops = 0
        /// Messages by type, most frequent first (ties by name).
        public var byType: [(type: String, count: Int)] = []
        /// Distinct users of the room's messages in the interval.
        public var users = 0
        /// From an op's `ts` to its arrival here, in milliseconds; nil without such ops.
        public var delayP50: Double?
        public var delayP99: Double?
        public var final = false

        public init(room: String, ts: Int, seconds: Double) {
            self.room = room
            self.ts = ts
            self.seconds = seconds
        }

        public func rate(_ count: Int) -> Double { seconds > 0 ? Double(count) / seconds : 0 }

        public static func == (a: Report, b: Report) -> Bool {
            a.room == b.room && a.ts == b.ts && a.seconds == b.seconds && a.messages == b.messages && a.bytes == b.bytes
                && a.ops == b.ops && a.byType.map(\.type) == b.byType.map(\.type) && a.byType.map(\.count) == b.byType.map(\.count)
                && a.users == b.users && a.delayP50 == b.delayP50 && a.delayP99 == b.delayP99 && a.final == b.final
        }
    }

    struct Counts {
        var messages = 0
        var bytes = 0
        /// By type, in order of appearance: a room's traffic has few types, and searching a
        /// handful of pairs costs less than hashing into a dictionary per message.
        var byType: [(type: MessageType, count: Int)] = []

        mutating func add(_ type: MessageType, bytes n: Int) {
            messages += 1
            bytes += n
            if let i = byType.firstIndex(where: { $0.type == type }) {
                byType[i].count += 1
            } else {
                byType.append((type, 1))
            }
        }

        mutating func merge(_ other: Counts) {
            messages += other.messages
            bytes += other.bytes
            for (type, count) in other.byType {
                if let i = byType.firstIndex(where: { $0.type == type }) {
                    byType[i].count += count
                } else {
                    byType.append((type, count))
                }
            }
        }

        func report(room: String, ts: Int, seconds: Double, users: Int) -> Report {
            var r = Report(room: room, ts: ts, seconds: seconds)
            r.messages = messages
            r.bytes = bytes
            r.ops = byType.first { $0.type == .op }?.count ?? 0
            r.byType = byType.map { (type: $0.type.rawValue, count: $0.count) }
                .sorted { $0.count != $1.count ? $0.count > $1.count : $0.type < $1.type }
            r.users = users
            return r
        }
    }

    /// A room: what arrived in the current interval, and in the intervals before it. Everything
    /// of one message goes into one value found by one hash of the room's name.
    struct RoomState {
        var interval = Counts()
        var intervalUsers: Set<String> = []
        /// Every delay of the interval: a second's worth is small enough to sort.
        var intervalDelays: [Double] = []
        var lastUser: String?
        /// The intervals already reported.
        var earlier = Counts()
        var earlierUsers: Set<String> = []
        /// The whole run's delays in bounded memory.
        var delays = DelayHistogram()
        var firstTs: Int?
        var lastTs: Int?
        var firstArrival: Int64
        var lastArrival: Int64

        init(arrival: Int64) {
            firstArrival = arrival
            lastArrival = arrival
        }

        mutating func add(_ h: MessageHeader, bytes: Int, arrival: Int64, delay: Double?) {
            interval.add(h.type, bytes: bytes)
            // Consecutive messages are mostly one user's: skip hashing the same name again.
            if let user = h.user, user != lastUser {
                intervalUsers.insert(user)
                lastUser = user
            }
            if let delay {
                intervalDelays.append(delay)
                delays.record(delay)
            }
            lastArrival = arrival
            if let ts = h.ts {
                firstTs = min(firstTs ?? ts, ts)
                lastTs = max(lastTs ?? ts, ts)
            }
        }

        /// Ends the interval: its counts join the earlier ones.
        mutating func closeInterval() {
            earlier.merge(interval)
            earlierUsers.formUnion(intervalUsers)
            interval = Counts()
            intervalUsers = []
            intervalDelays = []
            lastUser = nil
        }
    }

    /// Whether arrival times mean anything: false for a capture file, where "now" is not when
    /// the messages arrived.
    public let measureDelay: Bool
    var states: [String: RoomState] = [:]
    var intervalStart: Int64

    public init(startMicros: Int64, measureDelay: Bool = true) {
        intervalStart = startMicros
        self.measureDelay = measureDelay
    }

    /// Rooms seen so far, by name.
    public var rooms: [String] { states.keys.sorted() }

    public mutating func record(_ h: MessageHeader, room: String, bytes: Int, arrivalMicros: Int64) {
        var delay: Double?
        if measureDelay, h.type == .op, let ts = h.ts {
            // Clocks of different machines may disagree by a little: never a negative delay.
            delay = max(0, Double(arrivalMicros - Int64(ts) * 1000) / 1000)
        }
        states[room, default: RoomState(arrival: arrivalMicros)].add(h, bytes: bytes, arrival: arrivalMicros, delay: delay)
    }

    /// The interval ending now: one report per room that had traffic in it, by room name; the
    /// next interval starts.
    public mutating func interval(endingAt nowMicros: Int64) -> [Report] {
        let seconds = Double(max(1, nowMicros - intervalStart)) / 1e6
        let ts = Int(nowMicros / 1000)
        var reports: [Report] = []
        for room in states.keys.sorted() where states[room]!.interval.messages > 0 {
            let state = states[room]!
            var r = state.interval.report(room: room, ts: ts, seconds: seconds, users: state.intervalUsers.count)
            let sorted = state.intervalDelays.sorted()
            r.delayP50 = Self.percentile(sorted, 0.50)
            r.delayP99 = Self.percentile(sorted, 0.99)
            reports.append(r)
            states[room]!.closeInterval()
        }
        intervalStart = nowMicros
        return reports
    }

    /// The whole run per room. Rates are over the time the room's messages span by their `ts`
    /// (a capture read in a moment still gives the rates it was recorded at), by their arrival
    /// when they carry no `ts`; at least one second, so a lone message is not a rate of
    /// thousands.
    public func totals(atMicros nowMicros: Int64) -> [Report] {
        states.sorted { $0.key < $1.key }.map { room, t in
            var span: Double
            if let first = t.firstTs, let last = t.lastTs {
                span = Double(last - first) / 1000
            } else {
                span = Double(t.lastArrival - t.firstArrival) / 1e6
            }
            var counts = t.earlier
            counts.merge(t.interval)
            var r = counts.report(room: room, ts: Int(nowMicros / 1000), seconds: max(1, span),
                                  users: t.earlierUsers.union(t.intervalUsers).count)
            r.delayP50 = t.delays.percentile(0.50)
            r.delayP99 = t.delays.percentile(0.99)
            r.final = true
            return r
        }
    }

    /// Nearest rank: the smallest sample with at least `p` of the samples at or below it.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }
}

/// Delays in fixed memory: exact below 64 µs, then 32 buckets per power of two (within about
/// 1.6 % of the true value), which covers microseconds to days in 2,000 counters.
public struct DelayHistogram: Sendable {
    var counts: [Int] = []
    public private(set) var count = 0

    public init() {}

    static func bucket(_ micros: Int) -> Int {
        guard micros >= 64 else { return max(0, micros) }
        let msb = Int.bitWidth - 1 - micros.leadingZeroBitCount
        return 64 + (msb - 6) * 32 + ((micros >> (msb - 5)) & 31)
    }

    /// The middle of a bucket, in microseconds.
    static func value(_ bucket: Int) -> Double {
        guard bucket >= 64 else { return Double(bucket) }
        let msb = (bucket - 64) / 32 + 6
        let sub = (bucket - 64) % 32
        let width = 1 << (msb - 5)
        return Double((32 + sub) * width) + Double(width - 1) / 2
    }

    public mutating func record(_ milliseconds: Double) {
        let b = Self.bucket(Int((milliseconds * 1000).rounded()))
        if b >= counts.count { counts += repeatElement(0, count: b + 1 - counts.count) }
        counts[b] += 1
        count += 1
    }

    /// In milliseconds, nearest rank.
    public func percentile(_ p: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = max(1, Int((p * Double(count)).rounded(.up)))
        var seen = 0
        for (b, n) in counts.enumerated() where n > 0 {
            seen += n
            if seen >= rank { return Self.value(b) / 1000 }
        }
        return nil
    }
}

/// How `--stats` shows its reports: a JSON line per room on a pipe, a table redrawn in place on
/// a terminal.
public struct TapStatsRenderer {
    public let table: Bool
    /// Lines of the table drawn last, to move back over.
    var drawn = 0

    public init(table: Bool) { self.table = table }

    /// The bytes to write for one round of reports (`rooms`: every room seen, for the table,
    /// which shows idle rooms too).
    public mutating func render(_ reports: [Report], rooms: [String], final: Bool = false) -> [UInt8] {
        table ? renderTable(reports, rooms: rooms, final: final) : Self.json(reports)
    }

    public typealias Report = TapStats.Report

    /// One line per report:
    /// {"type":"stats","room":R,"ts":T,"seconds":S,"messages":N,"messages_per_s":X,"by_type":{TYPE:X,...},
    ///  "ops_per_s":X,"bytes_per_s":X,"users":N,"delay_p50_ms":X|null,"delay_p99_ms":X|null[,"final":true]}
    public static func json(_ reports: [Report]) -> [UInt8] {
        var w = JSONWriter()
        for r in reports {
            w.beginObject()
            w.key("type"); w.string("stats")
            w.key("room"); w.string(r.room)
            w.key("ts"); w.int(r.ts)
            w.key("seconds"); w.double(rounded(r.seconds, 3))
            w.key("messages"); w.int(r.messages)
            w.key("messages_per_s"); w.double(rounded(r.rate(r.messages), 2))
            w.key("by_type")
            w.beginObject()
            for t in r.byType {
                w.key(t.type); w.double(rounded(r.rate(t.count), 2))
            }
            w.endObject()
            w.key("ops_per_s"); w.double(rounded(r.rate(r.ops), 2))
            w.key("bytes_per_s"); w.double(rounded(r.rate(r.bytes), 1))
            w.key("users"); w.int(r.users)
            w.key("delay_p50_ms"); optionalDouble(&w, r.delayP50)
            w.key("delay_p99_ms"); optionalDouble(&w, r.delayP99)
            if r.final { w.key("final"); w.bool(true) }
            w.endObject()
            w.newline()
        }
        return w.bytes
    }

    static func optionalDouble(_ w: inout JSONWriter, _ v: Double?) {
        if let v { w.double(rounded(v, 3)) } else { w.null() }
    }

    static func rounded(_ v: Double, _ places: Int) -> Double {
        var scale = 1.0
        for _ in 0 ..< places { scale *= 10 }
        return (v * scale).rounded() / scale
    }

    mutating func renderTable(_ reports: [Report], rooms: [String], final: Bool) -> [UInt8] {
        var lines: [String] = []
        lines.append(final ? "collab-tap: totals (rates over the time the messages' ts span)" : "collab-tap: last interval")
        lines.append(Self.row(["ROOM", "MSG/S", "OPS/S", "BYTES/S", "USERS", "DELAY p50", "p99", "TYPES/S"]))
        let byRoom = Dictionary(reports.map { ($0.room, $0) }, uniquingKeysWith: { a, _ in a })
        for room in rooms {
            guard let r = byRoom[room] else {
                if !final { lines.append(Self.row([room, "0", "0", "0", "0", "-", "-", ""])) }
                continue
            }
            let types = r.byType.map { "\($0.type) \(Self.number(r.rate($0.count)))" }.joined(separator: " ")
            lines.append(Self.row([room, Self.number(r.rate(r.messages)), Self.number(r.rate(r.ops)),
                                   Self.bytes(r.rate(r.bytes)), "\(r.users)",
                                   r.delayP50.map(Self.milliseconds) ?? "-", r.delayP99.map(Self.milliseconds) ?? "-", types]))
        }
        var out: [UInt8] = []
        // Back to the first line of the previous table and clear down, then draw anew.
        if drawn > 0 { out.appendText("\u{1B}[\(drawn)F\u{1B}[J") }
        for l in lines {
            out.appendText(l)
            out.append(0x0A)
        }
        drawn = final ? 0 : lines.count
        return out
    }

    static let widths = [16, 8, 8, 10, 6, 10, 10, 0]

    static func row(_ cells: [String]) -> String {
        var s = ""
        for (i, c) in cells.enumerated() {
            let w = widths[i]
            let n = c.unicodeScalars.count
            if i == 0 {
                s += c + String(repeating: " ", count: max(1, w - n))
            } else if w > 0 {
                s += String(repeating: " ", count: max(1, w - n)) + c
            } else {
                s += "  " + c
            }
        }
        while s.last == " " { s.removeLast() }
        return s
    }

    static func number(_ v: Double) -> String {
        if v >= 100 || v == v.rounded() { return String(Int(v.rounded())) }
        return String(rounded(v, 1))
    }

    /// Delays as a person reads them: fractions of a millisecond up to minutes and hours (a
    /// capture piped in long after it was made has delays of its age).
    static func milliseconds(_ v: Double) -> String {
        if v < 10 { return "\(rounded(v, 2)) ms" }
        if v < 100 { return "\(rounded(v, 1)) ms" }
        if v < 10_000 { return "\(Int(v.rounded())) ms" }
        if v < 600_000 { return "\(rounded(v / 1000, 1)) s" }
        if v < 36_000_000 { return "\(Int((v / 60_000).rounded())) min" }
        return "\(Int((v / 3_600_000).rounded())) h"
    }

    static func bytes(_ v: Double) -> String {
        if v >= 1_000_000 { return "\(rounded(v / 1_000_000, 1)) MB" }
        if v >= 1000 { return "\(rounded(v / 1000, 1)) kB" }
        return "\(Int(v.rounded())) B"
    }
}
