// hiredis' async API driven by the project's libwebsockets loop.
//
// One `RedisConnection` keeps one Redis connection alive: it connects without blocking
// (redisAsyncConnect), puts the socket into the loop as a raw descriptor (the loop polls a dup()),
// runs AUTH and SELECT from the URL, and after a loss reconnects with exponential backoff. Each
// connection attempt has its own `HiredisLink`, which is what the C callbacks reach through
// `ac->data`, `ac->ev.data` and (for subscriptions) `privdata`; a command's `privdata` is a
// retained `PendingCommand`. Loop thread only.
//
// hiredis facts this relies on (0.14.1):
// - every pending callback runs with reply == NULL when the context is freed: that is where
//   in-flight commands fail; nothing is sent from there.
// - `onConnect(REDIS_ERR)` is followed by the free, without `onDisconnect`; a context whose
//   redisAsyncConnect failed at once must still be freed.
// - `ev.cleanup` runs inside redisAsyncHandleRead/Write (inside our raw-descriptor callback), and
//   `onDisconnect` runs after it, so a link stays alive until the loop's next turn.
// - the async API has no timeouts: command and connect timeouts are loop timers.
import CHiredis
import CollabTransport
import DequeModule
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public struct RedisOptions: Sendable {
    /// Default per-command timeout (nil: wait forever). `command(..., timeout:)` overrides it.
    public var commandTimeout: Duration? = .seconds(10)
    /// Longest time from starting a connection attempt to the end of AUTH/SELECT.
    public var connectTimeout: Duration = .seconds(5)
    /// Reconnect delay: the ceiling starts at `backoffInitial`, doubles per failed attempt up to
    /// `backoffCap`; the delay is drawn from [ceiling/2, ceiling] ("equal jitter").
    public var backoffInitial: Duration = .milliseconds(100)
    public var backoffCap: Duration = .seconds(5)
    /// Reconnect after a loss or a failed attempt (false: stay down until `start()` again).
    public var reconnect = true

    public init() {}

    /// The longest delay before reconnect attempt `attempt` (1 = the first retry).
    public func backoffCeiling(attempt: Int) -> Duration {
        var c = backoffInitial
        var n = 1
        while n < attempt && c < backoffCap {
            c = c * 2
            n += 1
        }
        return min(c, backoffCap)
    }

    public func backoffDelay(attempt: Int) -> Duration {
        let ceiling = backoffCeiling(attempt: attempt)
        let (s, atto) = ceiling.components
        let micros = s * 1_000_000 + atto / 1_000_000_000_000
        return .microseconds(Int64.random(in: (micros / 2)...max(micros / 2, micros)))
    }
}

/// A command waiting for its reply.
final class PendingCommand {
    var completion: ((Result<RedisReply, RedisError>) -> Void)?

    init(_ completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        self.completion = completion
    }

    var isFinished: Bool { completion == nil }

    func finish(_ result: Result<RedisReply, RedisError>) {
        guard let c = completion else { return }
        completion = nil
        c(result)
    }
}

/// One hiredis context (one connection attempt). Lives until the loop turn after hiredis freed
/// the context (`selfRetain`), because hiredis calls back through its pointer up to the end.
final class HiredisLink {
    weak var owner: RedisConnection?
    weak var loop: EventLoop?
    var ac: UnsafeMutablePointer<redisAsyncContext>?
    var raw: RawDescriptor?
    /// hiredis freed (or is freeing) the context: send nothing, touch nothing.
    var freeing = false
    var endReported = false
    var tcpConnected = false
    /// Why we freed the context ourselves (timeout, close()), for the failed commands.
    var forcedReason: RedisError?
    var selfRetain: HiredisLink?
    var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    init(owner: RedisConnection) {
        self.owner = owner
        self.loop = owner.loop
        selfRetain = self
    }

    static func from(_ p: UnsafeRawPointer?) -> HiredisLink? {
        guard let p else { return nil }
        return Unmanaged<HiredisLink>.fromOpaque(p).takeUnretainedValue()
    }

    var usable: Bool { ac != nil && !freeing }

