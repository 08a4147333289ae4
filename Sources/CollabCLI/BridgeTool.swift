// collab-bridge: NDJSON ⇄ Redis. A room's channel to stdout (optionally preceded by its committed
// history from the stream, without gap or duplicate), stdin lines published to the room's channel,
// and with --commit, op lines committed through the room's commit script (RoomCommitter).
import CollabOT
import CollabProtocol
import CollabRedis
import CollabRedisRoom
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

public struct BridgeOptions: Sendable {
    public var url: String
    /// Rooms to follow (channel subscriptions) and publish to.
    public var rooms: [String] = []
    /// Follow every room (pattern subscription on `collab:{*}:ch`).
    public var all = false
    /// Write the committed ops after `since` from each room's stream first, then follow live.
    public var history = false
    public var since = 0
    /// Commit op lines from stdin instead of rejecting them.
    public var commit = false
    /// Keep following after stdin ends (until a signal).
    public var follow = false
    public var user: String?
    /// The `client` of committed ops whose line has none.
    public var client: String
    public var strict = false
    public var quiet = false
    public var maxRetries: Int?
    public var maxLineLength = LineSplitter.defaultMaxLineLength
    public var inputFD: Int32 = STDIN_FILENO
    /// Entries per XRANGE page when reading history.
    public var pageSize = 1000

    public init(url: String) {
        self.url = url
        client = "bridge-\(getpid())"
    }

    /// A usage problem with these options, or nil.
    public var problem: String? {
        do { _ = try RedisURL(parsing: url) } catch { return "invalid Redis URL \(url): \(error)" }
        if all && !rooms.isEmpty { return "give --room or --all, not both" }
        if !all && rooms.isEmpty { return "give at least one --room (or --all)" }
        if rooms.contains(where: { $0.isEmpty }) { return "a room name must not be empty" }
        if history && all { return "--history needs --room (a pattern subscription has no stream to read)" }
        if since < 0 { return "--since must be 0 or more" }
        if since != 0 && !history { return "--since needs --history" }
        if let m = maxRetries, m < 0 { return "--max-retries must be 0 or more" }
        if maxLineLength <= 0 { return "--max-line must be positive" }
        return nil
    }
}

/// One followed room.
final class BridgeFeed {
    let room: String
    let keys: RoomKeys
    /// History mode: the last committed op written (ops up to it are never written again).
    var lastRev: Int
    /// Reading the stream; live messages wait in `buffer` meanwhile.
    var catchingUp = false
    var reading = false
    var buffer: [[UInt8]] = []
    /// The first history read has reached the end of the stream.
    var historyDone = false
    var retryTimer: LoopTimer?

    init(room: String, since: Int) {
        self.room = room
        keys = RoomKeys(room: room)
        lastRev = since
    }
}

/// The tool's logic on one EventLoop (loop thread only).
public final class BridgeTool {
    public let options: BridgeOptions
    public let diagnostics: Diagnostics
    public let output: LineWriter

    var loop: EventLoop!
    var url: RedisURL!
    var connection: RedisConnection!
    var subscriber: RedisSubscriber!
    var feeds: [String: BridgeFeed] = [:]
    var feedByChannel: [String: BridgeFeed] = [:]
    var committers: [String: RoomCommitter] = [:]
    let script = RedisScript(source: RoomLog.commitSource)
    let batchScript = RedisScript(source: RoomLog.commitBatchSource)
    var exitStatus: Int32?

    var input: LoopInput?
    var inputOpened = false
    var inputClosed = false
    var strictFailure = false
    var splitter: LineSplitter
    /// Publishes and commits not answered yet.
    var pending = 0
    /// Ops not committed or lines not published because of Redis.
    var failedWrites = 0
    var subscribedOnce = false
    var nextSeq: [String: Int] = [:]
    let seqBase: Int

    public init(options: BridgeOptions, diagnostics: Diagnostics, output: LineWriter) {
        self.options = options
        self.diagnostics = diagnostics
        self.output = output
        splitter = LineSplitter(maxLineLength: options.maxLineLength)
        // Auto-increment seqs start from the clock, so a rerun with the same --client is not
        // taken for a resubmission of the previous run's ops.
        seqBase = RoomCommitter.nowMillis() * 1000
    }

