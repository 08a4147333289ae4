// Open WebSocket connections per peer address (collab-serve --max-conns-per-ip). A pure value:
// the host asks `admits` at the upgrade and reports every open and close.

public struct ConnectionCounter: Sendable {
    /// Connections one address may hold open; 0: no limit (nothing is counted then).
    public let limit: Int
    public private(set) var open: [String: Int] = [:]
    /// Addresses refused since they last dropped below the limit: one log line per episode of
    /// refusals, not one per attempt of a client hammering the port.
    var refusing: Set<String> = []

    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    public var isEnabled: Bool { limit > 0 }

    /// Connections open from `peer`.
    public func count(_ peer: String) -> Int { open[peer] ?? 0 }

    /// Connections open over all addresses.
    public var total: Int { open.values.reduce(0, +) }

    /// Whether `peer` may open one more.
    public func admits(_ peer: String) -> Bool {
        !isEnabled || count(peer) < limit
    }

    /// A refusal of `peer`: true when it is the first since `peer` was last below the limit
    /// (worth a log line).
    public mutating func refused(_ peer: String) -> Bool {
        refusing.insert(peer).inserted
    }

    public mutating func opened(_ peer: String) {
        guard isEnabled else { return }
        open[peer, default: 0] += 1
    }

    public mutating func closed(_ peer: String) {
        guard isEnabled, let n = open[peer] else { return }
        if n <= 1 {
            open[peer] = nil
        } else {
            open[peer] = n - 1
        }
        if n - 1 < limit { refusing.remove(peer) }
    }
}
