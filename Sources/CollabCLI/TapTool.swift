import CollabClient
import CollabProtocol
import CollabRedis
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

/// Where `collab-tap` reads traffic from.
public enum TapSource: Sendable, Equatable {
    /// A room of collab-serve, joined as an observer (several URLs: instances of the same room,
    /// for failover, as with collab-join).
    case websocket([String])
    /// The rooms' channels on the Redis that collab-serve --redis instances share.
    case redis(String)
    /// NDJSON on stdin (a pipe, or a capture file redirected in).
    case stdin
    /// NDJSON in a file (a capture).
    case file(String)

    /// Reads the positional arguments: URLs (ws:// or redis://), a path, `-` or nothing (stdin).
    public static func parse(_ arguments: [String]) -> Result<TapSource, TapUsageError> {
        guard let first = arguments.first else { return .success(.stdin) }
        let lower = first.lowercased()
        if lower.hasPrefix("ws://") || lower.hasPrefix("wss://") {
            if let problem = JoinOptions.problem(with: arguments) { return .failure(TapUsageError(problem)) }
            return .success(.websocket(arguments))
        }
        guard arguments.count == 1 else {
            return .failure(TapUsageError("give one source (several URLs only for instances of one room: ws://HOST:PORT/ROOM ...)"))
        }
        if lower.hasPrefix("redis://") {
            do { _ = try RedisURL(parsing: first) } catch { return .failure(TapUsageError("invalid Redis URL \(first): \(error)")) }
            return .success(.redis(first))
        }
        if lower.contains("://") {
            return .failure(TapUsageError("unknown source \(first): give ws://HOST:PORT/ROOM, redis://HOST:PORT, a capture file, or nothing for stdin"))
        }
        return .success(first == "-" ? .stdin : .file(first))
    }
}

public struct TapUsageError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How `collab-tap` runs: what the command line said.
public struct TapOptions: Sendable {
    public var source: TapSource = .stdin
    /// `--room`: globs; with a Redis source also what is subscribed to.
    public var rooms: [String] = []
    public var types: [String] = []
    public var users: [String] = []
    /// Redis: every room (pattern subscription on `collab:{*}:ch`).
    public var all = false
    public var raw = false
    public var stats = false
    /// Seconds between two `--stats` reports.
    public var interval: Double = 1
    /// `--replay FILE`: write the capture with its original timing (scaled by `speed`).
    public var replay: String?
    public var speed: Double = 1
    /// The observer's hello (a WebSocket source).
    public var user = JoinOptions.defaultUser()
    public var token: String?
    public var clientID = "tap-" + JoinOptions.randomClientID()
    public var maxRetries: Int?
    public var strict = false
    public var quiet = false
    public var maxLineLength = LineSplitter.defaultMaxLineLength
    public var backoff = Backoff()
    /// Largest message accepted from the server (a welcome carries the whole document).
    public var maxMessageSize = 256 << 20
    public var heartbeat: Heartbeat? = Heartbeat(idle: .seconds(30), timeout: .seconds(15))
    public var inputFD: Int32 = STDIN_FILENO
    /// How wss:// URLs check the server (--ca-file, --insecure).
    public var tls = ClientTLS()
    /// Colours and the redrawn table: decided from stdout by the executable, fixed by tests.
    public var terminal = false
    public var color = false

    public init() {}

    public var filter: TapFilter { TapFilter(types: types, users: users, rooms: rooms) }

    /// A usage problem with these options, or nil.
    public var problem: String? {
        if raw && stats { return "give --raw or --stats, not both" }
        if let problem = TapFilter.problem(withTypes: types) { return problem }
        if rooms.contains(where: { $0.isEmpty }) { return "a room name must not be empty" }
        if let m = maxRetries, m < 0 { return "--max-retries must be 0 or more" }
        if maxLineLength <= 0 { return "--max-line must be positive" }
        if !(interval > 0) || !interval.isFinite { return "--interval must be a positive number of seconds" }
        if speed.isNaN || speed < 0 { return "--speed must be 0 or more (0 or inf: as fast as possible)" }
        if let replay {
            if source != .stdin { return "--replay reads its own file: give no source with it" }
            if raw || stats { return "--replay writes the capture's lines unchanged: no --raw or --stats with it" }
            if replay.isEmpty { return "--replay needs a file" }
        } else if speed != 1 {
            return "--speed goes with --replay"
        }
        switch source {
        case .redis:
            if all && !rooms.isEmpty { return "give --room or --all, not both" }
            if !all && rooms.isEmpty { return "a Redis source needs --room ROOM (repeatable, globs) or --all" }
        default:
            if all { return "--all is for a Redis source (redis://HOST:PORT)" }
        }
        return nil
    }
}