    /// The error hiredis recorded on the context, or why we dropped it.
    func currentError() -> RedisError {
        if let forcedReason { return forcedReason }
        // ac->errstr points at c.errstr; ac->err is not always updated in 0.14: read the context.
        if let ac, ac.pointee.c.err != 0 || ac.pointee.err != 0 {
            let msg = withUnsafeBytes(of: ac.pointee.c.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return .disconnected(msg.isEmpty ? "error \(ac.pointee.c.err)" : msg)
        }
        return .disconnected("connection closed")
    }

    func handleRead() {
        guard usable, let ac else { return }
        redisAsyncHandleRead(ac)
    }

    func handleWrite() {
        guard usable, let ac else { return }
        redisAsyncHandleWrite(ac)
    }

    /// ev.cleanup: hiredis is freeing the context (often inside handleRead/handleWrite).
    func cleanup() {
        freeing = true
        raw?.close()
        raw = nil
        // The context memory goes away right after the disconnect callback; release ourselves
        // on the next loop turn (never inside hiredis).
        if let loop {
            loop.schedule(after: .zero) { [self] in
                ac = nil
                selfRetain = nil
            }
        }
    }

    /// libwebsockets dropped the descriptor by itself (hang-up, error, loop teardown).
    func rawClosed() {
        raw = nil
        guard usable, let ac else { return }
        // Let hiredis find out why (EOF, refused connect) ...
        if tcpConnected { redisAsyncHandleRead(ac) } else { redisAsyncHandleWrite(ac) }
        // ... or drop it ourselves.
        if usable { owner?.forceDrop(self, .disconnected("socket closed")) }
    }

    /// Frees the context now (not from inside a hiredis callback: 0.14 then defers the free).
    func free(reason: RedisError) {
        guard usable, let ac else { return }
        if forcedReason == nil { forcedReason = reason }
        freeing = true
        redisAsyncFree(ac)
    }
}

// MARK: - C callbacks (no captures: state through ev.data, ac->data, privdata)

private func linkOf(_ ac: UnsafePointer<redisAsyncContext>?) -> HiredisLink? {
    guard let ac else { return nil }
    return HiredisLink.from(ac.pointee.data)
}

private func evAddWrite(_ data: UnsafeMutableRawPointer?) {
    HiredisLink.from(data)?.raw?.requestWritable()
}

private func evNoop(_ data: UnsafeMutableRawPointer?) {}

private func evCleanup(_ data: UnsafeMutableRawPointer?) {
    HiredisLink.from(data)?.cleanup()
}

private func onHiredisConnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    guard let link = linkOf(ac) else { return }
    if status == REDIS_OK {
        link.tcpConnected = true
        link.owner?.tcpConnected(link)
    } else {
        // hiredis frees the context right after this; no onDisconnect follows.
        link.freeing = true
        link.owner?.linkEnded(link, link.currentError())
    }
}

private func onHiredisDisconnect(_ ac: UnsafePointer<redisAsyncContext>?, _ status: Int32) {
    guard let link = linkOf(ac) else { return }
    link.freeing = true
    let error: RedisError = status == REDIS_OK ? (link.forcedReason ?? .closed) : link.currentError()
    link.owner?.linkEnded(link, error)
}

/// Reply of an ordinary command: privdata is a retained PendingCommand (one call per command).
private func onHiredisReply(_ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
                            _ privdata: UnsafeMutableRawPointer?) {
    guard let privdata else { return }
    let pending = Unmanaged<PendingCommand>.fromOpaque(privdata).takeRetainedValue()
    guard let reply else {
        // Teardown: the connection is gone. Fail the command; never send from here.
        let link = linkOf(UnsafePointer(ac))
        pending.finish(.failure(link?.currentError() ?? .disconnected("connection closed")))
        return
    }
    let r = reply.assumingMemoryBound(to: redisReply.self)
    if r.pointee.type == REDIS_REPLY_ERROR, case .error(let message) = RedisReply(r) {
        pending.finish(.failure(.reply(message)))
    } else {
        pending.finish(.success(RedisReply(r)))
    }
}

/// Subscription traffic: privdata is the (unretained) link; hiredis calls this for every
/// subscribe confirmation and message of the channel, and once with NULL at teardown.
private func onHiredisSubscription(_ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?,
                                   _ privdata: UnsafeMutableRawPointer?) {
    guard let reply, let link = HiredisLink.from(privdata) else { return }
    let r = reply.assumingMemoryBound(to: redisReply.self)
    link.owner?.subscriptionReply(r)
}

// MARK: - RedisConnection

/// A Redis connection on an `EventLoop`, reconnecting by itself. Loop thread only; keep a
/// reference while you use it and `close()` it when done.
public final class RedisConnection {
    public enum State: Sendable, Equatable {
        case idle
        /// TCP connect, AUTH and SELECT in progress (commands are queued meanwhile).
        case connecting
        case ready
        /// Waiting for the next attempt (commands fail with `.notConnected`).
        case waiting
        case closed
    }

