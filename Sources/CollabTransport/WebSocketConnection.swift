// One WebSocket connection, server or client side: reassembly of incoming messages with a size
// limit, a bounded outgoing queue written only from the WRITEABLE callback, and an orderly close
// (queued frames first, then the close frame with code and reason).
import CLibWebSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A frame payload with libwebsockets' LWS_PRE headroom in front, ready to be written without
/// a copy. A server may queue one `OutgoingMessage` on many connections (encode a broadcast once):
/// server frames are not masked, so the buffer is only read. Client connections copy shared
/// messages before writing because lws masks client payloads in place.
public final class OutgoingMessage {
    let storage: UnsafeMutableRawPointer
    /// Payload size in bytes.
    public let count: Int
    public let isBinary: Bool
    /// Made by a connection for itself (not shared): a client may mask it in place.
    let exclusive: Bool

    init(count: Int, binary: Bool, exclusive: Bool, fill: (UnsafeMutableRawPointer) -> Void) {
        self.count = count
        isBinary = binary
        self.exclusive = exclusive
        storage = UnsafeMutableRawPointer.allocate(byteCount: lwsPre + max(count, 1), alignment: 16)
        fill(storage + lwsPre)
    }

    convenience init(string: String, exclusive: Bool) {
        var s = string
        let n = s.utf8.count
        self.init(count: n, binary: false, exclusive: exclusive) { dst in
            s.withUTF8 { u in
                if let b = u.baseAddress, n > 0 { dst.copyMemory(from: b, byteCount: n) }
            }
        }
    }

    convenience init(sequence: some Sequence<UInt8>, binary: Bool, exclusive: Bool) {
        let array = Array(sequence)  // O(1) when it already is an Array
        self.init(count: array.count, binary: binary, exclusive: exclusive) { dst in
            array.withUnsafeBytes { b in
                if let base = b.baseAddress, b.count > 0 { dst.copyMemory(from: base, byteCount: b.count) }
            }
        }
    }

    /// A text message from a string's UTF-8.
    public convenience init(text: String) {
        self.init(string: text, exclusive: false)
    }

    /// A text message; `bytes` must be valid UTF-8 (peers close the connection otherwise).
    public convenience init(text bytes: some Sequence<UInt8>) {
        self.init(sequence: bytes, binary: false, exclusive: false)
    }

    public convenience init(binary bytes: some Sequence<UInt8>) {
        self.init(sequence: bytes, binary: true, exclusive: false)
    }

    var payload: UnsafeMutablePointer<UInt8> {
        (storage + lwsPre).assumingMemoryBound(to: UInt8.self)
    }

    /// The payload bytes (a copy).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: payload, count: count)) }

    deinit { storage.deallocate() }
}

/// Event handlers of a WebSocket connection. All run on the loop thread. A server copies its
/// handlers into each new connection; a connection's handlers may be replaced at any time.
public struct WebSocketHandlers {
    /// The handshake completed; the connection is open.
    public var onOpen: ((WebSocketConnection) -> Void)?
    /// A complete text message (reassembled from fragments; UTF-8 validated by libwebsockets).
    public var onText: ((WebSocketConnection, [UInt8]) -> Void)?
    /// A complete binary message.
    public var onBinary: ((WebSocketConnection, [UInt8]) -> Void)?
    /// An incoming message exceeded `maxMessageSize` (the size seen so far is passed). The
    /// connection then closes with 1009 after flushing what is queued, so a handler may queue an
    /// error message first. The oversized message is not delivered.
    public var onMessageTooBig: ((WebSocketConnection, Int) -> Void)?
    /// A PONG arrived (answer to a heartbeat PING).
    public var onPong: ((WebSocketConnection) -> Void)?
    /// The outgoing queue became empty after writing (resume producers paused for back-pressure).
    public var onDrained: ((WebSocketConnection) -> Void)?
    /// The connection ended after having been open: the peer's close code and reason, ours if we
    /// closed, or 1006 (reason "heartbeat timeout" when the heartbeat found the peer dead).
    public var onClose: ((WebSocketConnection, UInt16, String) -> Void)?
    /// Client only: the connection never opened (refused, DNS, handshake rejected, cancelled).
    /// Every client connection ends with exactly one of `onConnectFailure` or `onClose`.
    public var onConnectFailure: ((WebSocketConnection, String) -> Void)?