    /// Runs until done; returns the exit status: 0 done, 1 some op or message could not be written
    /// to Redis, 64 usage, 65 bad line under --strict, 69 Redis unreachable after --max-retries,
    /// 74 stdout failed, 128+N signal N.
    public func run() -> Int32 {
        if let problem = options.problem {
            diagnostics.error(problem)
            return ExitStatus.usage.rawValue
        }
        url = try! RedisURL(parsing: options.url)
        JoinTool.openMissingStandardDescriptors()
        signal(SIGPIPE, SIG_IGN)
        guard let made = EventLoop.forTool(diagnostics, interrupted: { [weak self] in self?.interrupted($0) }) else {
            return ExitStatus.software.rawValue
        }
        loop = made

        connection = RedisConnection(loop: loop, url: url)
        subscriber = RedisSubscriber(loop: loop, url: url)
        connection.onConnect = { [weak self] in self?.connected() }
        connection.onConnectFailed = { [weak self] e, n in self?.connectFailed(e, n) }
        connection.onDisconnect = { [weak self] e in self?.note("Redis connection lost (\(e)); reconnecting") }
        subscriber.onConnectFailed = { [weak self] e, n in self?.connectFailed(e, n, quiet: true) }
        subscriber.onDisconnect = { _ in }
        subscriber.onMessage = { [weak self] channel, bytes in self?.live(channel: channel, bytes) }
        subscriber.onPatternMessage = { [weak self] _, _, bytes in self?.writeLine(bytes) }
        subscriber.onResubscribed = { [weak self] in self?.resubscribed() }
        for room in options.rooms where feeds[room] == nil {
            let f = BridgeFeed(room: room, since: options.since)
            feeds[room] = f
            feedByChannel[f.keys.channel] = f
        }
        if options.all {
            subscriber.psubscribe([RoomKeys(room: "*").channel])
        } else {
            subscriber.subscribe(options.rooms.map { RoomKeys(room: $0).channel })
        }
        connection.start()
        subscriber.start()
        loop.run()
        output.flush()
        for f in feeds.values { f.retryTimer?.cancel() }
        subscriber = nil
        connection = nil
        committers = [:]
        loop = nil
        return exitStatus ?? ExitStatus.software.rawValue
    }

    // MARK: Ending

    func finish(_ status: Int32) {
        guard exitStatus == nil else { return }
        exitStatus = status
        input?.pause()
        connection.close()
        subscriber.close()
        loop.stop()
    }

    func interrupted(_ signo: Int32) {
        if exitStatus != nil { return }
        if pending > 0 { diagnostics.warning("interrupted with \(pending) line(s) not yet answered by Redis") }
        finish(128 + signo)
    }

    func note(_ text: String) {
        if !options.quiet { diagnostics.note(text) }
    }

    /// At end of input without --follow: exit once everything sent has been answered and the
    /// history read has been written.
    func checkDone() {
        guard exitStatus == nil, inputClosed || strictFailure, !options.follow, pending == 0 else { return }
        if options.history, feeds.values.contains(where: { !$0.historyDone }) { return }
        if strictFailure { return finish(ExitStatus.dataError.rawValue) }
        finish(failedWrites > 0 ? ExitStatus.failure.rawValue : ExitStatus.ok.rawValue)
    }

    // MARK: Redis

    func connectFailed(_ error: RedisError, _ attempt: Int, quiet: Bool = false) {
        guard exitStatus == nil else { return }
        if let max = options.maxRetries, attempt > max {
            diagnostics.error("cannot reach Redis at \(url!): \(error)")
            finish(ExitStatus.unavailable.rawValue)
            return
        }
        if !quiet { note("Redis at \(url!) unreachable (\(error)); retrying (attempt \(attempt))") }
    }

    func connected() {
        if connection.connectionCount > 1 { note("Redis connection back") }
        maybeOpenInput()
    }

