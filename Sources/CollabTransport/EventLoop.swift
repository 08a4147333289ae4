// CollabTransport: the libwebsockets event-loop layer. It moves bytes and timers and knows
// nothing of the message schema.
//
// One `EventLoop` = one libwebsockets context served by one thread. Every callback and every
// piece of user code attached to the loop runs on the thread that calls `run()`; other threads
// reach it only through `LoopHandle` (post, wake up, stop) and `MailboxSender`. Typical use:
//
//     let loop = try EventLoop()
//     let server = try loop.listen(.init(host: "0.0.0.0", port: 8080))
//     server.onAccept = { head in head.queryValue("token") != nil ? .accept : .reject(status: 401, message: "token") }
//     server.onHTTP = { head in head.path == "/healthz" ? HTTPResponse(text: "ok\n") : nil }
//     server.handlers.onText = { conn, bytes in ... conn.send(text: reply) ... }
//     loop.handleSignals { _ in loop.stop() }
//     loop.run()   // returns after stop(); everything is torn down then
//
// C state is reached without globals: the context user pointer (a weak `LoopRef`), the wsi opaque
// user data (connections, raw descriptors; kept alive by the loop until LWS_CALLBACK_WSI_DESTROY),
// the protocol table's `user` pointer (the server of a listening vhost), and for timers a pointer
// stored right after the lws_sorted_usec_list_t. The only globals are two atomics for signals.
import CLibWebSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the C callbacks find through the context user pointer. Weak, so a loop being
/// deinitialised is never reached from a callback fired by its own teardown.
final class LoopRef {
    weak var loop: EventLoop?
}

public final class EventLoop {
    public struct Options: Sendable {
        /// libwebsockets' log mask (process-wide).
        public var logLevel: LogLevel = .standard
        /// Largest HTTP request head accepted (URL + headers), bytes.
        public var maxHTTPHeaderSize: Int = 8192
        /// Largest single send() handed to the kernel per socket write (lws `tx_packet_size`).
        public var sendChunkSize: Int = 64 << 10
        /// Receive buffer per client connection (server connections use their server's setting).
        public var clientRxBufferSize: Int = 4096
        /// Let libwebsockets check that incoming text messages are UTF-8 and close a connection
        /// that sends one that is not (1007 "bad utf8"). libwebsockets reads this per context, not
        /// per vhost. Turn it off to validate in the layer above and answer with an error instead
        /// (collab-serve does: its JSON reader validates UTF-8 anyway).
        public var validateUTF8: Bool = true
        /// Raise the process' soft open-file limit (RLIMIT_NOFILE) to its hard limit, capped at
        /// this, before creating the context; nil leaves it alone. Every connection is a file
        /// descriptor, and libwebsockets sizes its descriptor tables from the soft limit when the
        /// context is created and refuses connections beyond it, so the usual soft limit of 1,024
        /// would cap a server (or a load generator) near 1,000 connections. The cap bounds those
        /// tables (16 bytes per descriptor, zeroed up front) where the hard limit is huge. Go's
        /// runtime raises the soft limit the same way at start.
        public var openFileLimit: Int? = 65_536

        public init() {}
    }

    /// Thread-safe handle: post work, wake up, stop.
    public let handle = LoopHandle()
    /// Runs on the loop thread after every `LoopHandle.wakeUp()` (and after posted work).
    public var onWakeUp: (() -> Void)?

    public let options: Options
    public private(set) var isRunning = false
    /// True once the loop has been torn down (after `run()` returned, or `shutdown()`).
    public private(set) var isFinished = false

    var context: OpaquePointer?
    var baseVhost: OpaquePointer?
    /// Client vhosts for wss://, one per CA file ("" = the system store only): lws keeps the
    /// trusted CAs per vhost, not per connection.
    var tlsClientVhosts: [String: OpaquePointer] = [:]
    let ref = LoopRef()
    let cAlloc = CAllocations()
    let baseProtocolName = "collab-transport"

