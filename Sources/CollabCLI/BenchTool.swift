import CollabProtocol
import CollabTransport
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// How `collab-bench` runs: what the command line said.
public struct BenchOptions: Sendable {
    /// `ws://HOST:PORT` (or `wss://`) of each server instance; client i connects to `urls[i % urls.count]`.
    public var urls: [String]
    public var rooms = 1
    public var clients = 100
    /// Clients 0 ..< active send ops; the others only receive.
    public var active = 10
    /// Ops per second per active client.
    public var rate = 5.0
    public var warmup: Duration = .seconds(1)
    public var duration: Duration = .seconds(10)
    /// After the window: how long to wait for every op to be acknowledged and delivered.
    public var drainTimeout: Duration = .seconds(10)
    /// Connecting fails when no client joins for this long.
    public var connectTimeout: Duration = .seconds(30)
    /// Connections being opened at once (handshake sent, welcome not yet received).
    public var connecting = 200
    /// Rooms are PREFIX-0 … PREFIX-(rooms-1); clients are PREFIX-c0 ….
    public var roomPrefix: String
    public var token: String?
    /// Servers whose CPU time and memory are read from /proc during the window.
    public var serverPIDs: [Int32] = []
    public var json = false
    public var quiet = false
    /// Seeds the insert positions.
    public var seed: UInt64 = 1
    /// Write one CSV line per measured op that reached its whole room (a diagnostic).
    public var opsCSV: String?
    /// How wss:// URLs check the server (--ca-file, --insecure).
    public var tls = ClientTLS()

    public init(urls: [String], roomPrefix: String = BenchOptions.randomPrefix()) {
        self.urls = urls
        self.roomPrefix = roomPrefix
    }

    /// `bench-` and 6 random hex digits: a fresh set of rooms per run, so a run never inherits
    /// the document or the members of an earlier one.
    public static func randomPrefix() -> String {
        let hex = String(UInt32.random(in: 0 ... 0xFFFFFF), radix: 16)
        return "bench-" + String(repeating: "0", count: 6 - hex.count) + hex
    }

    /// Why the URLs are unusable, or nil. A URL names a server, not a room: the rooms are the
    /// tool's own.
    public static func problem(with urls: [String]) -> String? {
        if urls.isEmpty { return "give the server's URL, as in ws://HOST:PORT" }
        for url in urls {
            let parsed: WebSocketURL
            do { parsed = try WebSocketURL(parsing: url) } catch { return "\(error)" }
            if parsed.pathAndQuery != "/" {
                return "give ws://HOST:PORT or wss://HOST:PORT without a path or query (the rooms are named by --room-prefix): \(url)"
            }
        }
        return nil
    }

    /// Why the room prefix is unusable, or nil: room names allow letters, digits and . _ ~ - /.
    public static func problem(withPrefix prefix: String) -> String? {
        guard !prefix.isEmpty, prefix.utf8.count <= 100 else { return "--room-prefix must be 1 to 100 characters" }
        let allowed = prefix.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "._~-".unicodeScalars.contains(c)
        }
        return allowed ? nil : "--room-prefix may contain letters, digits and . _ ~ - only"
    }
}

/// One connection of the run. Small on purpose: an idle client is this, its WebSocket and
/// libwebsockets' state, nothing that grows with traffic.
final class BenchClient {
    let index: Int
    let room: Int
    var connection: WebSocketConnection?
    var joined = false
    var closed = false
    /// Connection attempts so far (a failed handshake is retried while connecting).
    var attempts: UInt8 = 0
    /// Highest revision seen (ops and own acks): revisions must arrive in increasing order.
    var lastRevision = 0
    /// Others' ops received.
    var received = 0
    /// Own ops acknowledged.
    var ownAcks = 0
    let writer: BenchWriter?

    init(index: Int, room: Int, writer: BenchWriter?) {
        self.index = index
        self.room = room
        self.writer = writer
    }
}