    func resubscribed() {
        if !subscribedOnce {
            note(options.all ? "following every room" : "following room\(options.rooms.count > 1 ? "s" : "") \(options.rooms.joined(separator: ", "))")
        }
        subscribedOnce = true
        if options.history {
            // Pub/Sub may have missed messages: read the stream from the last op written.
            for f in feeds.values { catchUp(f) }
        }
        maybeOpenInput()
    }

    func writeLine(_ bytes: [UInt8]) {
        guard exitStatus == nil else { return }
        output.writeLine(bytes + [0x0A])
        checkOutput()
    }

    func write(_ m: Message) {
        guard exitStatus == nil else { return }
        output.write(m)
        checkOutput()
    }

    func checkOutput() {
        if let status = ExitStatus.afterFailure(of: output, diagnostics) { finish(status.rawValue) }
    }

    // MARK: Following

    func live(channel: String, _ bytes: [UInt8]) {
        guard exitStatus == nil, let f = feedByChannel[channel] else { return }
        guard options.history else { return writeLine(bytes) }
        if f.catchingUp {
            f.buffer.append(bytes)
        } else {
            deliver(f, bytes)
        }
    }

    static func opRevision(_ bytes: [UInt8]) -> Int? {
        let event: DocumentEvent? = bytes.withUnsafeBufferPointer { buf in
            do throws(MessageError) { return try DocumentEvent.decode(buf) } catch { return nil }
        }
        guard let event, event.type == .op else { return nil }
        return event.rev
    }

    /// A live message in history mode: ops in revision order only; a gap is filled from the stream.
    func deliver(_ f: BridgeFeed, _ bytes: [UInt8]) {
        guard let rev = BridgeTool.opRevision(bytes) else { return writeLine(bytes) }
        if rev <= f.lastRev { return }
        if rev > f.lastRev + 1 {
            f.buffer.append(bytes)
            catchUp(f)
            return
        }
        f.lastRev = rev
        writeLine(bytes)
    }

    func catchUp(_ f: BridgeFeed) {
        f.catchingUp = true
        guard !f.reading, exitStatus == nil else { return }
        f.reading = true
        RoomLog.read(on: connection, keys: f.keys, after: f.lastRev, count: options.pageSize) { [weak self, f] result in
            guard let self, self.exitStatus == nil else { return }
            f.reading = false
            switch result {
            case .failure(let e):
                self.note("reading the history of room \(f.room): \(e); retrying")
                f.retryTimer?.cancel()
                f.retryTimer = self.loop.schedule(after: .milliseconds(500)) { [weak self, f] in self?.catchUp(f) }
            case .success(let entries):
                if let first = entries.first, first.rev > f.lastRev + 1 {
                    return self.bridgeGap(f, entries, firstKept: first.rev)
                }
                self.written(f, entries)
            }
        }
    }

    /// The stream was trimmed past the last op written: the room's snapshot bridges the gap if
    /// it is recent enough (then it is written as a `snapshot` line, which collab-ot-apply
    /// takes as the new document); otherwise the missing ops are reported and the feed goes on.
    func bridgeGap(_ f: BridgeFeed, _ entries: [(rev: Int, message: [UInt8])], firstKept: Int) {
        f.reading = true
        RoomLog.readSnapshot(on: connection, keys: f.keys) { [weak self, f] result in
            guard let self, self.exitStatus == nil else { return }
            f.reading = false
            if case .success(let snap?) = result, snap.rev >= firstKept - 1, snap.rev > f.lastRev {
                f.lastRev = snap.rev
                self.writeLine(snap.message)
            } else {
                if case .failure(let e) = result { self.note("reading the snapshot of room \(f.room): \(e)") }
                self.diagnostics.error("room \(f.room): history-unavailable: ops \(f.lastRev + 1)...\(firstKept - 1) are no longer in the stream")
            }
            self.written(f, entries)
        }
    }

    /// Writes a page of the stream (what is newer than the feed) and reads the next, or ends
    /// the catch-up and releases the live messages held meanwhile.
    func written(_ f: BridgeFeed, _ entries: [(rev: Int, message: [UInt8])]) {
        for e in entries where e.rev > f.lastRev {
            f.lastRev = e.rev
            writeLine(e.message)
        }
        if entries.count == options.pageSize { return catchUp(f) }
        f.catchingUp = false
        f.historyDone = true
        let held = f.buffer
        f.buffer = []
        for b in held {
            if f.catchingUp { f.buffer.append(b) } else { deliver(f, b) }
        }
        checkDone()
    }