/// The logic of `collab-tap`. A WebSocket or Redis source, and stdin when it is a pipe or a
/// terminal, run on one event loop with the `--stats` timer; a capture file (a path, or stdin
/// redirected from a file, which no event loop can poll) is read straight through.
/// Loop thread only.
public final class TapTool {
    public let options: TapOptions
    public let diagnostics: Diagnostics
    public let output: LineWriter
    let pipeline: TapPipeline

    var loop: EventLoop!
    var exitStatus: Int32?
    var statsTimer: LoopTimer?
    var flushTimer: LoopTimer?

    // A WebSocket source.
    var link: RoomConnection?
    /// The last revision seen, so a reconnect catches up (`since`) instead of missing ops.
    var lastRev: Int?
    var stopTimer: LoopTimer?

    // A Redis source.
    var subscriber: RedisSubscriber?
    var subscribedOnce = false

    // Stdin.
    var input: LoopInput?
    var splitter: LineSplitter

    public init(options: TapOptions, diagnostics: Diagnostics, output: LineWriter) {
        self.options = options
        self.diagnostics = diagnostics
        self.output = output
        splitter = LineSplitter(maxLineLength: options.maxLineLength)
        let mode: TapPipeline.Mode = options.raw ? .raw : options.stats ? .stats : .human
        var defaultRoom: String?
        if case .websocket(let urls) = options.source, case .success(let room) = JoinOptions.roomPath(of: urls[0]) {
            defaultRoom = room
        }
        var formatter = TapFormatter(color: options.color)
        formatter.defaultRoom = defaultRoom
        pipeline = TapPipeline(mode: mode, filter: options.filter, output: output, formatter: formatter,
                               stats: TapStats(startMicros: TapPipeline.wallClockMicros(), measureDelay: !TapTool.isCapture(options)),
                               renderer: TapStatsRenderer(table: options.terminal))
        pipeline.defaultRoom = defaultRoom
    }

    /// A file's arrival times say nothing about the delays of its ops.
    static func isCapture(_ options: TapOptions) -> Bool {
        switch options.source {
        case .file: return true
        case .stdin: return isRegularFile(options.inputFD)
        default: return false
        }
    }

    static func isRegularFile(_ fd: Int32) -> Bool {
        var st = stat()
        return fstat(fd, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    /// Runs until the input ends, the source gives up, or a signal; returns the exit status:
    /// 0 done (also when stdout's reader went away), 64 usage, 65 bad input under --strict,
    /// 66 unusable --ca-file, 69 source unreachable after --max-retries or its certificate not
    /// trusted, 74 stdout or the input file failed, 77 refused
    /// by the server, 128+N signal N.
    public func run() -> Int32 {
        if let problem = options.problem {
            diagnostics.error(problem)
            return ExitStatus.usage.rawValue
        }
        if case .websocket = options.source, let status = options.tls.prepare(diagnostics) { return status }
        signal(SIGPIPE, SIG_IGN)
        JoinTool.openMissingStandardDescriptors()
        if let path = options.replay {
            return TapReplay(options: options, diagnostics: diagnostics, output: output).run(path: path)
        }
        switch options.source {
        case .file(let path):
            return readCapture(path: path)
        case .stdin where TapTool.isRegularFile(options.inputFD):
            return readCapture(fd: options.inputFD, name: "stdin")
        default:
            return runLoop()
        }
    }

    // MARK: A capture file

    func readCapture(path: String) -> Int32 {
        guard let fd = TapTool.openCapture(path, diagnostics) else { return ExitStatus.ioError.rawValue }
        defer { close(fd) }
        return readCapture(fd: fd, name: path)
    }

    /// A capture file's descriptor, or nil (reported: status 74, as for any input that cannot be
    /// read).
    static func openCapture(_ path: String, _ diagnostics: Diagnostics) -> Int32? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            diagnostics.error("\(path): \(String(cString: strerror(errno)))")
            return nil
        }
        return fd
    }

