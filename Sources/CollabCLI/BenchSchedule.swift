// The open-loop schedule of collab-bench and the bookkeeping of one writer. Pure values: the tool
// feeds them clock readings, so tests check the pacing and the coordinated-omission rule without
// a network or a clock.

/// When each op is due. Writer w's k-th op (k = 0, 1, …) is due at `start + (k + w / writers) /
/// rate`: every writer keeps its own rate, and the writers' phases are spread evenly over one
/// period so that the room sees a steady stream rather than bursts of `writers` ops at once.
/// Numbered globally, op n belongs to writer n % writers and is due at start + n / (rate ·
/// writers), which lets one timer walk the whole schedule in order.
public struct OpenLoopSchedule: Sendable, Equatable {
    /// Nanoseconds on the caller's monotonic clock.
    public let start: UInt64
    public let writers: Int
    /// Ops per second per writer.
    public let rate: Double

    public init(start: UInt64, writers: Int, rate: Double) {
        precondition(writers > 0 && rate > 0 && rate.isFinite)
        self.start = start
        self.writers = writers
        self.rate = rate
    }

    /// Nanoseconds between two consecutive ops of the whole schedule.
    public var gapNanos: Double { 1e9 / (rate * Double(writers)) }

    public func writer(of n: Int) -> Int { n % writers }

    /// The due time of global op `n`. Computed from n each time (not by adding gaps up), so
    /// rounding does not drift over a long run.
    public func due(_ n: Int) -> UInt64 {
        start &+ UInt64((Double(n) * gapNanos).rounded())
    }

    /// How many ops are due strictly before `time`: the ops of a window that ends there.
    public func count(dueBefore time: UInt64) -> Int {
        guard time > start else { return 0 }
        var n = Int((Double(time - start) / gapNanos).rounded(.up))
        // The division may be off by one ulp either way; settle it with due() itself.
        while n > 0 && due(n - 1) >= time { n -= 1 }
        while due(n) < time { n += 1 }
        return n
    }
}

/// One writer's ops, under the protocol's rule of one op in flight per client. Ops become due on
/// the schedule whether or not the previous one was acknowledged (open loop); an op due while
/// another is in flight waits and leaves right after that ack, and its latency counts from its due
/// time. Counting from the late send instead would leave out exactly the waiting a slow server
/// causes (coordinated omission).
public struct WriterSchedule: Sendable {
    /// An op to send now: its seq and the time its latency counts from.
    public struct Send: Sendable, Equatable {
        public var seq: Int
        /// The send time when it left on schedule, its due time when it had to wait for an ack.
        public var reference: UInt64
        /// Whether it was due while the previous op was unacknowledged.
        public var late: Bool
        /// Its due time falls in the measured window (its latencies count).
        public var measured: Bool

        public init(seq: Int, reference: UInt64, late: Bool, measured: Bool) {
            self.seq = seq
            self.reference = reference
            self.late = late
            self.measured = measured
        }
    }

    /// Due times of ops waiting for the op in flight, oldest first (`waitingHead` onwards). It
    /// grows only while the server is behind, and is compacted as it drains.
    private var waiting: [(due: UInt64, measured: Bool)] = []
    private var waitingHead = 0
    public private(set) var seq = 0
    public private(set) var inFlight: Send?
    /// Ops that had to wait for an ack.
    public private(set) var lateCount = 0

    public init() {}

    public var queued: Int { waiting.count - waitingHead }
    public var isIdle: Bool { inFlight == nil && queued == 0 }

    /// An op fell due at `due`; `now` is the clock at the pacer's call. Returns the op to send,
    /// or nil when it has to wait for the ack of the op in flight.
    public mutating func opDue(at due: UInt64, now: UInt64, measured: Bool) -> Send? {
        if inFlight != nil {
            waiting.append((due, measured))
            lateCount += 1
            return nil
        }
        return start(reference: now, late: false, measured: measured)
    }

    /// The op in flight was acknowledged; returns it and, if one was waiting, the next op to send
    /// (late: its latency counts from its due time).
    public mutating func acknowledged() -> (acked: Send?, next: Send?) {
        let acked = inFlight
        inFlight = nil
        guard waitingHead < waiting.count else { return (acked, nil) }
        let (due, measured) = waiting[waitingHead]
        waitingHead += 1
        if waitingHead == waiting.count {
            waiting.removeAll(keepingCapacity: waiting.count <= 64)
            waitingHead = 0
        } else if waitingHead >= 64 && waitingHead * 2 >= waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
        return (acked, start(reference: due, late: true, measured: measured))
    }

    private mutating func start(reference: UInt64, late: Bool, measured: Bool) -> Send {
        seq += 1
        let s = Send(seq: seq, reference: reference, late: late, measured: measured)
        inFlight = s
        return s
    }
}

/// Send references of a writer's recent ops by seq, for the receivers to look up: a ring, so its
/// memory is fixed however long the run. An entry is overwritten `capacity` ops later; a delivery
/// that arrives after that is counted as unmatched rather than given a wrong latency.
public struct SendLog: Sendable {
    private var references: [UInt64]
    /// seq << 1 | measured, 0 for an empty slot.
    private var tags: [UInt64]
    /// Per op: when its first receiver got it, and how many have so far.
    private var firstReceipts: [UInt64]
    private var receipts: [UInt32]
    /// Per op: when its ack arrived (0: not yet), for --ops-csv.
    private var acks: [UInt64]
    private let mask: Int

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int) {
        var c = 1
        while c < max(2, capacity) { c <<= 1 }
        references = Array(repeating: 0, count: c)
        tags = Array(repeating: 0, count: c)
        firstReceipts = Array(repeating: 0, count: c)
        receipts = Array(repeating: 0, count: c)
        acks = Array(repeating: 0, count: c)
        mask = c - 1
    }

    public var capacity: Int { mask + 1 }

    public mutating func record(_ s: WriterSchedule.Send) {
        let i = s.seq & mask
        references[i] = s.reference
        tags[i] = UInt64(s.seq) << 1 | (s.measured ? 1 : 0)
        firstReceipts[i] = 0
        receipts[i] = 0
        acks[i] = 0
    }

    public mutating func noteAck(_ seq: Int, at time: UInt64) {
        let i = seq & mask
        if seq > 0, tags[i] >> 1 == UInt64(seq) { acks[i] = time }
    }

    /// When `seq` was acknowledged (0: not yet, or no longer in the ring).
    public func ackTime(_ seq: Int) -> UInt64 {
        let i = seq & mask
        return seq > 0 && tags[i] >> 1 == UInt64(seq) ? acks[i] : 0
    }

    /// Counts a receipt of `seq` at `time`; returns how many receivers have it now and when the
    /// first one got it (nil when `seq` is no longer in the ring).
    public mutating func noteReceipt(_ seq: Int, at time: UInt64) -> (count: Int, first: UInt64)? {
        guard seq > 0 else { return nil }
        let i = seq & mask
        guard tags[i] >> 1 == UInt64(seq) else { return nil }
        if receipts[i] == 0 { firstReceipts[i] = time }
        receipts[i] &+= 1
        return (Int(receipts[i]), firstReceipts[i])
    }

    /// The reference time and whether it is measured, if `seq` is still in the ring.
    public func lookup(_ seq: Int) -> (reference: UInt64, measured: Bool)? {
        guard seq > 0 else { return nil }
        let i = seq & mask
        let tag = tags[i]
        guard tag >> 1 == UInt64(seq) else { return nil }
        return (references[i], tag & 1 == 1)
    }
}
