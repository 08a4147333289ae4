// collab-presence: who is in a room and what they are doing, from any message stream.
import CollabOT
import CollabPresence
import CollabProtocol
import CollabTransport

#if canImport(Glibc)
import Glibc
#endif

public struct PresenceOptions: Sendable {
    /// Which time typing expiry and idle times are measured in.
    public enum Clock: String, Sendable, CaseIterable {
        /// The wall clock when a line is read: the rule for following a room live.
        case arrival
        /// The stream's own time, the latest `ts` its messages carry: the rule for a capture,
        /// which is read far faster than it was written.
        case stream
    }

    /// A table (on a terminal) or roster snapshots (elsewhere) instead of change lines.
    public var table = false
    /// Nothing until the input ends, then the roster (or the table).
    public var once = false
    /// Only this room.
    public var room: String?
    /// Seconds `typing` lasts without an update saying so again.
    public var typingTimeout: Double = 5
    /// nil: `stream` for a file, `arrival` for a pipe, socket or terminal.
    public var clock: Clock?
    public var strict = false
    public var maxLineLength = LineSplitter.defaultMaxLineLength
    /// A file to read instead of stdin; nil or "-": stdin.
    public var file: String?
    public var inputFD: Int32 = STDIN_FILENO
    /// Whether stdout is a terminal; nil: ask isatty(3). Tests say.
    public var terminal: Bool?
    /// Colour in the table; nil: only on a terminal, never with NO_COLOR or TERM=dumb.
    public var color: Bool?
    /// The terminal's size; nil: ask the terminal (then $COLUMNS/$LINES, then 80×24).
    public var terminalColumns: Int?
    public var terminalRows: Int?

    public init() {}

    /// A usage problem with these options, or nil.
    public var problem: String? {
        if !(typingTimeout > 0 && typingTimeout <= 86_400) { return "--typing-timeout must be more than 0 and at most 86400 seconds" }
        if maxLineLength <= 0 { return "--max-line must be positive" }
        if let room, room.isEmpty { return "--room must not be empty" }
        return nil
    }
}

/// The logic of `collab-presence`: a `PresenceFeed` over the input, with one of three outputs:
/// change lines (default), a live table on a terminal (`--table`), or roster snapshots
/// (`--table` elsewhere, and `--once`).
///
/// Input that can be waited on (a pipe, a socket, a terminal) is read inside an event loop, so
/// typing runs out on time and the table's idle times tick while nothing arrives; a regular file
/// is read straight through (it has nothing to wait for, and its own `ts` is its clock).
public final class PresenceTool {
    public let options: PresenceOptions
    public let diagnostics: Diagnostics
    public let output: LineWriter
    /// Milliseconds since 1970, the unit of `ts`. Tests inject their own.
    let wallClock: () -> Int

    var feed: PresenceFeed
    var splitter: LineSplitter
    /// Scratch for the lines of one message (kept to reuse its storage).
    var lines: [Message] = []
    var exitStatus: Int32?
    var outputChecked = false
    var useStreamClock = false
    /// The latest `ts` seen (the stream clock).
    var streamTime: Int?

    // Outputs.
    let writesChanges: Bool
    /// A live table on a terminal, redrawn in place.
    let liveTable: Bool
    /// A roster line per room whenever what the table would show changes.
    let writesSnapshots: Bool
    var lastViews: [PresenceRoom.View?] = []
    var drawnLines = 0
    var lastDraw = Int.min / 2
    var dirty = false
    let inPlace: Bool
    let useColor: Bool
    /// Stdout is a terminal.
    let terminal: Bool

    // The loop (live input).
    var loop: EventLoop?
    var input: LoopInput?
    var typingTimer: LoopTimer?
    var typingTimerDue: Int?
    var drawTimer: LoopTimer?
    var tickTimer: LoopTimer?

    /// Least time between two redraws of the live table: a busy room must not flood the terminal.
    static let redrawInterval = 50