    public init(onOpen: ((WebSocketConnection) -> Void)? = nil,
                onText: ((WebSocketConnection, [UInt8]) -> Void)? = nil,
                onBinary: ((WebSocketConnection, [UInt8]) -> Void)? = nil,
                onMessageTooBig: ((WebSocketConnection, Int) -> Void)? = nil,
                onPong: ((WebSocketConnection) -> Void)? = nil,
                onDrained: ((WebSocketConnection) -> Void)? = nil,
                onClose: ((WebSocketConnection, UInt16, String) -> Void)? = nil,
                onConnectFailure: ((WebSocketConnection, String) -> Void)? = nil) {
        self.onOpen = onOpen
        self.onText = onText
        self.onBinary = onBinary
        self.onMessageTooBig = onMessageTooBig
        self.onPong = onPong
        self.onDrained = onDrained
        self.onClose = onClose
        self.onConnectFailure = onConnectFailure
    }
}

/// Limits and timings of one connection.
public struct ConnectionLimits: Sendable {
    /// Largest incoming message accepted (bytes, after reassembly); larger → close 1009.
    public var maxMessageSize: Int = 1 << 20
    /// Cap on bytes queued for sending; `send` reports `.queueFull` beyond it. A single message
    /// larger than the cap is still accepted when the queue is empty.
    public var maxQueuedBytes: Int = 16 << 20
    /// Ping after this much silence, hang up when nothing follows; nil disables.
    public var heartbeat: Heartbeat? = Heartbeat(idle: .seconds(30), timeout: .seconds(15))
    /// How long an orderly close may take (flushing the queue, close handshake) before the
    /// connection is dropped.
    public var closeTimeout: Duration = .seconds(5)
    /// Bytes written per WRITEABLE callback at most (several frames are batched up to this).
    public var writeBatchBytes: Int = 256 << 10

    public init() {}
}

public final class WebSocketConnection {
    public enum State: Sendable, Equatable {
        case connecting, open, closing, closed
    }

    public enum SendResult: Sendable, Equatable {
        /// Queued; it will be written when the socket is writable.
        case queued
        /// Not queued: the outgoing queue is at its byte cap (a slow consumer; typically close
        /// with 1008 and let it catch up after reconnecting).
        case queueFull
        /// Not queued: the connection is closing or closed.
        case closed
    }

    /// Unique per loop, increasing.
    public let id: UInt64
    public let isClient: Bool
    /// Server side: the upgrade request (path = room, query, headers, peer). Client side: what
    /// was requested.
    public let request: RequestHead
    public internal(set) var state: State
    public var handlers: WebSocketHandlers
    /// Free for the layer above (session, room membership).
    public var userInfo: AnyObject?
    public var limits: ConnectionLimits
    /// Bytes currently queued for sending (payload bytes).
    public private(set) var queuedBytes = 0
    /// The close code and reason once the connection has closed (see `WebSocketHandlers.onClose`).
    public private(set) var closeStatus: (code: UInt16, reason: String)?
    /// Which server accepted it (nil for clients).
    public internal(set) weak var server: WebSocketServer?

    weak var loop: EventLoop?
    var wsi: OpaquePointer?

    private var queue: [OutgoingMessage?] = []
    private var queueHead = 0

    private var rxBuffer: [UInt8] = []
    private var rxInMessage = false
    private var rxBinary = false
    private var rxRefused = false