    var connections: [ObjectIdentifier: WebSocketConnection] = [:]
    var raws: [ObjectIdentifier: RawDescriptor] = [:]
    var servers: [WebSocketServer] = []
    var activeTimers: [ObjectIdentifier: LoopTimer] = [:]
    var httpPending: [UnsafeMutableRawPointer: PendingHTTPBody] = [:]
    var mailboxes: [Int: any MailboxDraining] = [:]
    var noValidityPolicy: UnsafeMutablePointer<lws_retry_bo_t>?
    var heartbeatTimer: LoopTimer?
    var heartbeatTickMicros: Int64 = 0
    var nextMailboxID = 0
    var nextConnectionID: UInt64 = 1
    var stopRequested = false
    var tearingDown = false
    /// Where server connections frame a batch of messages (see `writeCoalesced`).
    var frameBatch: FrameBatch?
    var httpScratch: UnsafeMutableRawPointer?
    let httpScratchSize = 64 << 10

    var signalMask: UInt64 = 0
    var signalHandler: ((Int32) -> Void)?
    var previousSignalActions: [(Int32, sigaction)] = []

    /// Creates the libwebsockets context (no listener yet: see `listen`).
    public init(options: Options = Options()) throws {
        self.options = options
        ref.loop = self
        LogLevel.apply(options.logLevel)
        if let cap = options.openFileLimit { Self.raiseOpenFileLimit(cap: cap) }

        var info = lws_context_creation_info()
        // EXPLICIT_VHOSTS: one vhost for clients and fds, one per listener. JUST_USE_RAW_ORIGIN:
        // send ClientOptions.origin as given (lws would otherwise prefix "http://").
        info.options = UInt64(LWS_SERVER_OPTION_EXPLICIT_VHOSTS) | UInt64(LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN)
        if options.validateUTF8 { info.options |= UInt64(LWS_SERVER_OPTION_VALIDATE_UTF8) }
        // TLS vhosts (wss:// listeners, wss:// clients) can only be made in a context that did
        // lws' OpenSSL set-up: it allocates the SSL ex-data slot lws finds its connections by.
        // Vhosts opt in one by one (see `listen`, `clientTLSVhost`), so plain ones pay nothing.
        // (lws keeps that slot in a C global that every new context replaces: a TLS handshake
        // in flight while another loop of the same process is created can fail. The tools run
        // one loop per process.)
        let contextOptions = info.options
        info.options |= UInt64(LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT)
        info.user = Unmanaged.passUnretained(ref).toOpaque()
        info.count_threads = 1
        info.max_http_header_data = UInt16(clamping: options.maxHTTPHeaderSize)
        info.port = CONTEXT_PORT_NO_LISTEN
        guard let ctx = lws_create_context(&info) else {
            throw TransportError("libwebsockets: cannot create context")
        }
        context = ctx
        handle.attach(context: ctx)

        var vinfo = lws_context_creation_info()
        vinfo.port = CONTEXT_PORT_NO_LISTEN
        vinfo.vhost_name = UnsafePointer(cAlloc.string("collab-base"))
        vinfo.protocols = UnsafePointer(makeProtocols(name: baseProtocolName, user: nil,
                                                      rxBufferSize: options.clientRxBufferSize))
        vinfo.retry_and_idle_policy = UnsafePointer(disabledValidityPolicy())
        vinfo.options = contextOptions
        guard let vh = lws_create_vhost(ctx, &vinfo) else {
            teardown(notify: false)
            throw TransportError("libwebsockets: cannot create the base vhost")
        }
        baseVhost = vh
        httpScratch = UnsafeMutableRawPointer.allocate(byteCount: lwsPre + httpScratchSize, alignment: 16)
        frameBatch = FrameBatch(capacity: max(4096, options.sendChunkSize))
    }

    deinit {
        // Only reached when nobody holds the loop any more; callbacks fired by the teardown find
        // no loop (weak reference) and do nothing.
        teardown(notify: false)
        httpScratch?.deallocate()
    }

    // MARK: Running

    /// Serves events on the calling thread until `stop()`, then tears everything down: open
    /// connections are dropped (their `onClose` runs), descriptors closed (`onClose`), timers
    /// cancelled, handlers released. A loop runs once.
    public func run() {
        guard !isFinished, !isRunning, let ctx = context else { return }
        isRunning = true
        handle.setLoopThread()
        while !stopRequested && !handle.stopFlag.load(ordering: .acquiring) {
            if lws_service(ctx, 0) < 0 { break }
        }
        isRunning = false
        teardown(notify: true)
    }

    /// Makes `run()` return after the current callback. From other threads use `handle.stop()`.
    public func stop() {
        stopRequested = true
        if let context { lws_cancel_service(context) }
    }

    /// Tears down a loop that will not run (or is not running): same as the end of `run()`.
    public func shutdown() {
        guard !isRunning else { stop(); return }
        teardown(notify: true)
    }