    // MARK: Input

    func maybeOpenInput() {
        guard !inputOpened, subscribedOnce, connection.isReady, exitStatus == nil else { return }
        inputOpened = true
        let reader = LoopInput(loop: loop, fd: options.inputFD, diagnostics: diagnostics,
                               onBytes: { [weak self] in self?.received($0) },
                               onEnd: { [weak self] in self?.inputEnded() })
        if reader.isClosed {
            inputClosed = true
            checkDone()
        } else {
            input = reader
        }
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
        if !strictFailure {
            splitter.finish(line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
        }
        checkDone()
    }

    func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        splitter.feed(bytes, line: { n, b in handleLine(n, b) }, error: { lineProblem($0) })
    }

    func lineProblem(_ problem: LineError) {
        guard !strictFailure else { return }
        diagnostics.error(problem.description)
        if options.strict {
            strictFailure = true
            input?.pause()
            checkDone()
        }
    }

    static let convenienceTypes: Set<MessageType> = [.insert, .delete, .replace, .undo, .redo, .cursor]

    func handleLine(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard !strictFailure, exitStatus == nil else { return }
        var m: Message
        switch decodeInputLine(number, bytes) {
        case .failure(let e): return lineProblem(e)
        case .success(let decoded): m = decoded
        }
        let room: String
        if let r = m.room {
            if !options.all && feeds[r] == nil {
                return lineProblem(LineError(line: number, reason: "room \(r) is not one of the --room options"))
            }
            room = r
        } else if options.rooms.count == 1 {
            room = options.rooms[0]
        } else {
            return lineProblem(LineError(line: number, reason: "the line has no \"room\" (needed with several --room or --all)"))
        }
        m.room = room
        if BridgeTool.convenienceTypes.contains(m.type) {
            return lineProblem(LineError(line: number, reason: "\(m.type.rawValue) lines need a document copy: use collab-join, or send an op with --commit"))
        }
        if m.type == .op {
            guard options.commit else {
                return lineProblem(LineError(line: number, reason: "op lines are committed only with --commit (not published)"))
            }
            guard let op = m.op else { return lineProblem(LineError(line: number, reason: "op line without \"op\"")) }
            return submit(m, op: op, room: room, line: number)
        }
        if m.user == nil, let user = options.user { m.user = user }
        publish(m, room: room, line: number)
    }

    func publish(_ m: Message, room: String, line: Int) {
        pending += 1
        connection.command(bytes: [Array("PUBLISH".utf8), Array(RoomKeys(room: room).channel.utf8), Array(m.json.utf8)]) { [weak self] result in
            guard let self else { return }
            self.pending -= 1
            if case .failure(let e) = result {
                self.failedWrites += 1
                self.diagnostics.error("line \(line): not published to room \(room): \(e)")
            }
            self.checkDone()
        }
    }

    func committer(_ room: String) -> RoomCommitter {
        if let c = committers[room] { return c }
        let c = RoomCommitter(connection: connection, room: room, script: script, batchScript: batchScript)
        committers[room] = c
        return c
    }

    func submit(_ m: Message, op: TextOperation, room: String, line: Int) {
        let client = m.client ?? options.client
        let seq: Int
        if let s = m.seq {
            seq = s
        } else {
            let key = room + "\u{0}" + client
            seq = (nextSeq[key] ?? seqBase) + 1
            nextSeq[key] = seq
        }
        pending += 1
        committer(room).submit(client: client, seq: seq, base: m.base, op: op, user: m.user ?? options.user) { [weak self] result in
            guard let self else { return }
            self.pending -= 1
            switch result {
            case .success(let outcome):
                var ack = Message(.ack)
                ack.room = room
                ack.seq = seq
                ack.rev = outcome.rev
                self.write(ack)
            case .failure(let e):
                self.failedWrites += 1
                self.diagnostics.error("line \(line): op \(seq) not committed to room \(room): \(e)")
            }
            self.checkDone()
        }
    }
}