    var localClose: (code: UInt16, reason: String)?
    var peerClose: (code: UInt16, reason: String)?
    private var closeFrameSent = false
    private(set) var wasOpened = false
    var endReported = false
    /// Heartbeat: when the peer was last heard from; when our unanswered PING was due (0: none).
    private var lastHeardNanos: UInt64 = 0
    private var pingDueNanos: UInt64 = 0
    private var pingWanted = false
    private var droppedByHeartbeat = false
    private var closeTimer: LoopTimer?
    private var clientScratch: UnsafeMutableRawPointer?
    private var clientScratchSize = 0

    /// Client side: extra upgrade headers (lower-case names with ':').
    var clientHeaders: [(String, String)] = []
    /// Client side, wss://: `host:port` for messages; nil for ws://.
    var tlsTarget: String?
    /// Client side, wss:// with `ClientTLS.insecure`: every certificate passes.
    var insecureTLS = false
    /// What OpenSSL found wrong with the server's certificate (e.g. "self-signed certificate").
    var certificateProblem: String?
    /// Client side: the attempt failed because the server's certificate was not trusted (or not
    /// for this host). Retrying cannot help: trust has to be configured.
    public internal(set) var certificateRejected = false

    init(id: UInt64, isClient: Bool, request: RequestHead, loop: EventLoop, limits: ConnectionLimits,
         handlers: WebSocketHandlers) {
        self.id = id
        self.isClient = isClient
        self.request = request
        self.loop = loop
        self.limits = limits
        self.handlers = handlers
        self.state = .connecting
    }

    deinit {
        clientScratch?.deallocate()
    }

    /// Number of messages waiting in the outgoing queue.
    public var queuedMessages: Int { queue.count - queueHead }

    // MARK: Sending

    /// Queues a text message (the string's UTF-8).
    @discardableResult
    public func send(text: String) -> SendResult {
        if let refusal = refusal(for: text.utf8.count) { return refusal }
        return enqueue(OutgoingMessage(string: text, exclusive: true))
    }

    /// Queues a text message; `bytes` must be UTF-8.
    @discardableResult
    public func send(text bytes: some Sequence<UInt8>) -> SendResult {
        let array = Array(bytes)
        if let refusal = refusal(for: array.count) { return refusal }
        return enqueue(OutgoingMessage(sequence: array, binary: false, exclusive: true))
    }

    /// Queues a binary message.
    @discardableResult
    public func send(binary bytes: some Sequence<UInt8>) -> SendResult {
        let array = Array(bytes)
        if let refusal = refusal(for: array.count) { return refusal }
        return enqueue(OutgoingMessage(sequence: array, binary: true, exclusive: true))
    }

    /// Queues a prepared message (may be shared by many connections).
    @discardableResult
    public func send(_ message: OutgoingMessage) -> SendResult {
        if let refusal = refusal(for: message.count) { return refusal }
        return enqueue(message)
    }

    private func refusal(for count: Int) -> SendResult? {
        switch state {
        case .closing, .closed: return .closed
        case .connecting, .open: break
        }
        if queueHead < queue.count && queuedBytes + count > limits.maxQueuedBytes { return .queueFull }
        return nil
    }

    private func enqueue(_ m: OutgoingMessage) -> SendResult {
        let wasEmpty = queueHead == queue.count
        queue.append(m)
        queuedBytes += m.count
        if wasEmpty, state == .open, let wsi { lws_callback_on_writable(wsi) }
        return .queued
    }

    // MARK: Closing

