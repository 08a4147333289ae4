import CollabClient
import CollabOT
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

/// How `collab-join` runs: what the command line said.
public struct JoinOptions: Sendable {
    /// `ws://HOST:PORT/ROOM`, one per server instance that serves the room (all the same room):
    /// the first is tried first, and each lost or failed connection moves on to the next.
    public var urls: [String]
    public var user: String
    public var name: String?
    public var token: String?
    /// Identifies this process to the server across reconnects (for the (client, seq) dedupe).
    public var clientID: String
    /// Print the document's text once joined, and exit.
    public var snapshot = false
    /// Do not read stdin: stay in the room until a signal or a fatal error.
    public var listen = false
    /// Stop reading input at the first bad line, deliver what was accepted, exit 65.
    public var strict = false
    /// No connection logs on stderr (problems are still reported).
    public var quiet = false
    public var maxLineLength = LineSplitter.defaultMaxLineLength
    /// Reconnection attempts after a failed one before giving up (nil: unlimited).
    public var maxRetries: Int?
    /// How long to wait at end of input for the server to acknowledge every local edit.
    public var drainTimeout: Duration = .seconds(10)
    public var backoff = Backoff()
    /// Delays before sending an op again that the server answered with `unavailable` (its Redis
    /// is down): short at first, since such outages are often a restart, and capped low, since
    /// the connection is up and the op should commit soon after the storage is back.
    public var resubmitBackoff = Backoff(initial: .milliseconds(100), cap: .seconds(5))
    /// Largest message accepted from the server (a welcome carries the whole document).
    public var maxMessageSize = 256 << 20
    /// Ping the server after this much silence and reconnect when no pong follows in `timeout`.
    public var heartbeat: Heartbeat? = Heartbeat(idle: .seconds(30), timeout: .seconds(15))
    public var inputFD: Int32 = STDIN_FILENO
    /// How wss:// URLs check the server (--ca-file, --insecure).
    public var tls = ClientTLS()

    public init(urls: [String], user: String = JoinOptions.defaultUser(), clientID: String = JoinOptions.randomClientID()) {
        self.urls = urls
        self.user = user
        self.clientID = clientID
    }

    /// `$USER`, else `anonymous`.
    public static func defaultUser() -> String {
        if let u = getenv("USER"), u.pointee != 0 { return String(cString: u) }
        return "anonymous"
    }

    /// The token to send: `--token` if given, else `$COLLAB_TOKEN` if set.
    public static func token(_ option: String?) -> String? {
        if let option { return option }
        if let t = getenv("COLLAB_TOKEN"), t.pointee != 0 { return String(cString: t) }
        return nil
    }

