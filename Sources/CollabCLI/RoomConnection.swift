import CollabClient
import CollabTransport

/// The WebSocket link of a client tool to a room that keeps coming back: one connection at a
/// time to one of `urls` (instances of the same room), and after each loss or failed attempt a
/// new attempt to the next URL after a backoff, until `maxRetries` failures in a row. collab-join
/// and collab-tap share it; what to say in the hello and what to do with the traffic is theirs.
///
/// The owner learns of every end (`onClose`, `onConnectFailure`, with `connection` already nil)
/// and decides: `retry()` to come back, or end. Loop thread only.
final class RoomConnection {
    let loop: EventLoop
    let urls: [String]
    let clientOptions: ClientOptions
    let backoff: Backoff
    let maxRetries: Int?
    let note: (String) -> Void

    private(set) var connection: WebSocketConnection?
    /// Consecutive attempts that did not reach the room (reset by `joined()`).
    private(set) var failures = 0
    /// Why the last connection ended or attempt failed, for the owner's messages.
    var lastFailure = ""
    /// The last attempt failed on the server's certificate: a configuration error (--ca-file,
    /// --insecure), not an outage, so owners give up instead of retrying.
    private(set) var certificateRejected = false
    /// Connections that reached the room so far.
    private(set) var joins = 0
    /// The URL of the current (or next) attempt in `urls`.
    private(set) var urlIndex = 0
    var retryTimer: LoopTimer?

    var onOpen: (WebSocketConnection) -> Void = { _ in }
    var onText: (WebSocketConnection, [UInt8]) -> Void = { _, _ in }
    /// The transport closes with 1009 after it.
    var onMessageTooBig: (WebSocketConnection, Int) -> Void = { _, _ in }
    var onClose: (UInt16, String) -> Void = { _, _ in }
    var onConnectFailure: (String) -> Void = { _ in }

    init(loop: EventLoop, urls: [String], clientOptions: ClientOptions, backoff: Backoff, maxRetries: Int?,
         note: @escaping (String) -> Void) {
        precondition(!urls.isEmpty)
        self.loop = loop
        self.urls = urls
        self.clientOptions = clientOptions
        self.backoff = backoff
        self.maxRetries = maxRetries
        self.note = note
    }

    var currentURL: String { urls[urlIndex] }

    /// The URLs for messages about all of them.
    var allURLs: String {
        urls.count == 1 ? urls[0] : urls.dropLast().joined(separator: ", ") + " or " + urls.last!
    }

    /// Starts an attempt to the current URL. Throws only for a URL the transport cannot use.
    func connect() throws {
        let handlers = WebSocketHandlers(
            onOpen: { [weak self] c in self?.opened(c) },
            onText: { [weak self] c, bytes in
                guard let self, c === self.connection else { return }
                self.onText(c, bytes)
            },
            onMessageTooBig: { [weak self] c, size in
                guard let self, c === self.connection else { return }
                self.onMessageTooBig(c, size)
            },
            onClose: { [weak self] c, code, reason in self?.closed(c, code: code, reason: reason) },
            onConnectFailure: { [weak self] c, message in self?.connectFailed(c, message) })
        connection = try loop.connect(to: currentURL, options: clientOptions, handlers: handlers)
    }

    /// The room answered (a welcome): failures in a row start again from zero.
    func joined() {
        joins += 1
        failures = 0
    }

    /// No more attempts: cancels a pending retry, and an attempt still connecting.
    func cancel() {
        retryTimer?.cancel()
        if let c = connection, c.state != .open {
            connection = nil
            c.close()
        }
    }

    func opened(_ c: WebSocketConnection) {
        guard c === connection else { return }
        note(joins == 0 ? "connected to \(currentURL)" : "reconnected to \(currentURL)")
        onOpen(c)
    }

    func closed(_ c: WebSocketConnection, code: UInt16, reason: String) {
        guard c === connection else { return }
        connection = nil
        let why = reason.isEmpty ? "code \(code)" : "code \(code), \(reason)"
        lastFailure = "connection closed (\(why))"
        onClose(code, reason)
    }

    func connectFailed(_ c: WebSocketConnection, _ message: String) {
        guard c === connection else { return }
        connection = nil
        lastFailure = message
        certificateRejected = c.certificateRejected
        onConnectFailure(message)
    }

    /// Schedules the next attempt, to the next URL, round robin: the instance that was lost or
    /// refused is the least likely to answer now. The backoff is the same as with one URL, also
    /// for the first attempt after losing an established connection: that wait is at most
    /// 250 ms, and its jitter is what spreads the clients of a dead instance over the survivors
    /// instead of all landing at once. Failures count across URLs, so `maxRetries` bounds the
    /// whole round, not each instance. Returns the reason to give up when retries are exhausted
    /// (nothing is scheduled then).
    func retry() -> String? {
        failures += 1
        if let max = maxRetries, failures > max {
            return "cannot reach \(allURLs): \(lastFailure) (gave up after \(max) \(max == 1 ? "retry" : "retries"))"
        }
        urlIndex = (urlIndex + 1) % urls.count
        let delay = backoff.delay(attempt: failures)
        let of = maxRetries.map { " of \($0)" } ?? ""
        let target = urls.count > 1 ? ", to \(currentURL)" : ""
        note("retrying in \(JoinTool.milliseconds(delay)) ms (retry \(failures)\(of)\(target))")
        retryTimer = loop.schedule(after: delay) { [weak self] in self?.attempt() }
        return nil
    }

    func attempt() {
        do { try connect() } catch {
            // The URL was accepted before; a finished loop is the only way here.
            lastFailure = "\(error)"
            onConnectFailure(lastFailure)
        }
    }
}
