/// Delays between reconnection attempts: exponential backoff with full jitter. The ceiling of
/// retry n (1-based) is `initial × multiplier^(n-1)`, at most `cap`, and the delay is drawn
/// uniformly from [0, ceiling], so clients cut off together by one server restart do not all
/// come back at the same instant ("Exponential Backoff And Jitter", AWS Architecture Blog).
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var multiplier: Int
    public var cap: Duration

    public init(initial: Duration = .milliseconds(250), multiplier: Int = 2, cap: Duration = .seconds(30)) {
        precondition(initial >= .zero && cap >= .zero && multiplier >= 1, "backoff parameters must be positive")
        self.initial = initial
        self.multiplier = multiplier
        self.cap = cap
    }

    /// The longest delay before retry `attempt` (1 for the first retry).
    public func ceiling(attempt: Int) -> Duration {
        var ceiling = initial
        var n = 1
        while n < attempt && ceiling < cap {
            ceiling = ceiling * multiplier
            n += 1
        }
        return min(ceiling, cap)
    }

    /// A delay drawn uniformly from [0, ceiling(attempt)], at millisecond granularity.
    public func delay(attempt: Int, using rng: inout some RandomNumberGenerator) -> Duration {
        let (seconds, attoseconds) = ceiling(attempt: attempt).components
        let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return .milliseconds(Int64.random(in: 0 ... max(0, millis), using: &rng))
    }

    public func delay(attempt: Int) -> Duration {
        var rng = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &rng)
    }
}