/// The sending side of an active client.
final class BenchWriter {
    var schedule = WriterSchedule()
    var log: SendLog
    /// Document length at `known` (the base of the next op), for a random insert position;
    /// -1 when unknown (an op from outside the run arrived), then inserts go to position 0.
    var documentLength = -1
    var known = 0
    /// Its client's index (writers are clients 0 ..< active).
    let index: Int
    let letter: UInt8

    init(index: Int, logCapacity: Int) {
        self.index = index
        log = SendLog(capacity: logCapacity)
        letter = UInt8(ascii: "a") + UInt8(index % 26)
    }
}

/// The logic of `collab-bench`: many WebSocket clients on one event loop. It connects them a
/// window at a time (each waits for its welcome), then runs an open-loop schedule of
/// single-character inserts on the active clients for the warm-up and the measured window, drains
/// (every op acknowledged and delivered, bounded), and reports. Latency is taken on the loop's
/// monotonic clock from an op's reference time (its send, or its due time when it had to wait for
/// the previous ack) to each receiving client's callback, and to the sender's ack. Loop thread only.
public final class BenchTool {
    enum Phase { case connecting, settling, running, draining, finished }

    public let options: BenchOptions
    public let diagnostics: Diagnostics
    public let output: LineWriter

    var loop: EventLoop!
    var phase = Phase.connecting
    var exitStatus: Int32?
    var clients: [BenchClient] = []
    var writers: [BenchWriter] = []
    var roomMembers: [Int]
    /// Ops acknowledged per room: what each member other than the sender must receive.
    var roomCommitted: [Int]
    let clientPrefix: [UInt8]
    var handlers = WebSocketHandlers()
    var clientOptions = ClientOptions()
    var rng: SplitMix

    // Connecting.
    var nextClient = 0
    var pending = 0
    var connectRetries = 0
    var joinedCount = 0
    var connectStarted: UInt64 = 0
    var connectSeconds = 0.0
    var settleSeconds = 0.0
    var lastProgress: UInt64 = 0
    var stallTimer: LoopTimer?
    /// When the last message of any kind arrived (for the settling after the joins).
    var lastMessage: UInt64 = 0
    var settleStarted: UInt64 = 0
    var settleTimer: LoopTimer?

    // Running.
    var schedule: OpenLoopSchedule?
    var nextOp = 0
    var totalOps = 0
    var windowStart: UInt64 = 0
    var windowEnd: UInt64 = 0
    var pacer: LoopTimer?
    var windowTimers: [LoopTimer] = []
    var measuring = false
    var drainStarted: UInt64 = 0
    var drainTimer: LoopTimer?
    var interruptedBy: Int32?

    // Counts.
    var sent = 0
    var windowSent = 0
    var acked = 0
    var delivered = 0
    var windowDeliveries = 0
    /// What the open clients are still owed plus what they got: the drain waits for `delivered`
    /// to reach it.
    var expectedSoFar = 0
    var outOfOrder = 0
    var unmatched = 0
    var foreign = 0
    var errors = 0
    var disconnects = 0
    var problems: [String] = []
    var latency = LatencySummary.histogram()
    var ackLatency = LatencySummary.histogram()
    /// Per op: its first receiver's latency, and the time from its first receiver to its last.
    var firstLatency = LatencySummary.histogram()
    var fanoutSpread = LatencySummary.histogram()
    var sendLag = LatencySummary.histogram()
    var opsCSV: LineWriter?

    // Process measurements.
    var serverStart: [ProcessSample?] = []
    var serverWindowStart: [ProcessSample?] = []
    var selfStart = ProcessSample(cpuSeconds: 0, rssBytes: 0, peakRSSBytes: 0)
    var selfWindowStart = ProcessSample(cpuSeconds: 0, rssBytes: 0, peakRSSBytes: 0)
    var idleWindowStart: Double?
    var loadAverage: Double?
    public private(set) var report: BenchReport?

    public init(options: BenchOptions, diagnostics: Diagnostics, output: LineWriter) {
        self.options = options
        self.diagnostics = diagnostics
        self.output = output
        roomMembers = Array(repeating: 0, count: max(1, options.rooms))
        roomCommitted = Array(repeating: 0, count: max(1, options.rooms))
        clientPrefix = Array((options.roomPrefix + "-c").utf8)
        rng = SplitMix(seed: options.seed)
    }

