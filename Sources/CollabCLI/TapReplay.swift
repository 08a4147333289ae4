import CollabProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `collab-tap --replay FILE [--speed X]`: the capture's lines, unchanged, each written at its
/// original offset from the first line's `ts` divided by X, so a session can be re-enacted
/// (`... --type op | collab-join URL`). A line without `ts` follows the previous one at once;
/// speed 0 or infinity writes as fast as possible. The filters apply, and the timing is that of
/// the lines kept (the first one kept is written at once).
struct TapReplay {
    let options: TapOptions
    let diagnostics: Diagnostics
    let output: LineWriter

    func run(path: String) -> Int32 {
        guard let fd = TapTool.openCapture(path, diagnostics) else { return ExitStatus.ioError.rawValue }
        defer { close(fd) }
        let interrupts = Interrupts.install()
        defer { interrupts.uninstall() }
        let filter = options.filter
        let paced = options.speed > 0 && options.speed.isFinite
        var schedule = ReplaySchedule(speed: options.speed)
        var reader = LineReader(fd: fd, maxLineLength: options.maxLineLength)
        let status: Int32
        do {
            try reader.forEachLine({ number, bytes in
                if let signo = interrupts.pending { throw TapStop(status: 128 + signo) }
                let h: MessageHeader
                do throws(MessageError) { h = try MessageHeader.decode(bytes) } catch {
                    return try reject(LineError(line: number, reason: error.description))
                }
                guard filter.accepts(type: h.type, room: h.room, user: h.user) else { return }
                if paced, let ts = h.ts, let due = schedule.due(ts: ts, now: Self.monotonicNanos()) {
                    output.flush() // what is due now is out before the wait
                    try Self.sleep(until: due, interrupts: interrupts)
                }
                output.writeRaw(bytes)
                output.writeLine(TapPipeline.newline)
                if let status = outputStatus() { throw TapStop(status: status) }
            }, error: { try reject($0) })
            output.flush()
            status = outputStatus() ?? ExitStatus.ok.rawValue
        } catch let stop as TapStop {
            output.flush()
            status = stop.status
        } catch {
            diagnostics.error("\(path): \(error)")
            status = ExitStatus.ioError.rawValue
        }
        return status
    }

    func reject(_ problem: LineError) throws {
        diagnostics.error(problem.description)
        if options.strict { throw TapStop(status: ExitStatus.dataError.rawValue) }
    }

    func outputStatus() -> Int32? {
        ExitStatus.afterFailure(of: output, diagnostics)?.rawValue
    }

    static func monotonicNanos() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
    }

    /// Sleeps until `nanos` on the monotonic clock; a signal ends the wait and the replay.
    static func sleep(until nanos: Int64, interrupts: Interrupts) throws {
        var t = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        while true {
            let r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nil)
            if let signo = interrupts.pending { throw TapStop(status: 128 + signo) }
            if r != EINTR { return }
        }
    }
}

/// When each line of a replay is due: the first line with a `ts` sets the origin, and each later
/// one is due at the origin plus its offset from the first `ts`, divided by the speed. Offsets are
/// from the origin, not from the previous line, so rounding and the time spent writing never
/// accumulate over a long capture.
public struct ReplaySchedule: Sendable {
    public let speed: Double
    var origin: (ts: Int, nanos: Int64)?

    public init(speed: Double) { self.speed = speed }

    /// The monotonic time (ns) at which a line with `ts` is due, or nil to write it at once (the
    /// first one, or one already late).
    public mutating func due(ts: Int, now: Int64) -> Int64? {
        guard let origin else {
            origin = (ts, now)
            return nil
        }
        let offset = Double(ts - origin.ts) * 1e6 / speed
        let due = origin.nanos + Int64(offset.rounded())
        return due > now ? due : nil
    }
}

/// SIGINT and SIGTERM for code that blocks (a replay's waits, a capture read straight through):
/// the handler only records the signal; without SA_RESTART the wait returns EINTR and the code
/// looks at `pending`, then ends with 128+N after flushing.
final class Interrupts {
    private var previous: [(Int32, sigaction)] = []

    static func install(_ signals: [Int32] = [SIGINT, SIGTERM]) -> Interrupts {
        let i = Interrupts()
        _ = pendingInterrupt.load(ordering: .relaxed) // initialised outside a handler
        for signo in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signo in
                pendingInterrupt.store(signo, ordering: .sequentiallyConsistent)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0
            var old = sigaction()
            if sigaction(signo, &action, &old) == 0 { i.previous.append((signo, old)) }
        }
        return i
    }

    var pending: Int32? {
        let s = pendingInterrupt.load(ordering: .sequentiallyConsistent)
        return s == 0 ? nil : s
    }

    func uninstall() {
        for (signo, old) in previous {
            var o = old
            sigaction(signo, &o, nil)
        }
        previous = []
    }
}

/// The last signal caught by `Interrupts` (0: none). A global because a signal handler can
/// reach nothing else; an atomic because it is written from the handler.
private let pendingInterrupt = Atomic<Int32>(0)