    /// Straight through, with no loop: a file is always readable. Signals end it between lines.
    func readCapture(fd: Int32, name: String) -> Int32 {
        let interrupts = Interrupts.install()
        defer { interrupts.uninstall() }
        var reader = LineReader(fd: fd, maxLineLength: options.maxLineLength)
        do {
            try reader.forEachLine({ number, bytes in
                if let signo = interrupts.pending { throw TapStop(status: 128 + signo) }
                do throws(MessageError) {
                    try pipeline.handle(bytes, arrivalMicros: TapPipeline.wallClockMicros())
                } catch {
                    try reject(LineError(line: number, reason: error.description))
                }
                if let status = outputStatus() { throw TapStop(status: status) }
            }, error: { try reject($0) })
        } catch let stop as TapStop {
            pipeline.finish(nowMicros: TapPipeline.wallClockMicros())
            return stop.status
        } catch {
            diagnostics.error("\(name): \(error)")
            pipeline.finish(nowMicros: TapPipeline.wallClockMicros())
            return ExitStatus.ioError.rawValue
        }
        pipeline.finish(nowMicros: TapPipeline.wallClockMicros())
        return outputStatus() ?? ExitStatus.ok.rawValue
    }

    func reject(_ problem: LineError) throws {
        diagnostics.error(problem.description)
        if options.strict { throw TapStop(status: ExitStatus.dataError.rawValue) }
    }

    func outputStatus() -> Int32? {
        ExitStatus.afterFailure(of: output, diagnostics)?.rawValue
    }

    // MARK: The event loop

    func runLoop() -> Int32 {
        guard let made = EventLoop.forTool(diagnostics, interrupted: { [weak self] in self?.interrupted($0) }) else {
            return ExitStatus.software.rawValue
        }
        loop = made
        if options.stats {
            let micros = Int64((options.interval * 1e6).rounded())
            statsTimer = loop.schedule(every: .microseconds(micros)) { [weak self] in self?.tick() }
        }
        switch options.source {
        case .websocket(let urls): startWebSocket(urls)
        case .redis(let url): startRedis(url)
        case .stdin, .file: startInput()
        }
        if exitStatus == nil || link?.connection != nil { loop.run() } else { loop.shutdown() }
        statsTimer?.cancel()
        flushTimer?.cancel()
        output.flush()
        link = nil
        subscriber = nil
        input = nil
        loop = nil
        return exitStatus ?? ExitStatus.software.rawValue
    }

    /// Ends the run with `status`; with `--stats`, the totals first. A WebSocket is closed
    /// properly before the loop stops (at the latest after a grace period).
    func finish(_ status: Int32) {
        guard exitStatus == nil else { return }
        exitStatus = status
        statsTimer?.cancel()
        if output.failure == nil { pipeline.finish(nowMicros: TapPipeline.wallClockMicros()) }
        input?.pause()
        subscriber?.close()
        if let link {
            link.retryTimer?.cancel()
            if let c = link.connection, c.state == .open {
                c.close(code: CloseCode.normal, reason: "bye")
                stopTimer = loop.schedule(after: .seconds(2)) { [weak self] in self?.loop.stop() }
                return
            }
            link.cancel()
        }
        loop.stop()
    }

    func interrupted(_ signo: Int32) {
        if exitStatus != nil {
            loop.stop() // a second signal: no more waiting
            return
        }
        finish(128 + signo)
    }

    func note(_ text: String) {
        if !options.quiet { diagnostics.note(text) }
    }

    func tick() {
        guard exitStatus == nil else { return }
        pipeline.tick(nowMicros: TapPipeline.wallClockMicros())
        checkOutput()
    }

    /// Ends the run if stdout failed; output to a regular file is buffered by `LineWriter`, so a
    /// long-running tap still writes it out within a moment of each message.
    func checkOutput() {
        if let status = outputStatus() {
            finish(status)
        } else if !output.flushEachLine, flushTimer == nil {
            flushTimer = loop.schedule(after: .milliseconds(200)) { [weak self] in
                guard let self else { return }
                self.flushTimer = nil
                self.output.flush()
                if let status = self.outputStatus() { self.finish(status) }
            }
        }
    }

    // MARK: WebSocket

