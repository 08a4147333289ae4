// Per-connection message rate limit (collab-serve --max-rate, --max-burst): a token bucket, and
// what the host does with the messages it drops. Pure values; the clock is passed in (monotonic
// nanoseconds), so the tests drive time themselves and never sleep.

/// A token bucket: `rate` tokens a second, at most `capacity` saved up.
public struct TokenBucket: Sendable, Equatable {
    public let rate: Double
    public let capacity: Double
    public private(set) var tokens: Double
    var last: UInt64
    /// `rate` per nanosecond: one multiplication per message instead of a division.
    let perNano: Double

    /// A full bucket at `now`.
    public init(rate: Double, capacity: Double, now: UInt64) {
        self.rate = rate
        self.capacity = max(1, capacity)
        tokens = self.capacity
        last = now
        perNano = rate / 1e9
    }

    /// Takes one token if there is one.
    @inline(__always)
    public mutating func take(now: UInt64) -> Bool {
        refill(now: now)
        if tokens >= 1 {
            tokens -= 1
            return true
        }
        return false
    }

    @inline(__always)
    mutating func refill(now: UInt64) {
        // A clock that went backwards (it is monotonic, but the tests' is not) refills nothing.
        if now > last {
            tokens = min(capacity, tokens + Double(now - last) * perNano)
            last = now
        }
    }
}

/// The rate limit of every connection of a server.
public struct RateLimit: Sendable, Equatable {
    /// Sustained messages per second per connection; 0 turns the limit off.
    public var rate: Double
    /// Messages a connection may send at once after being quiet (the bucket's size).
    public var burst: Double
    /// At most one `rate-limited` error per connection per this many nanoseconds: answering every
    /// dropped message would let a flood make the server flood back.
    public var errorInterval: UInt64 = 1_000_000_000
    /// Sustained abuse: dropped messages beyond this many (less `forgivenPerSecond` for every
    /// second) close the connection. A client that slows down when told never gets there (it has
    /// one op in flight and waits); one that ignores the errors does within seconds.
    public var abuseAllowance: Double
    public var forgivenPerSecond: Double

    public static let unlimited = RateLimit(rate: 0)

    /// The defaults of collab-serve: `burst` 5 seconds' worth of `rate`; closed after 5 seconds'
    /// worth of dropped messages, a tenth of the rate forgiven per second.
    public init(rate: Double, burst: Double? = nil) {
        self.rate = max(0, rate)
        self.burst = max(1, burst ?? 5 * rate)
        abuseAllowance = max(10, 5 * rate)
        forgivenPerSecond = rate / 10
    }

    public var isEnabled: Bool { rate > 0 }
}

/// One connection's limiter. The host asks `admit` for every message, before decoding it; for
/// one it drops it asks `refuse` what to tell the client (decoding it only to find an op's seq:
/// a bounded cost, since a connection that keeps sending is closed after `abuseAllowance` drops).
public struct ConnectionRateLimiter: Sendable {
    public enum Refusal: Sendable, Equatable {
        /// Answer with a `rate-limited` error now (carrying `seq` when the message was an op).
        case report(seq: Int?)
        /// An error went out less than `errorInterval` ago: an op's refusal waits until `at` (a
        /// timer of the host's then calls `dueReport`), so a client that waits for its op's
        /// answer is never left without one, however the refusals fall.
        case reportLater(at: UInt64)
        /// Nothing to say (a report is due already, or the message was not an op).
        case silent
        /// Sustained abuse: close the connection (1008). Everything after is dropped silently.
        case close
    }

    public let limit: RateLimit
    var bucket: TokenBucket
    /// Dropped messages still allowed before the connection counts as abusive.
    var allowance: TokenBucket
    var lastErrorAt: UInt64?
    /// The seq of the latest op dropped since the last error, waiting for `dueReport`.
    var unreportedSeq: Int?
    var reportArmed = false
    public private(set) var closing = false
    /// Messages dropped on this connection (the host logs the first).
    public private(set) var dropped = 0

    public init(_ limit: RateLimit, now: UInt64) {
        self.limit = limit
        bucket = TokenBucket(rate: limit.rate, capacity: limit.burst, now: now)
        allowance = TokenBucket(rate: limit.forgivenPerSecond, capacity: limit.abuseAllowance, now: now)
    }

    /// Whether the next message may be processed.
    @inline(__always)
    public mutating func admit(now: UInt64) -> Bool {
        !closing && bucket.take(now: now)
    }

    /// A message `admit` refused; `seq` when it was an op.
    public mutating func refuse(seq: Int?, now: UInt64) -> Refusal {
        dropped += 1
        if closing { return .silent }
        if !allowance.take(now: now) {
            closing = true
            return .close
        }
        if lastErrorAt.map({ now &- $0 >= limit.errorInterval }) ?? true {
            lastErrorAt = now
            unreportedSeq = nil
            return .report(seq: seq)
        }
        guard let seq else { return .silent }
        unreportedSeq = seq
        if reportArmed { return .silent }
        reportArmed = true
        return .reportLater(at: lastErrorAt! &+ limit.errorInterval)
    }

    /// The host's timer of a `reportLater`: `.report` the op still unreported, or `.reportLater`
    /// again when another error went out meanwhile (the interval holds).
    public mutating func dueReport(now: UInt64) -> Refusal {
        reportArmed = false
        guard !closing, let seq = unreportedSeq else { return .silent }
        if let last = lastErrorAt, now &- last < limit.errorInterval {
            reportArmed = true
            return .reportLater(at: last &+ limit.errorInterval)
        }
        unreportedSeq = nil
        lastErrorAt = now
        return .report(seq: seq)
    }
}