    public let url: RedisURL
    public let options: RedisOptions
    let loop: EventLoop

    public private(set) var state: State = .idle
    /// Failed attempts since the last successful connection.
    public private(set) var failedAttempts = 0
    /// Successful connections so far (1 after the first, 2 after the first reconnect, ...).
    public private(set) var connectionCount = 0
    /// Host-name resolutions started; an answer for an older one is ignored.
    var resolveAttempt = 0
    var resolutions: Mailbox<HostResolver.Resolution>?

    /// Connected, AUTH and SELECT done; queued commands have been sent.
    public var onConnect: (() -> Void)?
    /// An established connection was lost (commands in flight have failed already). A reconnect
    /// follows unless closed.
    public var onDisconnect: ((RedisError) -> Void)?
    /// A connection attempt failed; `attempt` counts since the last success. A retry follows.
    public var onConnectFailed: ((RedisError, _ attempt: Int) -> Void)?

    var link: HiredisLink?
    var queued: [(args: [[UInt8]], pending: PendingCommand)] = []
    /// Commands with a timeout, in the order they were issued, and the one timer that fails
    /// those past their deadline. A timer per command would cost O(n) each to insert into
    /// libwebsockets' sorted timer list: pipelining 10,000 commands made that quadratic.
    var deadlines = Deque<(at: ContinuousClock.Instant, command: PendingCommand)>()
    var sweepTimer: LoopTimer?
    var sweepAt: ContinuousClock.Instant?
    var handshakeLeft = 0
    var connectTimer: LoopTimer?
    var retryTimer: LoopTimer?
    /// Set by RedisSubscriber.
    var subscriptionHandler: ((UnsafePointer<redisReply>) -> Void)?
    var readyHandler: (() -> Void)?
    var endedHandler: (() -> Void)?

    public init(loop: EventLoop, url: RedisURL, options: RedisOptions = RedisOptions()) {
        self.loop = loop
        self.url = url
        self.options = options
    }

    deinit {
        connectTimer?.cancel()
        retryTimer?.cancel()
        if let link, link.usable { link.free(reason: .closed) }
    }

    public var isReady: Bool { state == .ready }

    /// Starts connecting (again, after `close()`).
    public func start() {
        guard state == .idle || state == .closed else { return }
        failedAttempts = 0
        connectNow()
    }

    /// Drops the connection and stops reconnecting. Queued and in-flight commands fail with
    /// `.closed`.
    public func close() {
        guard state != .closed else { return }
        state = .closed
        retryTimer?.cancel()
        retryTimer = nil
        if let link, link.usable { forceDrop(link, .closed) }
        failQueued(.closed)
    }

    // MARK: Commands

    /// Sends a command; `completion` runs on the loop thread exactly once: the reply, an error
    /// reply (`.reply`), `.timeout`, `.notConnected`, `.disconnected`, `.closed`.
    public func command(_ args: [String], timeout: Duration?? = nil,
                        _ completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        command(bytes: args.map { Array($0.utf8) }, timeout: timeout, completion)
    }

    /// Binary-safe form.
    public func command(bytes args: [[UInt8]], timeout: Duration?? = nil,
                        _ completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        let pending = PendingCommand(completion)
        switch state {
        case .idle, .waiting:
            pending.finish(.failure(.notConnected))
            return
        case .closed:
            pending.finish(.failure(.closed))
            return
        case .connecting, .ready:
            break
        }
        let limit: Duration? = timeout ?? options.commandTimeout
        if let limit {
            // Replies come in order, so answered commands leave from the front: the queue stays
            // about as long as the number of commands in flight.
            while let first = deadlines.first, first.command.isFinished { deadlines.removeFirst() }
            let at = ContinuousClock.now + limit
            deadlines.append((at, pending))
            armSweep(at)
        }
        if state == .connecting {
            queued.append((args, pending))
        } else {
            send(args, pending)
        }
    }

    func armSweep(_ at: ContinuousClock.Instant) {
        if let current = sweepAt, current <= at { return }
        sweepTimer?.cancel()
        sweepAt = at
        sweepTimer = loop.schedule(after: max(.zero, at - ContinuousClock.now)) { [weak self] in
            self?.sweepDeadlines()
        }
    }