    func startWebSocket(_ urls: [String]) {
        var clientOptions = ClientOptions()
        clientOptions.limits.maxMessageSize = options.maxMessageSize
        clientOptions.limits.heartbeat = options.heartbeat
        clientOptions.limits.closeTimeout = .seconds(2)
        clientOptions.tls = options.tls
        let link = RoomConnection(loop: loop, urls: urls, clientOptions: clientOptions, backoff: options.backoff,
                                  maxRetries: options.maxRetries, note: { [weak self] in self?.note($0) })
        self.link = link
        link.onOpen = { [weak self] c in self?.opened(c) }
        link.onText = { [weak self] _, bytes in self?.received(bytes) }
        link.onMessageTooBig = { [weak self] _, size in
            self?.diagnostics.warning("the server sent a message of \(size) bytes, more than this tap accepts; reconnecting")
        }
        link.onClose = { [weak self] code, reason in self?.closed(code: code, reason: reason) }
        link.onConnectFailure = { [weak self] message in self?.connectFailed(message) }
        do { try link.connect() } catch {
            diagnostics.error("\(error)")
            finish(ExitStatus.usage.rawValue)
        }
    }

    /// An observer's hello: it watches, edits nothing, and is in no roster. After a reconnect,
    /// `since` brings the ops committed meanwhile.
    func opened(_ c: WebSocketConnection) {
        var hello = Message(.hello)
        hello.user = options.user
        hello.client = options.clientID
        hello.token = options.token
        hello.observer = true
        hello.since = lastRev
        c.send(text: hello.json)
    }

    func received(_ bytes: [UInt8]) {
        guard exitStatus == nil else { return }
        let arrival = TapPipeline.wallClockMicros()
        let m: Message
        do throws(MessageError) {
            m = try bytes.withUnsafeBufferPointer { b throws(MessageError) in try Message.decode(b) }
        } catch {
            diagnostics.warning("the server sent an invalid message (\(error)); ignored")
            return
        }
        switch m.type {
        case .welcome:
            link?.joined()
            lastRev = m.rev
            note("watching room \(m.room ?? "?") from revision \(m.rev ?? 0)")
        case .op:
            if let rev = m.rev { lastRev = max(lastRev ?? rev, rev) }
        default:
            break
        }
        bytes.withUnsafeBufferPointer { pipeline.handle(m, bytes: $0, arrivalMicros: arrival) }
        checkOutput()
        if m.type == .error, m.fatal == true, exitStatus == nil { serverFatal(m) }
    }

    /// Refusals end the tap (retrying cannot help); other fatal errors reconnect, as the
    /// server closes after them.
    func serverFatal(_ m: Message) {
        let text = m.message ?? m.code ?? "fatal error"
        switch m.code {
        case ErrorCode.unauthorized.rawValue?, ErrorCode.forbidden.rawValue?:
            diagnostics.error("refused by the server: \(text)")
            finish(ExitStatus.noPermission.rawValue)
        case ErrorCode.badRoom.rawValue?:
            diagnostics.error(text)
            finish(ExitStatus.usage.rawValue)
        default:
            diagnostics.warning("server error (\(m.code ?? "?")): \(text); reconnecting")
            link?.connection?.close(code: CloseCode.normal, reason: "reconnecting")
        }
    }

    func closed(code: UInt16, reason: String) {
        if exitStatus != nil {
            stopTimer?.cancel()
            loop.stop()
            return
        }
        note("disconnected (\(reason.isEmpty ? "code \(code)" : "code \(code), \(reason)"))")
        reconnect()
    }

    func connectFailed(_ message: String) {
        if exitStatus != nil {
            loop.stop()
            return
        }
        if link?.certificateRejected == true {
            diagnostics.error("\(message); \(ClientTLS.hint)")
            finish(ExitStatus.unavailable.rawValue)
            return
        }
        note("cannot connect to \(link?.currentURL ?? "?"): \(message)")
        reconnect()
    }

    func reconnect() {
        if let giveUp = link?.retry() {
            diagnostics.error(giveUp)
            finish(ExitStatus.unavailable.rawValue)
        }
    }

    // MARK: Redis