    /// A random id for this process: 16 hex digits.
    public static func randomClientID() -> String {
        let n = UInt64.random(in: 0 ... .max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Checks the URL: `ws://` or `wss://` with a room path. Returns the reason when it is not usable.
    public static func problem(with url: String) -> String? {
        switch roomPath(of: url) {
        case .failure(let problem): return problem.description
        case .success: return nil
        }
    }

    /// Checks the URLs: each usable, and all naming the same room (failover moves between
    /// instances of one room; a client that changed rooms on the way would mix two histories).
    public static func problem(with urls: [String]) -> String? {
        guard let first = urls.first else { return "give the URL of the room, as in ws://HOST:PORT/ROOM" }
        var room = ""
        for (i, url) in urls.enumerated() {
            switch roomPath(of: url) {
            case .failure(let problem):
                return problem.description
            case .success(let path) where i == 0:
                room = path
            case .success(let path) where path != room:
                return "every URL must name the same room: \(first) names \(room), \(url) names \(path)"
            case .success:
                continue
            }
        }
        return nil
    }

    /// The room a URL names: its path without the query and the leading `/`, as the server reads it.
    static func roomPath(of url: String) -> Result<String, URLProblem> {
        let parsed: WebSocketURL
        do { parsed = try WebSocketURL(parsing: url) } catch { return .failure(URLProblem(description: "\(error)")) }
        var path = Substring(parsed.pathAndQuery)
        if let q = path.firstIndex(of: "?") { path = path[..<q] }
        if path.drop(while: { $0 == "/" }).isEmpty {
            return .failure(URLProblem(description: "the URL must name a room, as in ws://HOST:PORT/ROOM: \(url)"))
        }
        return .success(String(path.dropFirst()))
    }

    struct URLProblem: Error, CustomStringConvertible {
        var description: String
    }
}

/// The logic of `collab-join`: a `ClientSession` (the OT client, sans-I/O) driven by one event
/// loop that holds the WebSocket, stdin (adopted as a raw descriptor) and the timers. Stdout gets
/// every message of the room as NDJSON, own edits included once committed, so it is the room's
/// history in revision order.
///
/// Lifecycle: connect → hello → welcome; stdin lines are read only once the first welcome gave
/// the document (reading is paused before). On any drop it reconnects with backoff, to the next of
/// its URLs (failover between instances of one room), and catches up with `since`; the session
/// resubmits what was in flight. An op the server answers with `unavailable` or `rate-limited` is
/// sent again after its own, shorter backoff, on the same connection. At end of input it waits
/// until every local edit is acknowledged (bounded by `drainTimeout`), sends `leave`, closes and
/// exits.
/// Loop thread only.
public final class JoinTool {
    public let options: JoinOptions
    public let diagnostics: Diagnostics
    public let output: LineWriter

    var loop: EventLoop!
    var session: ClientSession
    /// The connection to the room, with its reconnection and failover.
    var link: RoomConnection!
    /// Set once the tool decided to end: the exit status. The loop stops when the connection is
    /// closed (or right away without one).
    var exitStatus: Int32?
    var stopTimer: LoopTimer?
    var flushTimer: LoopTimer?

    /// Consecutive `unavailable` answers since the last ack or connection.
    var resubmitAttempts = 0
    var resubmitTimer: LoopTimer?
    /// The seq of the in-flight op when the server last refused a frame as too large.
    var tooLargeSeq: Int?
    /// A too-large refusal was already counted on the current connection.
    var tooLargeCounted = false

    // Input.
    var input: LoopInput?
    var splitter: LineSplitter
    /// Bytes read before the first welcome (only at a hang-up: reading is paused until then).
    var held: [UInt8] = []
    /// stdin reached its end (the descriptor left the loop).
    var inputClosed = false
    /// Every input line has been handed to the session (or input stopped under --strict).
    var inputDone = false
    /// A bad line under --strict: no more input; exit 65 once the accepted edits are delivered.
    var strictFailure = false
    var drainTimer: LoopTimer?

    public init(options: JoinOptions, diagnostics: Diagnostics, output: LineWriter) {
        self.options = options
        self.diagnostics = diagnostics
        self.output = output
        session = ClientSession(user: options.user, name: options.name, token: options.token, clientID: options.clientID)
        splitter = LineSplitter(maxLineLength: options.maxLineLength)
    }

    /// Runs until the session ends; returns the exit status: 0 done, 64 bad URL or room,
    /// 65 bad input under --strict, 66 unusable --ca-file, 69 unreachable (retries exhausted, the
    /// server's certificate not trusted, or edits not acknowledged within the drain timeout),
    /// 74 stdout failed, 77 refused by the server, 128+N signal N.
    public func run() -> Int32 {
        if let problem = JoinOptions.problem(with: options.urls) {
            diagnostics.error(problem)
            return ExitStatus.usage.rawValue
        }
        if let status = options.tls.prepare(diagnostics) { return status }
        JoinTool.openMissingStandardDescriptors()
        guard let made = EventLoop.forTool(diagnostics, interrupted: { [weak self] in self?.interrupted($0) }) else {
            return ExitStatus.software.rawValue
        }
        loop = made
        link = RoomConnection(loop: loop, urls: options.urls, clientOptions: clientOptions, backoff: options.backoff,
                              maxRetries: options.maxRetries, note: { [weak self] in self?.note($0) })
        link.onOpen = { [weak self] c in self?.opened(c) }
        link.onText = { [weak self] _, bytes in self?.received(bytes) }
        link.onMessageTooBig = { [weak self] _, size in self?.serverMessageTooBig(size) }
        link.onClose = { [weak self] code, reason in self?.closed(code: code, reason: reason) }
        link.onConnectFailure = { [weak self] message in self?.connectFailed(message) }
        if !options.snapshot && !options.listen { openInput() }
        connect()
        if exitStatus == nil || link.connection != nil { loop.run() } else { loop.shutdown() }
        output.flush()
        link = nil
        loop = nil
        return exitStatus ?? ExitStatus.software.rawValue
    }

    /// A process started with stdin, stdout or stderr closed would otherwise hand that number
    /// to the next file opened (libwebsockets opens /dev/urandom) and read it as input.
    static func openMissingStandardDescriptors() {
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) < 0 && errno == EBADF {
            let null = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY)
            if null >= 0 && null != fd {
                dup2(null, fd)
                close(null)
            }
        }
    }