    /// Runs to the end; returns the exit status: 0 a clean run, 1 deliveries missing, duplicated
    /// or out of order, ops unacknowledged, server errors or lost connections (the report says
    /// which), 64 usage, 66 unusable --ca-file, 69 a client could not connect or join, or the
    /// server's certificate is not trusted (nothing measured), 70 internal,
    /// 128+N interrupted by signal N (the report covers the window so far).
    public func run() -> Int32 {
        if let problem = BenchOptions.problem(with: options.urls) {
            diagnostics.error(problem)
            return ExitStatus.usage.rawValue
        }
        if let status = options.tls.prepare(diagnostics) { return status }
        // Each connection is a descriptor; libwebsockets sizes its tables from this limit when
        // the loop is created, so raise it first and check it suffices.
        let limit = EventLoop.raiseOpenFileLimit(cap: max(65_536, options.clients + 1024))
        if options.clients + 32 > limit {
            diagnostics.error("\(options.clients) connections need more open files than this process may have (\(limit)); raise the hard limit (ulimit -Hn)")
            return ExitStatus.usage.rawValue
        }
        var loopOptions = EventLoop.Options()
        loopOptions.logLevel = .none // failures are reported here, in our words
        loopOptions.openFileLimit = nil // raised above
        // Messages to clients are ops of about 120 bytes; the rare larger ones (rosters, the
        // welcome) arrive in pieces and are reassembled. A small buffer keeps idle clients small.
        loopOptions.clientRxBufferSize = 1024
        do { loop = try EventLoop(options: loopOptions) } catch {
            diagnostics.error("\(error)")
            return ExitStatus.software.rawValue
        }
        clientOptions.limits.maxMessageSize = 256 << 20 // a roster of a big room is large
        clientOptions.limits.heartbeat = nil
        clientOptions.limits.closeTimeout = .seconds(2)
        clientOptions.tls = options.tls
        handlers = WebSocketHandlers(
            onOpen: { [unowned self] c in self.opened(c) },
            onText: { [unowned self] c, bytes in self.received(c, bytes) },
            onClose: { [unowned self] c, code, reason in self.closed(c, code: code, reason: reason) },
            onConnectFailure: { [unowned self] c, message in self.connectFailed(c, message) })
        loop.handleSignals { [unowned self] signo in self.interrupted(signo) }

        let logCapacity = min(16_384, max(64, Int(options.rate * 60)))
        writers = (0 ..< options.active).map { BenchWriter(index: $0, logCapacity: logCapacity) }
        clients.reserveCapacity(options.clients)
        for i in 0 ..< options.clients {
            let room = i % max(1, options.rooms)
            clients.append(BenchClient(index: i, room: room, writer: i < options.active ? writers[i] : nil))
            roomMembers[room] += 1
        }
        if let path = options.opsCSV {
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                diagnostics.error("--ops-csv \(path): \(String(cString: strerror(errno)))")
                return ExitStatus.ioError.rawValue
            }
            opsCSV = LineWriter(fd: fd, flushEachLine: false)
            opsCSV?.writeLine("writer,seq,rev,reference_us,ack_us,first_receipt_us,last_receipt_us")
        }
        loadAverage = ProcStat.machineLoadAverage()
        serverStart = options.serverPIDs.map { ProcStat.sample(pid: $0) }
        for (pid, s) in zip(options.serverPIDs, serverStart) where s == nil {
            diagnostics.warning("no process \(pid) to measure (--server-pid)")
        }
        selfStart = ProcStat.sampleSelf()

