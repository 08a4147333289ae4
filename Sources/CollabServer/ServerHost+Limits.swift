// Hostile input: the per-connection message rate limit (--max-rate, --max-burst) and the cap on
// connections per peer address (--max-conns-per-ip), as seen from the host. The logic is in
// RateLimiter.swift and ConnectionCounter.swift; ServerHost only calls these hooks.
import CollabProtocol
import CollabTransport

extension ServerHost {
    // MARK: Connections per address

    /// `onAccept`: refuses the upgrade with 429 when the peer holds its share already. Refused at
    /// the HTTP upgrade rather than accepted and closed with 1008: the refusal costs no WebSocket
    /// session, no receive buffer and no room load, a client sees a plain HTTP status it can
    /// report, and collab-join's reconnect backoff applies as for any failed connect.
    func refuseByAddress(_ head: RequestHead) -> WebSocketServer.AcceptDecision? {
        guard perAddress.isEnabled, !perAddress.admits(head.peerAddress) else { return nil }
        metrics.refusedPerAddress.increment()
        if perAddress.refused(head.peerAddress) {
            log.warn("peer \(head.peerAddress): \(perAddress.limit) connections open already (--max-conns-per-ip); refusing more with 429 until one closes")
        }
        return .reject(status: 429, message: "too many connections from your address (at most \(perAddress.limit))")
    }

    // Counted from open to close rather than from the upgrade: onClose follows every onOpen
    // exactly once, whatever ends the connection (a close by either side, a heartbeat timeout,
    // a slow consumer, a refused room, shutdown), while an upgrade that never opens reports
    // nothing. libwebsockets opens a connection in the same callback that confirms its upgrade,
    // so no second upgrade of the same peer can slip in between.
    func countOpened(_ c: WebSocketConnection) {
        perAddress.opened(c.request.peerAddress)
    }

    func countClosed(_ c: WebSocketConnection) {
        perAddress.closed(c.request.peerAddress)
    }

    // MARK: Message rate

    /// Whether a message (text `bytes`, or nil for a binary frame) from `c` may be processed.
    /// Asked before decoding, so a dropped message costs a clock read and the bucket arithmetic,
    /// plus a decode to find an op's seq.
    func admit(_ c: WebSocketConnection, _ bytes: [UInt8]?) -> Bool {
        guard configuration.rateLimit.isEnabled else { return true }
        let id = ConnectionID(truncatingIfNeeded: c.id)
        guard let s = sessions[id] else { return true }
        let now = Self.monotonicNanos()
        if s.limiter == nil { s.limiter = ConnectionRateLimiter(configuration.rateLimit, now: now) }
        if s.limiter!.admit(now: now) { return true }

        metrics.rateLimited.increment()
        let seq = bytes.flatMap(Self.opSeq)
        let refusal = s.limiter!.refuse(seq: seq, now: now)
        if s.limiter!.dropped == 1 {
            log.info("conn \(id) room \(s.room) peer \(s.peer): over the rate limit (\(describe(configuration.rateLimit))); dropping messages")
        }
        carryOut(refusal, for: s, now: now)
        return false
    }

    func carryOut(_ refusal: ConnectionRateLimiter.Refusal, for s: Session, now: UInt64) {
        let limit = configuration.rateLimit
        switch refusal {
        case .silent:
            break
        case .report(let seq):
            let what = seq.map { "op seq \($0) was not committed: send it again later" } ?? "message was dropped"
            emit(Delivery(to: [s.id], .error(code: .rateLimited,
                "more than \(describe(limit)): this \(what) (refusals within the next second are not answered)",
                seq: seq, room: s.room)), room: s.room, durable: false)
        case .reportLater(let at):
            let id = s.id
            loop.schedule(after: .nanoseconds(Int64(clamping: at &- min(at, now)))) { [weak self] in
                guard let self, let s = self.sessions[id], s.limiter != nil else { return }
                let now = Self.monotonicNanos()
                self.carryOut(s.limiter!.dueReport(now: now), for: s, now: now)
            }
        case .close:
            metrics.rateLimitCloses.increment()
            log.warn("conn \(s.id) room \(s.room) peer \(s.peer): \(s.limiter?.dropped ?? 0) messages over the rate limit (\(describe(limit))); closing (1008)")
            emit(Delivery(to: [s.id], .error(code: .rateLimited,
                "kept sending more than \(describe(limit)) after being told; closing", room: s.room, fatal: true)),
                 room: s.room, durable: false)
            emitClose(s.id, code: CloseCode.policyViolation, reason: "rate limit: more than \(Self.count(limit.rate)) messages/s sustained")
        }
    }

    /// The seq of an op (nil for anything else, or what cannot be read).
    static func opSeq(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { b in
            guard let m = try? Message.decode(trimNewline(b)), m.type == .op else { return nil }
            return m.seq
        }
    }

    func describe(_ limit: RateLimit) -> String {
        "\(Self.count(limit.rate)) messages a second, bursts of \(Self.count(limit.burst))"
    }

    static func count(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}