    /// Fails the commands past their deadline and re-arms the timer for the next deadline.
    func sweepDeadlines() {
        sweepTimer = nil
        sweepAt = nil
        let now = ContinuousClock.now
        var next: ContinuousClock.Instant?
        var kept = Deque<(at: ContinuousClock.Instant, command: PendingCommand)>()
        for entry in deadlines where !entry.command.isFinished {
            if entry.at <= now {
                entry.command.finish(.failure(.timeout))
            } else {
                kept.append(entry)
                next = min(next ?? entry.at, entry.at)
            }
        }
        deadlines = kept
        if let next { armSweep(next) }
    }

    func send(_ args: [[UInt8]], _ pending: PendingCommand) {
        guard let link, link.usable, let ac = link.ac else {
            pending.finish(.failure(.notConnected))
            return
        }
        let p = Unmanaged.passRetained(pending).toOpaque()
        if Self.argv(args, { argc, argv, lens in redisAsyncCommandArgv(ac, onHiredisReply, p, argc, argv, lens) }) != REDIS_OK {
            Unmanaged<PendingCommand>.fromOpaque(p).release()
            pending.finish(.failure(link.currentError()))
        }
    }

    /// Subscription commands (SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE): replies go to
    /// `subscriptionHandler`.
    @discardableResult
    func sendSubscription(_ args: [[UInt8]]) -> Bool {
        guard state == .ready, let link, link.usable, let ac = link.ac else { return false }
        let p = link.opaque
        return Self.argv(args, { argc, argv, lens in
            redisAsyncCommandArgv(ac, onHiredisSubscription, p, argc, argv, lens)
        }) == REDIS_OK
    }