    // MARK: Ending

    /// Ends the session with `status`: a polite `leave` and a normal close when connected, then
    /// the loop stops (at the latest after a short grace period).
    func finish(_ status: Int32, polite: Bool = true) {
        guard exitStatus == nil else { return }
        exitStatus = status
        link.retryTimer?.cancel()
        resubmitTimer?.cancel()
        drainTimer?.cancel()
        input?.pause()
        guard let c = link.connection else {
            loop.stop()
            return
        }
        if c.state == .open {
            if polite { c.send(text: session.leave().json) }
            c.close(code: CloseCode.normal, reason: "bye")
            // onClose stops the loop; this bounds a peer that never completes the close.
            stopTimer = loop.schedule(after: .seconds(3)) { [weak self] in self?.loop.stop() }
        } else {
            c.close() // cancels an attempt still connecting
            loop.stop()
        }
    }

    func interrupted(_ signo: Int32) {
        if exitStatus != nil {
            loop.stop() // a second signal: no more waiting
            return
        }
        if session.hasDocument && !session.isDrained {
            diagnostics.warning("interrupted: local edits not yet acknowledged are dropped")
        }
        note("interrupted (signal \(signo)): leaving")
        finish(128 + signo)
    }

    func note(_ text: String) {
        if !options.quiet { diagnostics.note(text) }
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }

    // MARK: Connection

    var clientOptions: ClientOptions {
        var o = ClientOptions()
        o.limits.maxMessageSize = options.maxMessageSize
        o.limits.heartbeat = options.heartbeat
        o.limits.closeTimeout = .seconds(2)
        o.tls = options.tls
        return o
    }

    func connect() {
        do { try link.connect() } catch {
            diagnostics.error("\(error)")
            finish(ExitStatus.usage.rawValue)
        }
    }

    /// The transport closes with 1009 after this; that close is ours, not a refusal of our op.
    func serverMessageTooBig(_ size: Int) {
        tooLargeCounted = true
        diagnostics.warning("the server sent a message of \(size) bytes, more than this client accepts (\(options.maxMessageSize)); reconnecting")
    }

    func opened(_ c: WebSocketConnection) {
        tooLargeCounted = false
        resubmitAttempts = 0
        c.send(text: session.connected().json)
    }

    func received(_ bytes: [UInt8]) {
        guard exitStatus == nil else { return }
        let message: Message
        do throws(MessageError) {
            message = try bytes.withUnsafeBufferPointer { b throws(MessageError) in try Message.decode(b) }
        } catch {
            diagnostics.warning("the server sent an invalid message (\(error)); ignored")
            return
        }
        let hadDocument = session.hasDocument
        let out = session.received(message)
        if message.type == .ack { resubmitAttempts = 0 } // the server commits again
        if message.type == .welcome {
            link.joined()
            let what = message.doc != nil ? "document of \(session.document.count) characters"
                : "catching up from revision \(message.since ?? 0)"
            note("joined room \(message.room ?? "?") at revision \(message.rev ?? 0) (\(what))")
        }
        if options.snapshot {
            if session.hasDocument {
                session.document.forEachUTF8Chunk { output.writeRaw($0) }
                output.flush()
                if checkOutput() { finish(ExitStatus.ok.rawValue) }
            } else if let fatal = out.fatal {
                serverFatal(fatal)
            }
            return
        }
        carryOut(out, line: nil)
        if !hadDocument && session.hasDocument { documentArrived() }
        checkDrained()
    }

    func closed(code: UInt16, reason: String) {
        session.disconnected()
        resubmitTimer?.cancel() // the reconnect's catch-up resubmits
        if exitStatus != nil {
            stopTimer?.cancel()
            loop.stop()
            return
        }
        note("disconnected (\(reason.isEmpty ? "code \(code)" : "code \(code), \(reason)"))")
        if code == CloseCode.messageTooBig && refusedAsTooLarge() { return }
        if isDrainedAtEnd {
            // Nothing left to deliver: no need to come back.
            finish(strictFailure ? ExitStatus.dataError.rawValue : ExitStatus.ok.rawValue)
            return
        }
        scheduleReconnect()
    }