        note("connecting \(options.clients) clients to \(options.urls.joined(separator: ", ")) in \(options.rooms) room\(options.rooms == 1 ? "" : "s") (\(options.roomPrefix)-N)")
        connectStarted = now()
        lastProgress = connectStarted
        stallTimer = loop.schedule(every: .milliseconds(250)) { [unowned self] in self.checkStall() }
        connectMore()
        if options.clients == 0 { allJoined() }
        loop.run()
        loop = nil
        if let csv = opsCSV {
            csv.flush()
            Glibc.close(csv.fd)
        }
        if let report {
            if options.json {
                output.writeLine(report.json + [0x0A])
            } else {
                output.writeRaw(report.text)
            }
            output.flush()
            if let failure = output.failure, failure.errno != EPIPE {
                diagnostics.error("stdout: \(failure)")
                return ExitStatus.ioError.rawValue
            }
        }
        return exitStatus ?? ExitStatus.software.rawValue
    }

    func note(_ text: String) {
        if !options.quiet { diagnostics.note(text) }
    }

    @inline(__always)
    func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    static func seconds(_ nanos: UInt64) -> Double { Double(nanos) / 1e9 }

    static func nanos(_ d: Duration) -> UInt64 {
        let (s, atto) = d.components
        return UInt64(max(0, s)) &* 1_000_000_000 &+ UInt64(max(0, atto / 1_000_000_000))
    }

    /// Ends the run without a report.
    func abort(_ status: ExitStatus, _ message: String) {
        guard exitStatus == nil else { return }
        diagnostics.error(message)
        exitStatus = status.rawValue
        phase = .finished
        loop.stop()
    }

    // MARK: Connecting

    func roomName(_ r: Int) -> String { "\(options.roomPrefix)-\(r)" }

    func connectMore() {
        while phase == .connecting && nextClient < clients.count && pending < options.connecting {
            let client = clients[nextClient]
            nextClient += 1
            pending += 1
            open(client)
        }
    }

    func open(_ client: BenchClient) {
        var base = options.urls[client.index % options.urls.count]
        if base.hasSuffix("/") { base.removeLast() }
        client.attempts += 1
        client.closed = false
        do {
            let c = try loop.connect(to: base + "/" + roomName(client.room), options: clientOptions, handlers: handlers)
            c.userInfo = client
            client.connection = c
        } catch {
            abort(.usage, "\(error)")
        }
    }

    /// A client that has not joined yet lost its connection: try again, a few times, unless the
    /// server was never reached (nobody joined yet) or the run is past connecting. One handshake
    /// among thousands can fail for reasons that say nothing about the steady state (an accept
    /// queue overflowing for a moment); a client that fails three times ends the run, since then
    /// the server is not keeping up with connections at all (a stalled server fails this way:
    /// one whose stderr pipe nobody reads stops at its first blocked log line).
    func joinFailed(_ client: BenchClient, _ why: String) {
        let url = options.urls[client.index % options.urls.count]
        guard phase == .connecting, joinedCount > 0, client.attempts < Self.maxAttempts else {
            abort(.unavailable, "client \(client.index) could not connect to \(url) and join (\(joinedCount) of \(clients.count) joined): \(why)")
            return
        }
        connectRetries += 1
        note("client \(client.index): \(why); connecting again")
        loop.schedule(after: .milliseconds(100 * Int64(client.attempts))) { [unowned self] in
            if self.phase == .connecting { self.open(client) }
        }
    }

    static let maxAttempts: UInt8 = 3

    func opened(_ c: WebSocketConnection) {
        guard let client = c.userInfo as? BenchClient else { return }
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.key("type"); w.string("hello")
        w.key("user"); w.string("bench")
        w.key("client"); w.string(options.roomPrefix + "-c\(client.index)")
        if let token = options.token { w.key("token"); w.string(token) }
        w.endObject()
        c.send(text: w.bytes)
    }

    func connectFailed(_ c: WebSocketConnection, _ message: String) {
        guard let client = c.userInfo as? BenchClient else { return }
        c.userInfo = nil
        client.connection = nil
        client.closed = true
        if c.certificateRejected {
            // Every client would fail the same way: trust is configuration, not load.
            abort(.unavailable, "\(message); \(ClientTLS.hint)")
            return
        }
        joinFailed(client, message)
    }

    func welcomed(_ client: BenchClient, _ f: BenchFrame, _ t: UInt64) {
        guard !client.joined else { return }
        client.joined = true
        client.lastRevision = max(0, f.rev)
        if let w = client.writer {
            w.known = max(0, f.rev)
            w.documentLength = f.documentLength
        }
        pending -= 1
        joinedCount += 1
        lastProgress = t
        if joinedCount == clients.count {
            allJoined()
        } else {
            connectMore()
        }
    }

    func checkStall() {
        guard phase == .connecting else {
            stallTimer?.cancel()
            stallTimer = nil
            return
        }
        if !options.quiet && Diagnostics.stderrIsTerminal {
            diagnostics.progress("joined \(joinedCount) of \(clients.count)")
        }
        if now() &- lastProgress > Self.nanos(options.connectTimeout) {
            abort(.unavailable, "no client joined for \(Self.seconds(Self.nanos(options.connectTimeout))) s (\(joinedCount) of \(clients.count) joined)")
        }
    }

    // MARK: Running

    func allJoined() {
        stallTimer?.cancel()
        stallTimer = nil
        if !options.quiet && Diagnostics.stderrIsTerminal { diagnostics.clearProgress() }
        let t = now()
        connectSeconds = Self.seconds(t &- connectStarted)
        // Every join is announced to the room and every newcomer gets the whole roster: with a
        // thousand clients in a room that is half a million messages still on their way when the
        // last welcome arrives. Ops sent now would queue behind them and measure the backlog, so
        // wait until the connections have been quiet for a moment.
        phase = .settling
        settleStarted = t
        lastMessage = t
        settleTimer = loop.schedule(every: .milliseconds(20)) { [unowned self] in self.checkSettled() }
    }

    /// Quiet for `settleQuiet`, or settling for `settleLimit` already.
    static let settleQuiet: UInt64 = 250_000_000
    static let settleLimit: UInt64 = 60_000_000_000

    func checkSettled() {
        let t = now()
        guard phase == .settling, t &- lastMessage >= Self.settleQuiet || t &- settleStarted >= Self.settleLimit else { return }
        settleTimer?.cancel()
        settleTimer = nil
        if t &- lastMessage < Self.settleQuiet {
            diagnostics.warning("the connections did not fall quiet within \(Self.settleLimit / 1_000_000_000) s after joining; starting anyway")
        }
        startLoad(at: t)
    }

    func startLoad(at t: UInt64) {
        phase = .running
        settleSeconds = Self.seconds(t &- settleStarted)
        let warmup = Self.nanos(options.warmup)
        windowStart = t &+ warmup
        windowEnd = windowStart &+ Self.nanos(options.duration)
        note("\(clients.count) clients joined in \(String(decimals: connectSeconds, digits: 2)) s, quiet \(String(decimals: settleSeconds, digits: 2)) s later; warm-up \(String(decimals: Self.seconds(warmup))) s, then measuring \(String(decimals: Self.seconds(windowEnd - windowStart))) s")
        if options.active > 0 {
            let s = OpenLoopSchedule(start: t, writers: options.active, rate: options.rate)
            schedule = s
            totalOps = s.count(dueBefore: windowEnd)
            pace()
        }
        windowTimers.append(loop.schedule(after: .nanoseconds(Int64(warmup))) { [unowned self] in self.beginWindow() })
        windowTimers.append(loop.schedule(after: .nanoseconds(Int64(windowEnd &- t))) { [unowned self] in self.endWindow() })
    }

    /// Sends every op that is due, then sleeps until the next one.
    func pace() {
        pacer = nil
        guard phase == .running, let s = schedule else { return }
        let t = now()
        while nextOp < totalOps {
            let due = s.due(nextOp)
            if due > t { break }
            let w = writers[s.writer(of: nextOp)]
            nextOp += 1
            if let send = w.schedule.opDue(at: due, now: t, measured: due >= windowStart) {
                transmit(w, send, due: due, at: t)
            }
        }
        if nextOp < totalOps {
            let wait = s.due(nextOp) &- t
            pacer = loop.schedule(after: .nanoseconds(Int64(wait))) { [unowned self] in self.pace() }
        }
    }

    func transmit(_ w: BenchWriter, _ s: WriterSchedule.Send, due: UInt64, at t: UInt64) {
        w.log.record(s)
        guard let c = clients[w.index].connection, !clients[w.index].closed else { return }
        sent += 1
        if measuring { windowSent += 1 }
        if s.measured { sendLag.recordNanos(t &- due) }
        var pos = 0
        if w.documentLength > 0 { pos = Int(rng.next() % UInt64(w.documentLength + 1)) }
        // {"type":"op","seq":S,"base":B,"op":[P,"x"]}, written by hand: it is the one message
        // the generator sends thousands of times a second.
        var text = #"{"type":"op","seq":"#
        text += String(s.seq)
        text += #","base":"#
        text += String(w.known)
        text += pos > 0 ? #","op":[\#(pos),""# : #","op":[""#
        text.unicodeScalars.append(Unicode.Scalar(w.letter))
        text += #""]}"#
        c.send(text: text)
    }

    func received(_ c: WebSocketConnection, _ bytes: [UInt8]) {
        guard let info = c.userInfo else { return }
        let client = unsafeDowncast(info, to: BenchClient.self)
        let t = now()
        lastMessage = t
        let f: BenchFrame
        do {
            f = try bytes.withUnsafeBufferPointer { b in
                try clientPrefix.withUnsafeBufferPointer { p in
                    try BenchFrame.read(b, clientPrefix: p, countDocument: client.writer != nil && !client.joined)
                }
            }
        } catch {
            errors += 1
            problem("client \(client.index): the server sent invalid JSON (\(error))")
            return
        }
        switch f.kind {
        case .op: delivery(client, f, t)
        case .ack: acknowledged(client, f, t)
        case .welcome: welcomed(client, f, t)
        case .error: serverError(client, f)
        case .other: break
        }
    }

    func problem(_ text: String) {
        if problems.count < 5 { problems.append(text) }
    }

    func delivery(_ client: BenchClient, _ f: BenchFrame, _ t: UInt64) {
        if f.rev <= client.lastRevision {
            outOfOrder += 1
            problem("client \(client.index): rev \(f.rev) after \(client.lastRevision)")
        } else {
            client.lastRevision = f.rev
        }
        if let w = client.writer {
            w.known = max(w.known, f.rev)
            if w.documentLength >= 0 { w.documentLength += 1 }
        }
        guard f.sender >= 0, f.sender < writers.count else {
            foreign += 1
            // Someone else's edit: its length is unknown, so insert at 0 from now on.
            client.writer?.documentLength = -1
            return
        }
        if f.sender == client.index {
            // The server acknowledges a client's own op instead of sending it back.
            outOfOrder += 1
            problem("client \(client.index) received its own op (seq \(f.seq))")
            return
        }
        client.received += 1
        delivered += 1
        if measuring { windowDeliveries += 1 }
        let w = writers[f.sender]
        guard let (reference, measured) = w.log.lookup(f.seq),
              let (count, first) = w.log.noteReceipt(f.seq, at: t) else {
            unmatched += 1
            return
        }
        guard measured else { return }
        latency.recordNanos(t &- reference)
        if count == 1 { firstLatency.recordNanos(t &- reference) }
        // The last receiver of the op: how long its fan-out took, server and receivers together.
        if count == openMembers(clients[f.sender].room) - 1 {
            fanoutSpread.recordNanos(t &- first)
            if let csv = opsCSV {
                let ack = w.log.ackTime(f.seq)
                func rel(_ x: UInt64) -> String { x == 0 ? "" : String(x / 1000) }
                csv.writeLine("\(f.sender),\(f.seq),\(f.rev),\(rel(reference)),\(rel(ack)),\(rel(first)),\(rel(t))")
            }
        }
    }

    func acknowledged(_ client: BenchClient, _ f: BenchFrame, _ t: UInt64) {
        guard let w = client.writer, let inFlight = w.schedule.inFlight, inFlight.seq == f.seq else {
            errors += 1
            problem("client \(client.index): ack of seq \(f.seq), which is not in flight")
            return
        }
        if f.rev <= client.lastRevision {
            outOfOrder += 1
            problem("client \(client.index): ack rev \(f.rev) after \(client.lastRevision)")
        } else {
            client.lastRevision = f.rev
        }
        let (_, next) = w.schedule.acknowledged()
        w.log.noteAck(inFlight.seq, at: t)
        if inFlight.measured { ackLatency.recordNanos(t &- inFlight.reference) }
        acked += 1
        client.ownAcks += 1
        roomCommitted[client.room] += 1
        expectedSoFar += openMembers(client.room) - 1
        w.known = max(w.known, f.rev)
        if w.documentLength >= 0 { w.documentLength += 1 }
        if let next { transmit(w, next, due: next.reference, at: t) }
        if phase == .draining { checkDrained() }
    }

    var openCount: [Int] = []
    func openMembers(_ room: Int) -> Int {
        openCount.isEmpty ? roomMembers[room] : openCount[room]
    }

    func serverError(_ client: BenchClient, _ f: BenchFrame) {
        errors += 1
        problem("client \(client.index): server error \(f.code)\(f.fatal ? " (fatal)" : ""): \(f.message)")
        if !client.joined && f.fatal {
            abort(f.code == "unauthorized" || f.code == "forbidden" ? .noPermission : .unavailable,
                  "client \(client.index) was refused: \(f.code): \(f.message)")
        }
    }

    func closed(_ c: WebSocketConnection, code: UInt16, reason: String) {
        guard let client = c.userInfo as? BenchClient else { return }
        c.userInfo = nil
        client.connection = nil
        guard !client.closed else { return }
        client.closed = true
        if phase == .finished { return }
        if phase == .connecting || phase == .settling {
            let why = "connection closed (code \(code)\(reason.isEmpty ? "" : ", " + reason))"
            if client.joined {
                abort(.unavailable, "client \(client.index) lost its connection while the others joined: \(why)")
            } else {
                joinFailed(client, why)
            }
            return
        }
        disconnects += 1
        problem("client \(client.index) lost its connection (code \(code)\(reason.isEmpty ? "" : ", " + reason))")
        // What it was still owed will never come: the drain must not wait for it.
        if openCount.isEmpty { openCount = roomMembers }
        openCount[client.room] -= 1
        let owed = roomCommitted[client.room] - client.ownAcks - client.received
        expectedSoFar -= max(0, owed)
        if phase == .draining { checkDrained() }
    }

    // MARK: The window

    func beginWindow() {
        guard phase == .running else { return }
        serverWindowStart = options.serverPIDs.map { ProcStat.sample(pid: $0) }
        selfWindowStart = ProcStat.sampleSelf()
        idleWindowStart = ProcStat.machineIdleSeconds()
        windowStart = now()
        measuring = true
        note("measuring")
    }

    func endWindow() {
        guard phase == .running else { return }
        let t = now()
        if !measuring { beginWindow() } // interrupted during the warm-up: an empty window
        measuring = false
        var r = BenchReport()
        r.windowSeconds = Self.seconds(t &- windowStart)
        r.windowSent = windowSent
        r.windowDeliveries = windowDeliveries
        let selfEnd = ProcStat.sampleSelf()
        r.generator = ProcessUsage(pid: getpid(), cpuSeconds: selfEnd.cpuSeconds - selfWindowStart.cpuSeconds,
                                   rssStartBytes: selfStart.rssBytes, rssBytes: selfEnd.rssBytes, peakRSSBytes: selfEnd.peakRSSBytes)
        for (i, pid) in options.serverPIDs.enumerated() {
            guard let end = ProcStat.sample(pid: pid) else { continue }
            let begin = serverWindowStart.indices.contains(i) ? serverWindowStart[i] : nil
            r.servers.append(ProcessUsage(pid: pid, cpuSeconds: end.cpuSeconds - (begin?.cpuSeconds ?? end.cpuSeconds),
                                          rssStartBytes: serverStart[i]?.rssBytes ?? 0,
                                          rssBytes: end.rssBytes, peakRSSBytes: end.peakRSSBytes))
        }
        r.cpus = ProcStat.onlineCPUs
        if let idle0 = idleWindowStart, let idle1 = ProcStat.machineIdleSeconds(), r.windowSeconds > 0 {
            r.machineBusyPercent = max(0, Double(r.cpus) * r.windowSeconds - (idle1 - idle0)) / r.windowSeconds * 100
        }
        r.loadAverage = loadAverage
        report = r
        // Ops due after this moment are not sent (relevant when a signal cut the window short).
        totalOps = min(totalOps, nextOp)
        pacer?.cancel()
        pacer = nil
        phase = .draining
        drainStarted = t
        note("draining")
        drainTimer = loop.schedule(every: .milliseconds(5)) { [unowned self] in self.checkDrained() }
        checkDrained()
    }

    func checkDrained() {
        guard phase == .draining else { return }
        let everythingSent = nextOp >= totalOps
        let writersIdle = zip(writers, clients).allSatisfy { $0.schedule.isIdle || $1.closed }
        if everythingSent && writersIdle && delivered >= expectedSoFar {
            finish(drained: true)
        } else if now() &- drainStarted > Self.nanos(options.drainTimeout) {
            finish(drained: false)
        }
    }

    func finish(drained: Bool) {
        guard phase == .draining, var r = report else { return }
        phase = .finished
        drainTimer?.cancel()
        r.drainSeconds = Self.seconds(now() &- drainStarted)
        r.drained = drained
        r.urls = options.urls
        r.rooms = options.rooms
        r.clients = options.clients
        r.active = options.active
        r.rate = options.active > 0 ? options.rate : 0
        r.warmupSeconds = Self.seconds(Self.nanos(options.warmup))
        r.connectSeconds = connectSeconds
        r.connectRetries = connectRetries
        r.settleSeconds = settleSeconds
        r.sent = sent
        r.acked = acked
        r.late = writers.reduce(0) { $0 + $1.schedule.lateCount }
        r.delivered = delivered
        for c in clients {
            let expected = roomCommitted[c.room] - c.ownAcks
            r.expected += expected
            if c.received < expected { r.missing += expected - c.received }
            if c.received > expected { r.duplicates += c.received - expected }
        }
        r.outOfOrder = outOfOrder
        r.unmatched = unmatched
        r.foreign = foreign
        r.errors = errors
        r.disconnects = disconnects
        r.firstProblems = problems
        r.latency = LatencySummary(latency)
        r.ack = LatencySummary(ackLatency)
        r.firstDelivery = LatencySummary(firstLatency)
        r.fanout = LatencySummary(fanoutSpread)
        r.sendLag = LatencySummary(sendLag)
        r.interruptedBy = interruptedBy
        report = r
        if let s = interruptedBy {
            exitStatus = 128 + s
        } else {
            exitStatus = r.isClean ? ExitStatus.ok.rawValue : ExitStatus.failure.rawValue
        }
        if !drained {
            diagnostics.warning("not everything was acknowledged and delivered within \(Self.seconds(Self.nanos(options.drainTimeout))) s (--drain-timeout)")
        }
        // Dropping the connections (no close handshakes) is fine here: the run is over, and
        // 10,000 polite closes would only keep the server busy with leaves.
        for c in clients { c.connection?.userInfo = nil; c.connection = nil }
        loop.stop()
    }

    // MARK: Signals

    func interrupted(_ signo: Int32) {
        switch phase {
        case .connecting, .settling:
            note("interrupted (signal \(signo)) while connecting: no report")
            exitStatus = 128 + signo
            phase = .finished
            loop.stop()
        case .running:
            note("interrupted (signal \(signo)): ending the window now")
            interruptedBy = signo
            endWindow()
        case .draining, .finished:
            interruptedBy = signo
            if phase == .draining { finish(drained: false) } else { loop.stop() }
        }
    }
}

/// SplitMix64: a small, fast, seedable generator for insert positions.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    /// At most `digits` decimal places, no trailing zeros.
    init(decimals v: Double, digits: Int = 1) {
        var scale = 1.0
        for _ in 0 ..< digits { scale *= 10 }
        let r = (v * scale).rounded() / scale
        self = r == r.rounded() ? "\(Int(r))" : "\(r)"
    }
}