    func startRedis(_ text: String) {
        let url = try! RedisURL(parsing: text) // checked by TapSource.parse
        let subscriber = RedisSubscriber(loop: loop, url: url)
        self.subscriber = subscriber
        subscriber.onConnectFailed = { [weak self] e, attempt in self?.redisFailed(e, attempt, url: url) }
        subscriber.onDisconnect = { [weak self] e in self?.note("Redis connection lost (\(e)); reconnecting") }
        subscriber.onMessage = { [weak self] channel, bytes in self?.published(channel: channel, bytes) }
        subscriber.onPatternMessage = { [weak self] _, channel, bytes in self?.published(channel: channel, bytes) }
        subscriber.onResubscribed = { [weak self] in self?.resubscribed() }
        let (channels, patterns) = TapTool.subscriptions(rooms: options.rooms, all: options.all)
        if !channels.isEmpty { subscriber.subscribe(channels) }
        if !patterns.isEmpty { subscriber.psubscribe(patterns) }
        subscriber.start()
    }

    /// A room name is a channel; a glob is a pattern subscription of the same shape, which Redis
    /// matches much as fnmatch does (the filter checks each message's room again anyway).
    static func subscriptions(rooms: [String], all: Bool) -> (channels: [String], patterns: [String]) {
        if all { return ([], [RoomKeys(room: "*").channel]) }
        var channels: [String] = []
        var patterns: [String] = []
        for room in rooms {
            if Glob(room).isLiteral {
                channels.append(RoomKeys(room: room).channel)
            } else {
                patterns.append(RoomKeys(room: room).channel)
            }
        }
        return (channels, patterns)
    }

    func redisFailed(_ error: RedisError, _ attempt: Int, url: RedisURL) {
        guard exitStatus == nil else { return }
        if let max = options.maxRetries, attempt > max {
            diagnostics.error("cannot reach Redis at \(url): \(error) (gave up after \(max) \(max == 1 ? "retry" : "retries"))")
            finish(ExitStatus.unavailable.rawValue)
            return
        }
        note("Redis at \(url) unreachable (\(error)); retrying (attempt \(attempt))")
    }

    func resubscribed() {
        if !subscribedOnce {
            note(options.all ? "following every room" : "following \(options.rooms.joined(separator: ", "))")
        } else {
            note("Redis connection back (messages published meanwhile were missed)")
        }
        subscribedOnce = true
    }

    /// The room is in the channel's name, `collab:{ROOM}:ch`, for messages that do not say.
    static func room(ofChannel channel: String) -> String? {
        guard channel.hasPrefix("collab:{"), channel.hasSuffix("}:ch") else { return nil }
        return String(channel.dropFirst("collab:{".count).dropLast("}:ch".count))
    }

    func published(channel: String, _ bytes: [UInt8]) {
        guard exitStatus == nil else { return }
        let arrival = TapPipeline.wallClockMicros()
        bytes.withUnsafeBufferPointer { b in
            do throws(MessageError) {
                try pipeline.handle(b, arrivalMicros: arrival, room: TapTool.room(ofChannel: channel))
            } catch {
                diagnostics.warning("\(channel): invalid message (\(error)); ignored")
            }
        }
        checkOutput()
    }

    // MARK: Stdin (a pipe or a terminal)

    func startInput() {
        let reader = LoopInput(loop: loop, fd: options.inputFD, diagnostics: diagnostics,
                               onBytes: { [weak self] in self?.consume($0) },
                               onEnd: { [weak self] in self?.inputEnded() })
        if reader.isClosed {
            finish(ExitStatus.ok.rawValue)
        } else {
            input = reader
        }
    }

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard exitStatus == nil else { return }
        splitter.feed(bytes, line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
        checkOutput()
    }

    func handleLine(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard exitStatus == nil else { return }
        do throws(MessageError) {
            try pipeline.handle(bytes, arrivalMicros: TapPipeline.wallClockMicros())
        } catch {
            lineProblem(LineError(line: number, reason: error.description))
        }
    }

    func lineProblem(_ problem: LineError) {
        guard exitStatus == nil else { return }
        diagnostics.error(problem.description)
        if options.strict { finish(ExitStatus.dataError.rawValue) }
    }

    func inputEnded() {
        guard exitStatus == nil else { return }
        input = nil
        splitter.finish(line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
        finish(outputStatus() ?? ExitStatus.ok.rawValue)
    }
}

/// Ends a straight read through a capture with this status.
struct TapStop: Error {
    var status: Int32
}