    static func argv(_ args: [[UInt8]],
                     _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Int32) -> Int32 {
        // One buffer for all arguments (hiredis copies them into its output buffer at once).
        let total = args.reduce(0) { $0 + $1.count }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(1, total)) { buf in
            withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: max(1, args.count)) { ptrs in
                withUnsafeTemporaryAllocation(of: Int.self, capacity: max(1, args.count)) { lens in
                    var off = 0
                    let base = UnsafeMutableRawPointer(buf.baseAddress!)
                    for (i, a) in args.enumerated() {
                        a.withUnsafeBytes { src in
                            if src.count > 0 { (base + off).copyMemory(from: src.baseAddress!, byteCount: src.count) }
                        }
                        ptrs[i] = UnsafePointer((base + off).assumingMemoryBound(to: CChar.self))
                        lens[i] = a.count
                        off += a.count
                    }
                    return body(Int32(args.count), ptrs.baseAddress!, UnsafePointer(lens.baseAddress!))
                }
            }
        }
    }

    // MARK: Connection life cycle

    func connectNow() {
        retryTimer = nil
        state = .connecting
        let link = HiredisLink(owner: self)
        self.link = link
        connectTimer?.cancel()
        connectTimer = loop.schedule(after: options.connectTimeout) { [weak self, weak link] in
            guard let self, let link, !link.freeing, link === self.link else { return }
            let reason = RedisError.disconnected("connect timed out after \(self.options.connectTimeout)")
            if link.ac == nil {
                // Still resolving the host name: the answer, when it comes, finds the link over.
                link.freeing = true
                self.linkEnded(link, reason)
                link.selfRetain = nil
                return
            }
            self.forceDrop(link, reason)
        }
        if HostResolver.isAddressLiteral(url.host) {
            open(link, address: url.host)
            return
        }
        resolveAttempt += 1
        if resolutions == nil {
            resolutions = loop.makeMailbox { [weak self] (r: HostResolver.Resolution) in self?.resolved(r) }
        }
        guard HostResolver.resolve(url.host, attempt: resolveAttempt, to: resolutions!.sender) else {
            link.freeing = true
            linkEnded(link, .disconnected("cannot start a thread to resolve \(url.host)"))
            link.selfRetain = nil
            return
        }
    }

    /// A host name resolved (or not), off the loop thread.
    func resolved(_ r: HostResolver.Resolution) {
        guard r.attempt == resolveAttempt, let link, link.ac == nil, !link.freeing, state == .connecting else { return }
        switch r.addresses {
        case .success(let addresses):
            open(link, address: addresses[0])
        case .failure(let error):
            link.freeing = true
            linkEnded(link, error)
            link.selfRetain = nil
        }
    }

    /// Starts the TCP connection of `link` to an address literal (never blocks).
    func open(_ link: HiredisLink, address: String) {
        guard let ac = redisAsyncConnect(address, Int32(url.port)) else {
            link.freeing = true
            linkEnded(link, .disconnected("out of memory"))
            link.selfRetain = nil
            return
        }
        if ac.pointee.err != 0 {
            link.ac = ac
            let error = link.currentError()
            link.ac = nil
            link.freeing = true
            redisAsyncFree(ac) // the context (and possibly a socket) is ours to free
            linkEnded(link, error)
            link.selfRetain = nil
            return
        }
        link.ac = ac
        ac.pointee.data = link.opaque
        do {
            let raw = try loop.adopt(fd: ac.pointee.c.fd, ownsDescriptor: false)
            raw.onReadable = { [weak link] _ in link?.handleRead() }
            raw.onWritable = { [weak link] _ in link?.handleWrite() }
            raw.onClose = { [weak link] _ in link?.rawClosed() }
            link.raw = raw
        } catch {
            link.freeing = true
            link.ac = nil
            redisAsyncFree(ac)
            linkEnded(link, .disconnected("cannot add the socket to the loop: \(error)"))
            link.selfRetain = nil
            return
        }
        ac.pointee.ev.data = link.opaque
        ac.pointee.ev.addRead = evNoop   // the loop always polls a raw descriptor for input
        ac.pointee.ev.delRead = evNoop
        ac.pointee.ev.addWrite = evAddWrite
        ac.pointee.ev.delWrite = evNoop  // writable requests are one-shot
        ac.pointee.ev.cleanup = evCleanup
        redisAsyncSetDisconnectCallback(ac, onHiredisDisconnect)
        redisAsyncSetConnectCallback(ac, onHiredisConnect) // asks for writable: connect completion
    }

    /// TCP is up (inside hiredis' connect callback): AUTH, SELECT, then ready.
    func tcpConnected(_ link: HiredisLink) {
        guard link === self.link else { return }
        var handshake: [[String]] = []
        if let password = url.password {
            handshake.append(url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password])
        }
        if url.database != 0 { handshake.append(["SELECT", String(url.database)]) }
        handshakeLeft = handshake.count
        if handshake.isEmpty {
            becomeReady()
            return
        }
        for cmd in handshake {
            let pending = PendingCommand { [weak self, weak link] result in
                guard let self, let link, link === self.link else { return }
                switch result {
                case .success:
                    self.handshakeLeft -= 1
                    if self.handshakeLeft == 0 { self.becomeReady() }
                case .failure(let e):
                    if case .reply(let m) = e {
                        self.forceDrop(link, .handshake("\(cmd[0]): \(m)"))
                    }
                }
            }
            send(cmd.map { Array($0.utf8) }, pending)
        }
    }

    func becomeReady() {
        connectTimer?.cancel()
        connectTimer = nil
        state = .ready
        failedAttempts = 0
        connectionCount += 1
        let q = queued
        queued = []
        for (args, pending) in q where pending.completion != nil { send(args, pending) }
        readyHandler?()
        onConnect?()
    }

    /// Drops the link's context ourselves. Inside a hiredis callback 0.14 defers the free to the
    /// end of the callback; the end is reported here either way (exactly once).
    func forceDrop(_ link: HiredisLink, _ reason: RedisError) {
        link.free(reason: reason)
        linkEnded(link, reason)
    }

    /// The link's connection (or attempt) is over.
    func linkEnded(_ link: HiredisLink, _ error: RedisError) {
        guard !link.endReported else { return }
        link.endReported = true
        guard link === self.link else { return }
        connectTimer?.cancel()
        connectTimer = nil
        let wasReady = state == .ready
        failQueued(state == .closed ? .closed : error)
        endedHandler?()
        if state != .closed {
            state = options.reconnect ? .waiting : .idle
        }
        if wasReady {
            onDisconnect?(error)
        } else {
            failedAttempts += 1
            onConnectFailed?(error, failedAttempts)
        }
        guard state == .waiting else { return }
        let delay = options.backoffDelay(attempt: max(1, failedAttempts))
        retryTimer = loop.schedule(after: delay) { [weak self] in
            guard let self, self.state == .waiting else { return }
            self.connectNow()
        }
    }

    func failQueued(_ error: RedisError) {
        let q = queued
        queued = []
        for (_, pending) in q { pending.finish(.failure(error)) }
    }

    func subscriptionReply(_ r: UnsafePointer<redisReply>) {
        subscriptionHandler?(r)
    }
}