    /// Closes the connection: the frames already queued are written first (unless
    /// `discardQueued`), then a close frame with `code` and `reason` (at most 123 bytes of UTF-8).
    /// Later sends are refused, incoming messages are no longer delivered. If the peer does not
    /// complete the close within `limits.closeTimeout`, the connection is dropped.
    /// `onClose` follows. On a client still connecting, this cancels the attempt
    /// (`onConnectFailure` with "cancelled").
    public func close(code: UInt16 = CloseCode.normal, reason: String = "", discardQueued: Bool = false) {
        if discardQueued { dropQueue() }
        switch state {
        case .closed, .closing:
            return
        case .connecting:
            localClose = (code, reason)
            state = .closing
            if let wsi { lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC) }
        case .open:
            localClose = (code, String(decoding: Array(reason.utf8.prefix(123)), as: UTF8.self))
            state = .closing
            rxBuffer = []
            if let wsi { lws_callback_on_writable(wsi) }
            // libwebsockets replaces a wsi's timeout with its own (5 s close-ack wait), so the
            // close deadline is a loop timer.
            closeTimer = loop?.schedule(after: limits.closeTimeout) { [weak self] in
                guard let self, self.state != .closed, let wsi = self.wsi else { return }
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
            }
        }
    }

    /// Stops reading from the peer (TCP back-pressure) until `resumeReading()`.
    public func pauseReading() {
        if let wsi, state == .open || state == .closing { lws_rx_flow_control(wsi, 0) }
    }

    public func resumeReading() {
        if let wsi, state == .open || state == .closing { lws_rx_flow_control(wsi, 1) }
    }

    private func dropQueue() {
        queue.removeAll()
        queueHead = 0
        queuedBytes = 0
    }

    // MARK: Events from the callback

    func didOpen() {
        guard state == .connecting else { return }
        state = .open
        wasOpened = true
        lastHeardNanos = monotonicNanoseconds()
        if let hb = limits.heartbeat { loop?.ensureHeartbeatSweep(hb) }
        handlers.onOpen?(self)
        if queueHead < queue.count, let wsi, state == .open { lws_callback_on_writable(wsi) }
    }

    func didReceive(_ data: UnsafeMutableRawPointer?, _ len: Int, wsi: OpaquePointer) {
        guard state == .open else { return }
        if limits.heartbeat != nil {
            lastHeardNanos = monotonicNanoseconds()
            pingDueNanos = 0
        }
        if !rxInMessage {
            rxInMessage = true
            rxRefused = false
            rxBinary = lws_frame_is_binary(wsi) != 0
        }
        let final = lws_is_final_fragment(wsi) != 0
        if final { rxInMessage = false }
        if rxRefused { return }
        if rxBuffer.isEmpty && final {
            // The whole message in one callback: deliver straight from lws' buffer.
            if len > limits.maxMessageSize { refuse(size: len); return }
            deliver(bytesArray(data, len))
            return
        }
        if rxBuffer.count + len > limits.maxMessageSize {
            refuse(size: rxBuffer.count + len)
            return
        }
        if let data, len > 0 {
            rxBuffer.append(contentsOf: UnsafeRawBufferPointer(start: data, count: len))
        }
        if final {
            let message = rxBuffer
            rxBuffer = []
            deliver(message)
        }
    }

    private func deliver(_ message: [UInt8]) {
        if rxBinary {
            handlers.onBinary?(self, message)
        } else {
            handlers.onText?(self, message)
        }
    }

    private func refuse(size: Int) {
        rxRefused = true
        rxBuffer = []
        handlers.onMessageTooBig?(self, size)
        close(code: CloseCode.messageTooBig, reason: "message too big")
    }

    func didReceivePong() {
        lastHeardNanos = monotonicNanoseconds()
        pingDueNanos = 0
        handlers.onPong?(self)
    }

    /// Called by the loop's heartbeat sweep.
    func heartbeatCheck(now: UInt64) {
        guard state == .open || state == .closing, let hb = limits.heartbeat, let wsi, !droppedByHeartbeat else {
            return
        }
        if pingDueNanos != 0 {
            if now &- pingDueNanos >= hb.timeoutNanos {
                droppedByHeartbeat = true
                lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
            }
        } else if state == .open && now &- lastHeardNanos >= hb.idleNanos {
            pingDueNanos = now
            pingWanted = true
            lws_callback_on_writable(wsi)
        }
    }

    func peerInitiatedClose(_ data: UnsafeMutableRawPointer?, _ len: Int) {
        var code = CloseCode.noStatus
        var reason = ""
        if let data, len >= 2 {
            let b = data.assumingMemoryBound(to: UInt8.self)
            code = UInt16(b[0]) << 8 | UInt16(b[1])
            if len > 2 {
                reason = String(decoding: UnsafeBufferPointer(start: b + 2, count: len - 2), as: UTF8.self)
            }
        }
        peerClose = (code, reason)
        // libwebsockets answers the close right away; nothing queued can follow it.
        if state == .open {
            state = .closing
            dropQueue()
        }
    }

    /// WRITEABLE: write queued frames (batched), then the close frame if a close is pending.
    func writable(wsi: OpaquePointer) -> Int32 {
        // libwebsockets keeps calling WRITEABLE while it waits for the close ack; returning -1
        // again would drop the socket and lose unread data (NOTES trap 1).
        if closeFrameSent { return 0 }
        guard state == .open || state == .closing else { return 0 }
        if pingWanted {
            pingWanted = false
            // A PING with a payload: libwebsockets 4.1 drops empty PONGs before the callback. The
            // payload is ASCII (16 hex digits): libwebsockets 4.1 leaves its UTF-8 check of the
            // last text message switched on for control frames, so binary bytes in a PING (or
            // the PONG echoing it) get the connection closed with 1007 "bad utf8".
            var payload = [UInt8](repeating: 0, count: lwsPre + 16)
            let hex = Array("0123456789abcdef".utf8)
            for i in 0..<16 {
                payload[lwsPre + i] = hex[Int((pingDueNanos >> UInt64(60 - 4 * i)) & 0xF)]
            }
            let n = payload.withUnsafeMutableBufferPointer { b in
                lws_write(wsi, b.baseAddress! + lwsPre, 16, LWS_WRITE_PING)
            }
            if n < 0 { return -1 }
        }
        var written = 0
        var writes = 0
        while queueHead < queue.count {
            if writes > 0 && (written >= limits.writeBatchBytes || lws_send_pipe_choked(wsi) != 0) { break }
            let n: Int
            if !isClient && queuedMessages > 1, let batch = loop?.frameBatch {
                n = writeCoalesced(wsi: wsi, batch: batch)
            } else {
                n = writeOne(wsi: wsi)
            }
            if n < 0 { return -1 }
            written += n
            writes += 1
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: queue.count <= 4096)
            queueHead = 0
        } else if queueHead >= 1024 && queueHead * 2 >= queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        if queueHead < queue.count {
            lws_callback_on_writable(wsi)
            return 0
        }
        if state == .closing, let lc = localClose {
            var reason = Array(lc.reason.utf8)
            reason.withUnsafeMutableBufferPointer { b in
                lws_close_reason(wsi, lws_close_status(rawValue: UInt32(lc.code)), b.baseAddress, b.count)
            }
            closeFrameSent = true
            return -1
        }
        if writes > 0 && state == .open { handlers.onDrained?(self) }
        return 0
    }

    /// Writes the next queued message with lws_write (framing, and masking on clients, by lws).
    /// Returns the payload bytes written or -1.
    private func writeOne(wsi: OpaquePointer) -> Int {
        guard let m = queue[queueHead] else { popFront(0); return 0 }
        let kind = m.isBinary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT
        let n: Int32
        if isClient && !m.exclusive {
            // lws masks client payloads in place: never mask a buffer other connections share.
            let need = lwsPre + max(m.count, 1)
            if clientScratchSize < need {
                clientScratch?.deallocate()
                clientScratch = UnsafeMutableRawPointer.allocate(byteCount: need, alignment: 16)
                clientScratchSize = need
            }
            let p = clientScratch! + lwsPre
            p.copyMemory(from: UnsafeRawPointer(m.payload), byteCount: m.count)
            n = lws_write(wsi, p.assumingMemoryBound(to: UInt8.self), m.count, kind)
        } else {
            n = lws_write(wsi, m.payload, m.count, kind)
        }
        if n < 0 { return -1 }
        popFront(m.count)
        return m.count
    }

    /// Server side: frames several queued messages into one buffer and hands it to lws as raw
    /// bytes (LWS_WRITE_RAW bypasses lws' framing), so a burst of small messages costs one
    /// send() instead of one per message. Server frames are unmasked and we use no extensions,
    /// so the framing is just a 2-, 4- or 10-byte header. Returns payload bytes written or -1.
    private func writeCoalesced(wsi: OpaquePointer, batch: FrameBatch) -> Int {
        let base = batch.buffer + lwsPre
        var filled = 0
        var payloadBytes = 0
        while queueHead < queue.count {
            guard let m = queue[queueHead] else { popFront(0); continue }
            let header = m.count < 126 ? 2 : (m.count < 65536 ? 4 : 10)
            if filled + header + m.count > batch.capacity {
                if filled == 0 { return writeOne(wsi: wsi) }  // too big to batch: lws frames it
                break
            }
            let p = base.assumingMemoryBound(to: UInt8.self) + filled
            p[0] = 0x80 | (m.isBinary ? 0x02 : 0x01)
            switch header {
            case 2:
                p[1] = UInt8(m.count)
            case 4:
                p[1] = 126
                p[2] = UInt8(truncatingIfNeeded: m.count >> 8)
                p[3] = UInt8(truncatingIfNeeded: m.count)
            default:
                p[1] = 127
                for i in 0..<8 { p[2 + i] = UInt8(truncatingIfNeeded: UInt64(m.count) >> (56 - 8 * UInt64(i))) }
            }
            (base + filled + header).copyMemory(from: UnsafeRawPointer(m.payload), byteCount: m.count)
            filled += header + m.count
            payloadBytes += m.count
            popFront(m.count)
            if payloadBytes >= limits.writeBatchBytes { break }
        }
        if filled == 0 { return 0 }
        // LWS_WRITE_RAW is `#define LWS_WRITE_RAW LWS_WRITE_HTTP` (does not import); the ws role
        // sends HTTP-typed writes as they are.
        let n = lws_write(wsi, base.assumingMemoryBound(to: UInt8.self), filled, LWS_WRITE_HTTP)
        return n < 0 ? -1 : payloadBytes
    }

    private func popFront(_ bytes: Int) {
        queue[queueHead] = nil
        queueHead += 1
        queuedBytes -= bytes
    }

    /// CLOSED / CLIENT_CLOSED, or teardown: the connection is gone.
    func didClose() {
        guard state != .closed else { return }
        state = .closed
        closeTimer?.cancel()
        closeTimer = nil
        dropQueue()
        rxBuffer = []
        let status: (code: UInt16, reason: String)
        if let lc = localClose, closeFrameSent || peerClose == nil {
            status = lc
        } else if let pc = peerClose {
            status = pc
        } else if droppedByHeartbeat {
            status = (CloseCode.abnormal, "heartbeat timeout")
        } else {
            status = (CloseCode.abnormal, "")
        }
        closeStatus = status
        if wasOpened && !endReported {
            endReported = true
            handlers.onClose?(self, status.code, status.reason)
        }
    }

    /// Client: the attempt failed before the connection opened.
    func connectFailed(_ message: String) {
        let wasCancelled = localClose != nil
        state = .closed
        dropQueue()
        guard !wasOpened, !endReported else { return }
        endReported = true
        closeStatus = (CloseCode.abnormal, message)
        let text = wasCancelled ? "cancelled" : message
        handlers.onConnectFailure?(self, text)
    }

    /// The wsi is being freed.
    func detach() {
        wsi = nil
    }
}