    func connectFailed(_ message: String) {
        if exitStatus != nil {
            loop.stop()
            return
        }
        if link.certificateRejected {
            diagnostics.error("\(message); \(ClientTLS.hint)")
            finish(ExitStatus.unavailable.rawValue)
            return
        }
        note("cannot connect to \(link.currentURL): \(message)")
        scheduleReconnect()
    }

    func scheduleReconnect() {
        if let giveUp = link.retry() {
            diagnostics.error(giveUp)
            finish(ExitStatus.unavailable.rawValue)
        }
    }

    /// The server refused a frame as too large (error `too-large`, or close 1009). An event or
    /// presence message is not sent again, so reconnecting is enough; but an op stays in flight
    /// and would be resubmitted forever: the second refusal of the same op ends the tool.
    func refusedAsTooLarge() -> Bool {
        // The error message and the close 1009 that follows are one refusal.
        guard !tooLargeCounted, let seq = session.ot?.inFlight?.seq else { return false }
        tooLargeCounted = true
        if tooLargeSeq == seq {
            diagnostics.error("the server refuses the pending edit (seq \(seq)) as too large (see its --max-message); giving up")
            finish(ExitStatus.dataError.rawValue, polite: false)
            return true
        }
        tooLargeSeq = seq
        return false
    }

    /// A fatal `error` from the server (or an unrecoverable state of the session).
    func serverFatal(_ m: Message) {
        let text = m.message ?? m.code ?? "fatal error"
        switch m.code {
        case ErrorCode.unauthorized.rawValue?, ErrorCode.forbidden.rawValue?:
            diagnostics.error("refused by the server: \(text)")
            finish(ExitStatus.noPermission.rawValue, polite: false)
        case ErrorCode.badRoom.rawValue?:
            diagnostics.error(text)
            finish(ExitStatus.usage.rawValue, polite: false)
        default:
            if m.code == ErrorCode.tooLarge.rawValue && refusedAsTooLarge() { return }
            diagnostics.warning("server error (\(m.code ?? "?")): \(text); reconnecting")
            // The server closes after a fatal error; closing too makes sure we come back.
            link.connection?.close(code: CloseCode.normal, reason: "reconnecting")
        }
    }

    /// The server could not commit the in-flight op `seq` for now and kept the connection: send
    /// it again after a backoff. A stale timer (the op was acknowledged, or the connection
    /// changed and the catch-up resent it) finds nothing to do in `resubmit`.
    func scheduleResubmit(_ seq: Int, code: String? = nil) {
        guard exitStatus == nil else { return }
        resubmitAttempts += 1
        let delay = options.resubmitBackoff.delay(attempt: resubmitAttempts)
        let why = code == ErrorCode.rateLimited.rawValue ? "rate-limited by the server" : "server unavailable"
        note("\(why) for seq \(seq); retrying in \(Self.milliseconds(delay)) ms")
        resubmitTimer?.cancel()
        resubmitTimer = loop.schedule(after: delay) { [weak self] in
            guard let self, self.exitStatus == nil else { return }
            self.resubmitTimer = nil
            self.carryOut(self.session.resubmit(seq: seq), line: nil)
        }
    }

    // MARK: Session output

    /// Carries out what the session asked for: messages to the server and to stdout, problems
    /// on stderr. `line` is the input line that caused it, if any.
    func carryOut(_ out: ClientSession.Output, line: Int?) {
        for m in out.print { output.write(m) }
        if !out.print.isEmpty { scheduleFlush() }
        if !out.send.isEmpty, let c = link.connection, c.state == .open {
            for m in out.send { c.send(text: m.json) }
        }
        for p in out.problems {
            if let line {
                lineProblem(LineError(line: line, reason: p))
            } else {
                diagnostics.warning(p)
            }
        }
        _ = checkOutput()
        if let seq = out.retry { scheduleResubmit(seq, code: out.retryCode) }
        if let fatal = out.fatal, exitStatus == nil { serverFatal(fatal) }
    }