    public init(options: PresenceOptions, diagnostics: Diagnostics, output: LineWriter,
                clock: @escaping () -> Int = PresenceTool.millisecondsSince1970) {
        self.options = options
        self.diagnostics = diagnostics
        self.output = output
        wallClock = clock
        var feedOptions = PresenceFeed.Options()
        feedOptions.typingTimeout = max(1, Int((options.typingTimeout * 1000).rounded()))
        feedOptions.room = options.room
        // The text is followed only where line:column is shown: change lines do without it.
        feedOptions.followDocument = options.table || options.once
        feed = PresenceFeed(options: feedOptions)
        splitter = LineSplitter(maxLineLength: options.maxLineLength)
        terminal = options.terminal ?? (isatty(output.fd) == 1)
        writesChanges = !options.table && !options.once
        liveTable = options.table && !options.once && terminal
        writesSnapshots = options.table && !options.once && !terminal
        useColor = terminal && (options.color ?? Diagnostics.colorAllowed(fd: output.fd))
        // A dumb terminal cannot move the cursor: each table is printed below the last.
        inPlace = getenv("TERM").map { String(cString: $0) != "dumb" } ?? true
    }

    public static func millisecondsSince1970() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    /// Runs until the input ends; returns the exit status: 0 done (also when stdout's reader went
    /// away), 64 usage, 65 bad line under --strict, 66 the input file cannot be opened, 74 input
    /// or output failed, 128+N signal N.
    public func run() -> Int32 {
        if let problem = options.problem {
            diagnostics.error(problem)
            return ExitStatus.usage.rawValue
        }
        JoinTool.openMissingStandardDescriptors()
        // A reader that goes away is seen as EPIPE on write, and ends the run quietly.
        signal(SIGPIPE, SIG_IGN)
        var fd = options.inputFD
        var opened = false
        if let path = options.file, path != "-" {
            if let problem = fileOpenProblem(path) {
                diagnostics.error("\(path): \(problem)")
                return ExitStatus.noInput.rawValue
            }
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                diagnostics.error("\(path): \(String(cString: strerror(errno)))")
                return ExitStatus.noInput.rawValue
            }
            opened = true
        }
        defer { if opened { close(fd) } }
        let live = Self.canWait(on: fd)
        useStreamClock = options.clock.map { $0 == .stream } ?? !live
        if live { runLoop(fd) } else { runStraight(fd) }
        output.flush()
        checkOutput()
        return exitStatus ?? ExitStatus.ok.rawValue
    }

    /// Pipes, sockets and terminals deliver lines over time; a file is all there already.
    static func canWait(on fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return true }
        let kind = st.st_mode & S_IFMT
        return kind == S_IFIFO || kind == S_IFSOCK || kind == S_IFCHR
    }

    // MARK: Reading

    struct Stop: Error {}

    func runStraight(_ fd: Int32) {
        var reader = LineReader(fd: fd, maxLineLength: options.maxLineLength)
        do {
            try reader.forEachLine({ [self] number, bytes in
                process(number, bytes)
                checkOutput()
                if exitStatus != nil { throw Stop() }
            }, error: { [self] problem in
                reject(problem)
                if exitStatus != nil { throw Stop() }
            })
        } catch is Stop {
            return
        } catch {
            diagnostics.error("reading input: \(error)")
            exitStatus = ExitStatus.ioError.rawValue
            return
        }
        endOfInput()
    }

    func runLoop(_ fd: Int32) {
        var loopOptions = EventLoop.Options()
        loopOptions.logLevel = .none
        let loop: EventLoop
        do { loop = try EventLoop(options: loopOptions) } catch {
            diagnostics.error("\(error)")
            exitStatus = ExitStatus.software.rawValue
            return
        }
        self.loop = loop
        loop.handleSignals(liveTable ? [SIGINT, SIGTERM, SIGWINCH] : [SIGINT, SIGTERM]) { [weak self] signo in
            guard let self else { return }
            if signo == SIGWINCH { self.draw() } else { self.interrupted(signo) }
        }
        let reader = LoopInput(loop: loop, fd: fd, diagnostics: diagnostics,
                               onBytes: { [weak self] in self?.received($0) },
                               onEnd: { [weak self] in self?.inputEnded() })
        if liveTable {
            draw()
            // Idle times count up while nothing arrives.
            tickTimer = loop.schedule(every: .seconds(1)) { [weak self] in
                // A terminal that cannot redraw in place gets a new table only for news.
                guard let self, self.inPlace || self.dirty else { return }
                self.draw()
            }
        }
        if reader.isClosed {
            endOfInput()
            finish(exitStatus ?? ExitStatus.ok.rawValue)
        } else {
            input = reader
        }
        if exitStatus == nil { loop.run() } else { loop.shutdown() }
        input = nil
        self.loop = nil
    }

    func received(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard exitStatus == nil else { return }
        splitter.feed(bytes, line: { n, b in if exitStatus == nil { process(n, b) } },
                      error: { if exitStatus == nil { reject($0) } })
        afterInput()
    }

    func inputEnded() {
        guard exitStatus == nil else { return }
        splitter.finish(line: { n, b in if exitStatus == nil { process(n, b) } },
                        error: { if exitStatus == nil { reject($0) } })
        if exitStatus == nil { endOfInput() }
        finish(exitStatus ?? ExitStatus.ok.rawValue)
    }

    /// After a chunk of live input: the table, the typing timer, the output's health.
    func afterInput() {
        guard exitStatus == nil else { return }
        if liveTable && dirty { drawSoon() }
        armTypingTimer()
        checkOutput()
    }

    func interrupted(_ signo: Int32) {
        guard exitStatus == nil else { return }
        // A signal ends the input early: --once still prints what it has, the table stays.
        endOfInput()
        finish(128 + signo)
    }

    func finish(_ status: Int32) {
        if exitStatus == nil { exitStatus = status }
        input?.pause()
        for t in [typingTimer, drawTimer, tickTimer] { t?.cancel() }
        loop?.stop()
    }

    // MARK: Lines

    func process(_ number: Int, _ bytes: UnsafeBufferPointer<UInt8>) {
        let message: Message
        switch decodeInputLine(number, bytes) {
        case .success(let m): message = m
        case .failure(let problem):
            reject(problem)
            return
        }
        let now = time(of: message)
        if let now, let due = feed.nextTypingExpiry, due <= now { expireTyping(now: now) }
        lines.removeAll(keepingCapacity: true)
        let outcome = feed.handle(message, now: now, into: &lines)
        if let problem = outcome.problem { warn("line \(number): \(problem)") }
        if writesChanges { for line in lines { output.write(line) } }
        if let room = outcome.room { changed(room: room, now: now) }
    }

    /// The clock for a line: its arrival, or the stream's time so far (which never goes back:
    /// instances of a room stamp with their own clocks).
    func time(of m: Message) -> Int? {
        guard useStreamClock else { return wallClock() }
        if let ts = m.ts { streamTime = max(streamTime ?? ts, ts) }
        return streamTime
    }

    var now: Int? { useStreamClock ? streamTime : wallClock() }

    func expireTyping(now: Int) {
        lines.removeAll(keepingCapacity: true)
        let rooms = feed.expireTyping(now: now, into: &lines)
        if writesChanges { for line in lines { output.write(line) } }
        for room in rooms { changed(room: room, now: now) }
    }

    /// A room's state may have changed: a snapshot if what it shows did, a redraw later.
    func changed(room: Int, now: Int?) {
        if liveTable { dirty = true }
        guard writesSnapshots else { return }
        while lastViews.count <= room { lastViews.append(nil) }
        let view = feed.rooms.values[room].view
        guard view != lastViews[room] else { return }
        // A room's first snapshot waits for its first member: a welcome alone (its roster comes
        // next) would be an empty roster line in front of every collab-join stream.
        if lastViews[room] == nil && view.members.isEmpty { return }
        lastViews[room] = view
        output.write(feed.snapshot(room: room, now: now))
    }

    func reject(_ problem: LineError) {
        report { diagnostics.error(problem.description) }
        if options.strict { finish(ExitStatus.dataError.rawValue) }
    }

    func warn(_ text: String) {
        report { diagnostics.warning(text) }
    }

    /// Writes to stderr; a live table on the same terminal is taken away first and drawn again
    /// below, so the message is not overwritten by the next redraw.
    func report(_ body: () -> Void) {
        if liveTable && drawnLines > 0 && inPlace {
            output.writeRaw("\u{1B}[\(drawnLines)A\r\u{1B}[J")
            output.flush()
            drawnLines = 0
            dirty = true
        }
        body()
    }

    func endOfInput() {
        if !useStreamClock, let now, let due = feed.nextTypingExpiry, due <= now { expireTyping(now: now) }
        if options.once {
            if options.table {
                let table = makeTable().render(&feed, now: now)
                for line in table { output.writeLine(line) }
            } else {
                for room in feed.rooms.values.indices { output.write(feed.snapshot(room: room, now: now)) }
            }
        } else if liveTable {
            draw()
        }
        output.flush()
        checkOutput()
    }

    /// Stdout failed: a reader that went away (EPIPE) ends the run quietly, anything else is an
    /// error (74). Either way there is no point reading on.
    func checkOutput() {
        guard let failure = output.failure, !outputChecked else { return }
        outputChecked = true
        if failure.errno != EPIPE {
            diagnostics.error("stdout: \(failure)")
            if exitStatus == nil || exitStatus == ExitStatus.ok.rawValue { exitStatus = ExitStatus.ioError.rawValue }
        }
        finish(exitStatus ?? ExitStatus.ok.rawValue)
    }

    // MARK: Typing timer

    /// Live input on the arrival clock: typing runs out when it is due, even if no line comes.
    func armTypingTimer() {
        guard let loop, !useStreamClock else { return }
        let due = feed.nextTypingExpiry
        if due == typingTimerDue, typingTimer?.isScheduled == true { return }
        typingTimer?.cancel()
        typingTimerDue = due
        guard let due else { return }
        typingTimer = loop.schedule(after: .milliseconds(max(0, due - wallClock()))) { [weak self] in
            guard let self, self.exitStatus == nil else { return }
            self.typingTimerDue = nil
            self.expireTyping(now: self.wallClock())
            self.afterInput()
        }
    }

    // MARK: The live table

    func makeTable() -> PresenceTable {
        var columns = options.terminalColumns, rows = options.terminalRows
        if columns == nil || rows == nil {
            var ws = winsize()
            if ioctl(output.fd, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 {
                columns = columns ?? Int(ws.ws_col)
                rows = rows ?? Int(ws.ws_row)
            }
        }
        func env(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) }.flatMap { $0 > 0 ? $0 : nil } }
        // --once prints the whole table, not a screenful; off a terminal, lines are not cut.
        let height = options.once ? Int.max / 2 : rows ?? env("LINES") ?? 24
        let width = terminal ? columns ?? env("COLUMNS") ?? 80 : Int.max / 2
        return PresenceTable(color: useColor, columns: width, rows: height)
    }

    /// Redraws now if the last redraw is old enough, else once the interval is over.
    func drawSoon() {
        let elapsed = wallClock() - lastDraw
        if elapsed >= Self.redrawInterval { return draw() }
        guard drawTimer?.isScheduled != true, let loop else { return }
        drawTimer = loop.schedule(after: .milliseconds(Self.redrawInterval - elapsed)) { [weak self] in
            guard let self, self.exitStatus == nil else { return }
            self.draw()
            self.checkOutput()
        }
    }

    func draw() {
        guard liveTable else { return }
        let table = makeTable().render(&feed, now: now)
        var text = ""
        if drawnLines > 0 {
            // Back to the table's first line and clear from there: no alternate screen, so the
            // last table stays on the terminal when the input ends.
            text += inPlace ? "\u{1B}[\(drawnLines)A\r\u{1B}[J" : "\n"
        }
        for line in table { text += line + "\n" }
        output.writeRaw(text)
        output.flush()
        drawnLines = table.count
        lastDraw = wallClock()
        dirty = false
    }
}
