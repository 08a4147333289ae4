import CollabProtocol

#if canImport(Glibc)
import Glibc
#endif

/// What `collab-tap` does with each message, whatever its source: the filter, then the human
/// view, the line unchanged (`--raw`), or the statistics (`--stats`). No I/O but the writer it
/// is given; times come from the caller.
public final class TapPipeline {
    public enum Mode: Sendable { case human, raw, stats }

    public let mode: Mode
    public let filter: TapFilter
    public let output: LineWriter
    public var formatter: TapFormatter
    public var stats: TapStats
    public var renderer: TapStatsRenderer
    /// The room of messages that carry none (client-side lines, or a Redis channel's room).
    public var defaultRoom: String?
    var line: [UInt8] = []

    public init(mode: Mode, filter: TapFilter, output: LineWriter, formatter: TapFormatter,
                stats: TapStats, renderer: TapStatsRenderer) {
        self.mode = mode
        self.filter = filter
        self.output = output
        self.formatter = formatter
        self.stats = stats
        self.renderer = renderer
        line.reserveCapacity(256)
    }

    /// One line of input. Decodes no more than the mode needs: the raw view and the statistics
    /// read only the header fields.
    public func handle(_ bytes: UnsafeBufferPointer<UInt8>, arrivalMicros: Int64, room: String? = nil) throws(MessageError) {
        switch mode {
        case .human:
            let m = try Message.decode(bytes)
            show(m, arrivalMicros: arrivalMicros, room: room)
        case .raw, .stats:
            let h = try MessageHeader.decode(bytes)
            take(h, bytes, arrivalMicros: arrivalMicros, room: room)
        }
    }

    /// A message already decoded (the WebSocket source reads each one for its own needs).
    public func handle(_ m: Message, bytes: UnsafeBufferPointer<UInt8>, arrivalMicros: Int64, room: String? = nil) {
        switch mode {
        case .human: show(m, arrivalMicros: arrivalMicros, room: room)
        case .raw, .stats: take(MessageHeader(type: m.type, room: m.room, user: m.user, ts: m.ts), bytes, arrivalMicros: arrivalMicros, room: room)
        }
    }

    func show(_ m: Message, arrivalMicros: Int64, room: String?) {
        let room = m.room ?? room ?? defaultRoom
        guard filter.accepts(type: m.type, room: room, user: m.user) else { return }
        line.removeAll(keepingCapacity: true)
        formatter.append(m, arrivalMillis: Int(arrivalMicros / 1000), room: room, to: &line)
        line.withUnsafeBufferPointer { output.writeLine($0) }
    }

    func take(_ h: MessageHeader, _ bytes: UnsafeBufferPointer<UInt8>, arrivalMicros: Int64, room: String?) {
        let room = h.room ?? room ?? defaultRoom
        guard filter.accepts(type: h.type, room: room, user: h.user) else { return }
        if mode == .raw {
            output.writeRaw(bytes)
            output.writeLine(Self.newline)
        } else {
            stats.record(h, room: room ?? "-", bytes: bytes.count, arrivalMicros: arrivalMicros)
        }
    }

    static let newline: [UInt8] = [0x0A]

    /// `--stats`: the interval ending now.
    public func tick(nowMicros: Int64) {
        guard mode == .stats else { return }
        let reports = stats.interval(endingAt: nowMicros)
        let bytes = renderer.render(reports, rooms: stats.rooms)
        if !bytes.isEmpty { output.writeLine(bytes) }
    }

    /// End of input or of the run: with `--stats`, the totals per room.
    public func finish(nowMicros: Int64) {
        if mode == .stats {
            let bytes = renderer.render(stats.totals(atMicros: nowMicros), rooms: stats.rooms, final: true)
            if !bytes.isEmpty { output.writeLine(bytes) }
        }
        output.flush()
    }

    /// Microseconds since 1970 by the wall clock (op `ts` values are wall-clock milliseconds).
    public static func wallClockMicros() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000 + Int64(t.tv_nsec) / 1000
    }
}