    /// Output to a regular file is buffered by `LineWriter`; a long-running session still
    /// writes it out within a moment of each message.
    func scheduleFlush() {
        guard !output.flushEachLine, flushTimer == nil else { return }
        flushTimer = loop.schedule(after: .milliseconds(100)) { [weak self] in
            guard let self else { return }
            self.flushTimer = nil
            self.output.flush()
            _ = self.checkOutput()
        }
    }

    /// Stdout failed: a reader that went away (EPIPE) ends the session quietly, anything else
    /// with status 74. Returns whether stdout is fine.
    func checkOutput() -> Bool {
        guard let status = ExitStatus.afterFailure(of: output, diagnostics) else { return true }
        finish(status.rawValue)
        return false
    }

    // MARK: Input

    func openInput() {
        // Paused until the first welcome gives a document to edit.
        let reader = LoopInput(loop: loop, fd: options.inputFD, paused: true, diagnostics: diagnostics,
                               onBytes: { [weak self] in self?.received($0) },
                               onEnd: { [weak self] in self?.inputEnded() })
        // stdin that is closed or cannot be polled is no input.
        if reader.isClosed { inputClosed = true } else { input = reader }
    }

    func received(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard exitStatus == nil, !strictFailure else { return }
        consume(bytes)
    }

    /// End of input (the rest of a hung-up pipe has been read by then).
    func inputEnded() {
        guard exitStatus == nil, !inputClosed else { return }
        inputClosed = true
        input = nil
        // The drain timeout runs from the end of input, joined or not: a script piping edits in
        // learns within that time that they could not be delivered.
        startDrainTimer()
        if session.hasDocument { endOfInput() }
    }

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        if session.hasDocument {
            splitter.feed(bytes, line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
        } else {
            held.append(contentsOf: bytes)
        }
    }

    /// The first welcome: the held input (if any) goes first, then stdin is read.
    func documentArrived() {
        if !held.isEmpty {
            let bytes = held
            held = []
            bytes.withUnsafeBufferPointer { consume($0) }
        }
        if inputClosed {
            endOfInput()
        } else if !strictFailure {
            input?.resume()
        }
    }

    func handleLine(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard !strictFailure, exitStatus == nil else { return }
        let message: Message
        switch decodeInputLine(number, bytes) {
        case .success(let m): message = m
        case .failure(let problem):
            lineProblem(problem)
            return
        }
        carryOut(session.input(message), line: number)
        checkDrained()
    }

    /// A bad input line: reported; under --strict, input stops (what was accepted is still
    /// delivered) and the exit status will be 65.
    func lineProblem(_ problem: LineError) {
        diagnostics.error(problem.description)
        guard options.strict, !strictFailure else { return }
        strictFailure = true
        input?.pause()
        endOfInput()
    }

    /// No more input: deliver every local edit (bounded by the drain timeout), then leave.
    func endOfInput() {
        guard !inputDone else { return }
        inputDone = true
        if !strictFailure {
            splitter.finish(line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
        }
        startDrainTimer()
        checkDrained()
    }

    func startDrainTimer() {
        guard drainTimer == nil, exitStatus == nil else { return }
        drainTimer = loop.schedule(after: options.drainTimeout) { [weak self] in self?.drainExpired() }
    }

    var isDrainedAtEnd: Bool { inputDone && session.hasDocument && session.isDrained }

    func checkDrained() {
        guard exitStatus == nil, isDrainedAtEnd else { return }
        finish(strictFailure ? ExitStatus.dataError.rawValue : ExitStatus.ok.rawValue)
    }

    func drainExpired() {
        guard exitStatus == nil else { return }
        let seconds = Double(options.drainTimeout.components.seconds)
            + Double(options.drainTimeout.components.attoseconds) / 1e18
        let shown = seconds == seconds.rounded() ? "\(Int(seconds))" : "\(seconds)"
        if session.hasDocument {
            diagnostics.error("local edits were not acknowledged within \(shown) s (--drain-timeout): \(link.lastFailure.isEmpty ? "the server did not answer" : link.lastFailure)")
        } else {
            diagnostics.error("could not join \(link.allURLs) within \(shown) s (--drain-timeout) to deliver the input: \(link.lastFailure.isEmpty ? "no answer" : link.lastFailure)")
        }
        finish(ExitStatus.unavailable.rawValue)
    }
}