    // MARK: Timers

    /// Runs `body` once on the loop thread after `delay`.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> LoopTimer {
        let t = LoopTimer(loop: self, micros: Self.micros(delay), repeats: false, body: body)
        if !tearingDown { t.arm() }
        return t
    }

    /// Runs `body` every `interval` until the returned timer is cancelled.
    @discardableResult
    public func schedule(every interval: Duration, _ body: @escaping () -> Void) -> LoopTimer {
        let t = LoopTimer(loop: self, micros: max(1, Self.micros(interval)), repeats: true, body: body)
        if !tearingDown { t.arm() }
        return t
    }

    /// Raises the soft RLIMIT_NOFILE towards the hard limit (at most `cap`; never lowers it) and
    /// returns the soft limit in force afterwards.
    @discardableResult
    public static func raiseOpenFileLimit(cap: Int = 65_536) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        let wanted = min(limit.rlim_max, rlim_t(max(0, cap)))
        if wanted > limit.rlim_cur {
            var raised = limit
            raised.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    static func micros(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s &* 1_000_000 &+ atto / 1_000_000_000_000
    }

    // MARK: Cross-thread input

    /// A typed channel from other threads into this loop; `handler` runs on the loop thread.
    public func makeMailbox<Message: Sendable>(_ handler: @escaping (Message) -> Void) -> Mailbox<Message> {
        let id = nextMailboxID
        nextMailboxID += 1
        let box = Mailbox(sender: MailboxSender<Message>(handle: handle, id: id), handler: handler)
        box.loop = self
        mailboxes[id] = box
        return box
    }

    /// Catches `signals` (default SIGINT, SIGTERM): the handler sets an atomic flag and wakes the
    /// loop; `handler` then runs on the loop thread. Previous dispositions come back at teardown.
    /// One loop per process should own the signals.
    public func handleSignals(_ signals: [Int32] = [SIGINT, SIGTERM], _ handler: @escaping (Int32) -> Void) {
        guard let context else { return }
        if !previousSignalActions.isEmpty {
            SignalRouting.uninstall(previousSignalActions, context: context)
        }
        signalMask = signals.reduce(0) { $0 | (UInt64(1) << UInt64($1)) }
        signalHandler = handler
        previousSignalActions = SignalRouting.install(signals, context: context)
    }

    func serviceWakeUp() {
        let (jobs, boxes) = handle.takePending()
        for job in jobs { job() }
        for id in boxes { mailboxes[id]?.drain() }
        if signalMask != 0 {
            let bits = SignalRouting.take(mask: signalMask)
            if bits != 0 {
                for signo in 1..<64 where bits & (UInt64(1) << UInt64(signo)) != 0 {
                    signalHandler?(Int32(signo))
                }
            }
        }
        onWakeUp?()
    }

    // MARK: Raw descriptors

    /// Adds `fd` to the loop. libwebsockets polls a dup() of it; `fd` itself stays yours to read
    /// and write, and is closed after `onClose` when `ownsDescriptor`.
    public func adopt(fd: Int32, ownsDescriptor: Bool = true,
                      onReadable: ((RawDescriptor) -> Void)? = nil) throws -> RawDescriptor {
        guard let baseVhost, !tearingDown else { throw TransportError("loop finished") }
        let copy = dup(fd)
        guard copy >= 0 else { throw TransportError("dup(\(fd)) failed: errno \(errno)") }
        let raw = RawDescriptor(fd: fd, ownsDescriptor: ownsDescriptor, loop: self)
        raw.onReadable = onReadable
        raws[ObjectIdentifier(raw)] = raw
        var desc = lws_adopt_desc_t()
        desc.vh = baseVhost
        desc.type = LWS_ADOPT_RAW_FILE_DESC
        desc.fd.filefd = copy
        desc.opaque = Unmanaged.passUnretained(raw as AnyObject).toOpaque()
        let wsi = baseProtocolName.withCString { name -> OpaquePointer? in
            desc.vh_prot_name = name
            return lws_adopt_descriptor_vhost_via_info(&desc)
        }
        guard let wsi else {
            // lws closed its copy already.
            raws[ObjectIdentifier(raw)] = nil
            throw TransportError("libwebsockets refused to adopt fd \(fd)")
        }
        raw.wsi = wsi
        return raw
    }

    // MARK: C-side helpers

    func makeProtocols(name: String, user: UnsafeMutableRawPointer?, rxBufferSize: Int)
        -> UnsafeMutablePointer<lws_protocols> {
        let raw = calloc(2, MemoryLayout<lws_protocols>.stride)!
        cAlloc.track(raw)
        let p = raw.bindMemory(to: lws_protocols.self, capacity: 2)
        p[0].name = UnsafePointer(cAlloc.string(name))
        p[0].callback = collabLWSCallback
        p[0].per_session_data_size = 0
        p[0].rx_buffer_size = rxBufferSize
        p[0].user = user
        p[0].tx_packet_size = options.sendChunkSize
        return p
    }

    /// An all-zero lws_retry_bo_t: turns libwebsockets' own validity pings off (otherwise the
    /// context default pings after 300 s); the loop's heartbeat sweep replaces them.
    func disabledValidityPolicy() -> UnsafeMutablePointer<lws_retry_bo_t> {
        if let p = noValidityPolicy { return p }
        let raw = calloc(1, MemoryLayout<lws_retry_bo_t>.stride)!
        cAlloc.track(raw)
        let p = raw.bindMemory(to: lws_retry_bo_t.self, capacity: 1)
        noValidityPolicy = p
        return p
    }

    /// Makes sure one repeating timer checks heartbeats often enough for `hb` (a quarter of the
    /// shorter interval, between 5 ms and 1 s).
    func ensureHeartbeatSweep(_ hb: Heartbeat) {
        let shorter = min(Self.micros(hb.idle), Self.micros(hb.timeout))
        let tick = min(1_000_000, max(5_000, shorter / 4))
        if let t = heartbeatTimer, t.isScheduled, heartbeatTickMicros <= tick { return }
        heartbeatTimer?.cancel()
        heartbeatTickMicros = tick
        heartbeatTimer = schedule(every: .microseconds(tick)) { [weak self] in
            guard let self else { return }
            let now = monotonicNanoseconds()
            for c in self.connections.values where c.limits.heartbeat != nil {
                c.heartbeatCheck(now: now)
            }
        }
    }

    func newConnectionID() -> UInt64 {
        defer { nextConnectionID += 1 }
        return nextConnectionID
    }

    func register(_ c: WebSocketConnection) { connections[ObjectIdentifier(c)] = c }
    func unregister(_ c: WebSocketConnection) { connections[ObjectIdentifier(c)] = nil }

    // MARK: Teardown

    func teardown(notify: Bool) {
        guard let ctx = context else { return }
        tearingDown = true
        handle.detach()
        if !previousSignalActions.isEmpty {
            SignalRouting.uninstall(previousSignalActions, context: ctx)
            previousSignalActions = []
        }
        for t in activeTimers.values { t.cancel() }
        activeTimers = [:]
        if !notify {
            for c in connections.values {
                c.handlers = WebSocketHandlers()
                c.endReported = true
            }
            for r in raws.values {
                r.onClose = nil
                r.onReadable = nil
                r.onWritable = nil
            }
        }
        // Closes every wsi: CLOSED / RAW_CLOSE_FILE / WSI_DESTROY callbacks run in here.
        lws_context_destroy(ctx)
        context = nil
        baseVhost = nil
        tlsClientVhosts = [:]
        for c in connections.values {
            c.didClose()
            c.detach()
        }
        for r in raws.values {
            r.didClose()
            r.wsi = nil
        }
        for t in activeTimers.values { t.cancel() }
        activeTimers = [:]
        connections = [:]
        raws = [:]
        httpPending = [:]
        mailboxes = [:]
        for s in servers { s.loopFinished() }
        servers = []
        noValidityPolicy = nil
        heartbeatTimer = nil
        onWakeUp = nil
        signalHandler = nil
        cAlloc.freeAll()
        isFinished = true
    }
}

/// A reusable buffer with LWS_PRE headroom for coalesced server frames. Its capacity matches
/// lws' per-send limit (`tx_packet_size`), so a batch normally leaves in one send().
final class FrameBatch {
    let buffer: UnsafeMutableRawPointer
    let capacity: Int
    init(capacity: Int) {
        self.capacity = capacity
        buffer = UnsafeMutableRawPointer.allocate(byteCount: lwsPre + capacity, alignment: 16)
    }
    deinit { buffer.deallocate() }
}

/// A GET response body being written in WRITEABLE callbacks.
final class PendingHTTPBody {
    let body: [UInt8]
    var offset = 0
    init(body: [UInt8]) { self.body = body }
}
