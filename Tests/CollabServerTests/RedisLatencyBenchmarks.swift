// Cross-instance latency of collab-serve --redis: a writer's op on instance A reaching a reader
// connected to instance B (WebSocket to A, the commit script on Redis, PUBLISH, B's subscriber,
// B's WebSocket send), measured under an open-loop load, next to the same load on one instance
// without Redis. Measurements, not checks (but a run that loses or reorders an op fails):
// `COLLAB_BENCH=1 swift test --filter RedisLatencyBenchmarks`, or benchmarks/redis-latency.sh.
//
// The servers and redis-server are child processes (the collab-serve binary of this build, each
// on its own port; --redis instances need no data directory), as in production; the clients are WebSocket
// connections on one client loop in this process. Environment (defaults in brackets):
//   COLLAB_BENCH_RATE      total ops/s offered by all writers together [1000]
//   COLLAB_BENCH_SECONDS   measured seconds [10]       COLLAB_BENCH_WARMUP  warm-up seconds [2]
//   COLLAB_BENCH_WRITERS   writers on A [10]           COLLAB_BENCH_READERS_B  readers on B [5]
//   COLLAB_BENCH_READERS_A readers on A [5]
//   COLLAB_BENCH_REDIS_AOF=1  redis-server with appendonly yes, appendfsync always (default: no
//                             persistence, as the fixture runs it)
//   COLLAB_BENCH_SKIP_EMBEDDED=1  only the --redis run
//   COLLAB_BENCH_DUMP      a file to write one CSV line per op of the --redis run to (revision,
//                          writer, seq, due, sent, acked, first reader of each group: ns on
//                          CLOCK_MONOTONIC), to look at how slow ops cluster
//   COLLAB_BENCH_DATA      where the embedded instance keeps its journal [/dev/shm: tmpfs, so its
//                          fdatasync costs nothing, like Redis without persistence; name a
//                          directory on a disk to include the disk's sync]
@testable import CollabServer
import CollabProtocol
import CollabTestSupport
import CollabTransport
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds: the one clock of the pacer and the client loop.
func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// What a benchmark run is asked to do (from the environment).
struct LatencyBenchSettings {
    var rate = 1000.0
    var seconds = 10.0
    var warmup = 2.0
    var writers = 10
    var readersA = 5
    var readersB = 5
    var redisAOF = false
    var skipEmbedded = false
    /// Parent directory of the embedded instance's --data.
    var embeddedData = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()

    static func fromEnvironment() -> LatencyBenchSettings {
        let env = ProcessInfo.processInfo.environment
        var s = LatencyBenchSettings()
        if let v = env["COLLAB_BENCH_RATE"].flatMap(Double.init), v > 0 { s.rate = v }
        if let v = env["COLLAB_BENCH_SECONDS"].flatMap(Double.init), v > 0 { s.seconds = v }
        if let v = env["COLLAB_BENCH_WARMUP"].flatMap(Double.init), v >= 0 { s.warmup = v }
        if let v = env["COLLAB_BENCH_WRITERS"].flatMap(Int.init), v > 0 { s.writers = v }
        if let v = env["COLLAB_BENCH_READERS_A"].flatMap(Int.init), v >= 0 { s.readersA = v }
        if let v = env["COLLAB_BENCH_READERS_B"].flatMap(Int.init), v >= 0 { s.readersB = v }
        s.redisAOF = env["COLLAB_BENCH_REDIS_AOF"] == "1"
        s.skipEmbedded = env["COLLAB_BENCH_SKIP_EMBEDDED"] == "1"
        if let v = env["COLLAB_BENCH_DATA"], !v.isEmpty { s.embeddedData = v }
        return s
    }

    var totalOps: Int { Int((rate * (warmup + seconds)).rounded()) }
    var warmupOps: Int { Int((rate * warmup).rounded()) }
    var periodNanos: Double { 1e9 / rate }
}

/// Latencies in nanoseconds, summarised by nearest-rank percentiles.
struct LatencySummary {
    let count: Int
    let p50, p90, p99, p999, max: Double  // milliseconds

    init(_ nanos: [UInt64]) {
        let sorted = nanos.sorted()
        count = sorted.count
        func rank(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            let i = Swift.max(0, Swift.min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[i]) / 1e6
        }
        p50 = rank(0.50)
        p90 = rank(0.90)
        p99 = rank(0.99)
        p999 = rank(0.999)
        max = sorted.last.map { Double($0) / 1e6 } ?? .nan
    }
}

/// One load run over WebSocket clients on one client loop. Every field is touched on the loop
/// thread only; the test thread reads through `ClientLoop.sync`.
final class LatencyLoad: @unchecked Sendable {
    /// What one connection received: checked as it arrives, so a lost, duplicated or reordered
    /// op is caught.
    struct Received {
        var lastRev = 0
        /// Per writer: the last seq seen from it (ops, or acks for the writer itself).
        var lastSeq: [Int]
        var ops = 0
        var problems: [String] = []

        mutating func problem(_ text: String) {
            if problems.count < 5 { problems.append(text) }
        }
    }

    final class Writer {
        let index: Int
        let name: String
        var connection: WebSocketConnection?
        var seq = 0
        var inFlight = false
        /// Highest revision this writer has seen: the base of its next op.
        var known = 0
        /// Scheduled ops not sent yet: (global op index, due time).
        var due: [(n: Int, at: UInt64)] = []
        var dueHead = 0
        /// By seq (index 0 unused): send time, due time, whether it is in the measured window.
        var sent: [UInt64] = [0]
        var dueAt: [UInt64] = [0]
        var measured: [Bool] = [false]
        var received: Received

        init(index: Int, writers: Int) {
            self.index = index
            name = "w\(index)"
            received = Received(lastSeq: Array(repeating: 0, count: writers))
        }
    }

    final class Reader {
        let group: Int
        var received: Received
        init(group: Int, writers: Int) {
            self.group = group
            received = Received(lastSeq: Array(repeating: 0, count: writers))
        }
    }

    let settings: LatencyBenchSettings
    var writers: [Writer] = []
    var readers: [Reader] = []
    /// Per reader group: latency from the writer's send to the reader's receipt, measured ops.
    var groupLatencies: [[UInt64]]
    var ackLatencies: [UInt64] = []
    /// Send time minus due time, measured ops; and how many were due while the writer's previous
    /// op was still unacknowledged (the writer fell behind its schedule).
    var lags: [UInt64] = []
    var behind = 0
    var ackTimes: [UInt64] = []
    /// By revision, for COLLAB_BENCH_DUMP: (writer, seq, ack time) and, per reader group, when
    /// its first reader got the op.
    var byRevision: [(writer: Int, seq: Int, acked: UInt64)]
    var firstReaderTimes: [[UInt64]]
    var totalSent = 0

    init(settings: LatencyBenchSettings, groups: Int) {
        self.settings = settings
        groupLatencies = Array(repeating: [], count: groups)
        byRevision = Array(repeating: (0, 0, 0), count: settings.totalOps + 1)
        firstReaderTimes = Array(repeating: Array(repeating: 0, count: settings.totalOps + 1), count: groups)
        writers = (0 ..< settings.writers).map { Writer(index: $0, writers: settings.writers) }
        ackLatencies.reserveCapacity(settings.totalOps)
        ackTimes.reserveCapacity(settings.totalOps)
    }

    static func writerIndex(_ client: String?) -> Int? {
        guard let client, client.first == "w" else { return nil }
        return Int(client.dropFirst())
    }

    // MARK: Writers

    /// The pacer says: op `n` (writer `n % writers`) is due at `at`.
    func due(writer i: Int, n: Int, at: UInt64) {
        let w = writers[i]
        w.due.append((n, at))
        if w.inFlight {
            if n >= settings.warmupOps { behind += 1 }
        } else {
            sendNext(w)
        }
    }

    func sendNext(_ w: Writer) {
        guard w.dueHead < w.due.count, let c = w.connection else { return }
        let (n, at) = w.due[w.dueHead]
        w.dueHead += 1
        w.seq += 1
        w.inFlight = true
        let measured = n >= settings.warmupOps
        let now = monotonicNow()
        w.sent.append(now)
        w.dueAt.append(at)
        w.measured.append(measured)
        if measured { lags.append(now &- at) }
        totalSent += 1
        _ = c.send(text: #"{"type":"op","seq":\#(w.seq),"base":\#(w.known),"op":["x"]}"#)
    }

    func writerText(_ w: Writer, _ bytes: [UInt8]) {
        let now = monotonicNow()
        guard let m = try? bytes.withUnsafeBufferPointer({ try Message.decode($0) }) else {
            w.received.problem("\(w.name): unreadable message")
            return
        }
        switch m.type {
        case .ack:
            guard let rev = m.rev, let seq = m.seq else { return w.received.problem("\(w.name): ack without rev/seq") }
            check(&w.received, rev: rev, writer: w.index, seq: seq, who: w.name)
            guard w.inFlight, seq == w.seq else { return w.received.problem("\(w.name): ack \(seq) while \(w.seq) was in flight") }
            w.known = max(w.known, rev)
            w.inFlight = false
            ackTimes.append(now)
            if rev < byRevision.count { byRevision[rev] = (w.index, seq, now) }
            if w.measured[seq] { ackLatencies.append(now &- w.sent[seq]) }
            sendNext(w)
        case .op:
            guard let rev = m.rev, let i = Self.writerIndex(m.client), let seq = m.seq else {
                return w.received.problem("\(w.name): op without rev/client/seq")
            }
            check(&w.received, rev: rev, writer: i, seq: seq, who: w.name)
            w.known = max(w.known, rev)
        case .error:
            w.received.problem("\(w.name): error \(m.code ?? "?"): \(m.message ?? "")")
        default:
            break
        }
    }

    // MARK: Readers

    func readerText(_ r: Reader, _ bytes: [UInt8]) {
        let now = monotonicNow()
        guard let m = try? bytes.withUnsafeBufferPointer({ try Message.decode($0) }) else {
            r.received.problem("reader: unreadable message")
            return
        }
        switch m.type {
        case .op:
            guard let rev = m.rev, let i = Self.writerIndex(m.client), i < writers.count, let seq = m.seq else {
                return r.received.problem("reader: op without rev/client/seq")
            }
            check(&r.received, rev: rev, writer: i, seq: seq, who: "reader")
            let w = writers[i]
            if seq < w.sent.count, w.measured[seq] { groupLatencies[r.group].append(now &- w.sent[seq]) }
            if rev < firstReaderTimes[r.group].count, firstReaderTimes[r.group][rev] == 0 { firstReaderTimes[r.group][rev] = now }
        case .error:
            r.received.problem("reader: error \(m.code ?? "?"): \(m.message ?? "")")
        default:
            break
        }
    }

    /// The room's history must arrive whole and in order: revision after revision, and each
    /// writer's ops in the order it sent them.
    func check(_ r: inout Received, rev: Int, writer: Int, seq: Int, who: String) {
        if rev != r.lastRev + 1 { r.problem("\(who): rev \(rev) after \(r.lastRev)") }
        r.lastRev = rev
        if writer < r.lastSeq.count {
            if seq != r.lastSeq[writer] + 1 { r.problem("\(who): w\(writer) seq \(seq) after \(r.lastSeq[writer])") }
            r.lastSeq[writer] = seq
        }
        r.ops += 1
    }

    // MARK: End of run

    /// One CSV line per revision: rev, writer, seq, due, sent, acked, then per reader group the
    /// first reader's receipt (ns, CLOCK_MONOTONIC).
    var csv: String {
        var out = "rev,writer,seq,due,sent,acked" + firstReaderTimes.indices.map { ",group\($0)" }.joined() + "\n"
        for rev in 1 ..< byRevision.count {
            let (i, seq, acked) = byRevision[rev]
            guard i < writers.count, seq > 0, seq < writers[i].sent.count else { continue }
            out += "\(rev),\(i),\(seq),\(writers[i].dueAt[seq]),\(writers[i].sent[seq]),\(acked)"
                + firstReaderTimes.map { ",\($0[rev])" }.joined() + "\n"
        }
        return out
    }

    /// Every scheduled op sent and acknowledged, and every connection at the last revision.
    var drained: Bool {
        guard totalSent == settings.totalOps else { return false }
        for w in writers where w.inFlight || w.dueHead < w.due.count || w.received.lastRev < totalSent { return false }
        return readers.allSatisfy { $0.received.lastRev >= totalSent }
    }

    /// What is wrong with what the connections received (empty: every connection saw every op
    /// exactly once, in revision order).
    var problems: [String] {
        var out: [String] = []
        let total = settings.totalOps
        for w in writers {
            out += w.received.problems
            if w.received.lastRev != total { out.append("\(w.name): at rev \(w.received.lastRev), expected \(total)") }
            if w.received.ops != total { out.append("\(w.name): \(w.received.ops) ops and acks, expected \(total)") }
        }
        for (k, r) in readers.enumerated() {
            out += r.received.problems
            if r.received.lastRev != total || r.received.ops != total {
                out.append("reader \(k): \(r.received.ops) ops up to rev \(r.received.lastRev), expected \(total)")
            }
            for w in writers where r.received.lastSeq[w.index] != w.seq {
                out.append("reader \(k): last seq of \(w.name) \(r.received.lastSeq[w.index]), it sent \(w.seq)")
            }
        }
        return out
    }
}

/// CPU time (user + system) of a process so far, in seconds, from /proc/PID/stat.
func cpuSeconds(pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After "pid (comm)": state is field 3, utime 14, stime 15.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Idle time of all CPUs so far (idle + iowait, seconds), from /proc/stat. Unlike the busy
/// columns, which are sampled at the tick and mostly miss processes that run for microseconds
/// thousands of times a second, idle time is measured exactly (nohz idle accounting), so
/// CPUs × elapsed − idle is the machine's busy time, and that minus ours is other work.
func machineIdleSeconds() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
          let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
    let v = line.split(separator: " ").dropFirst().compactMap { Double($0) }
    guard v.count >= 5 else { return nil }
    return (v[3] + v[4]) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// CPU pressure so far (PSI, /proc/pressure/cpu): microseconds during which at least one
/// runnable task (ours or another's, such as a concurrent build) waited for a CPU.
func cpuPressureMicros() -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/pressure/cpu", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("some ") }),
          let total = line.split(separator: " ").first(where: { $0.hasPrefix("total=") }) else { return nil }
    return Double(total.dropFirst("total=".count))
}

/// Measurements, not checks: `COLLAB_BENCH=1 swift test --filter RedisLatencyBenchmarks`.
final class RedisLatencyBenchmarks: HostTestCase {
    var children: [ServeProcess] = []
    var redis: RedisServer?

    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["COLLAB_BENCH"] != nil else {
            throw XCTSkip("set COLLAB_BENCH=1 to run the measurements")
        }
        try super.setUpWithError()
    }

    override func tearDownWithError() throws {
        // Clients first (they would otherwise see the servers go), then every child process.
        clients?.stop()
        for c in children { c.terminate() }
        children = []
        redis = nil  // kills redis-server
        try super.tearDownWithError()
    }

    func report(_ text: String) {
        FileHandle.standardError.write(Data("bench: \(text)\n".utf8))
    }

    /// A collab-serve child. Under setpriv --pdeathsig it is killed by the kernel even if this
    /// process dies without reaching tearDown (a crash); tearDown kills it otherwise.
    func serve(_ arguments: [String]) throws -> ServeProcess {
        let binary = try BinaryLocator.require("collab-serve")
        // The writers are a load generator (COLLAB_BENCH_RATE may ask any rate of them), not
        // editors: no message rate limit.
        let arguments = arguments + ["--max-rate", "0"]
        let setpriv = URL(fileURLWithPath: "/usr/bin/setpriv")
        let child: ServeProcess
        if FileManager.default.isExecutableFile(atPath: setpriv.path) {
            child = try ServeProcess(setpriv, ["--pdeathsig", "KILL", "--", binary.path] + arguments)
        } else {
            child = try ServeProcess(binary, arguments)
        }
        children.append(child)
        return child
    }

    func testCrossInstanceLatency() throws {
        let s = LatencyBenchSettings.fromEnvironment()
        let redis = try RedisServer(appendOnly: s.redisAOF)
        self.redis = redis
        let redisURL = "redis://127.0.0.1:\(redis.port)"
        // Defaults otherwise (snapshots every 1,000 ops, pings after 25 s of silence).
        let a = try serve(["--port", "0", "--redis", redisURL])
        let b = try serve(["--port", "0", "--redis", redisURL])
        try a.waitForStderr(containing: "redis: connected")
        try b.waitForStderr(containing: "redis: connected")
        let processes: [(String, Int32)] = [("A", a.child.pid), ("B", b.child.pid),
                                            ("redis", redis.process?.pid ?? 0), ("clients", getpid())]
        report("pids: " + processes.map { "\($0.0) \($0.1)" }.joined(separator: ", "))

        report("cross-instance latency: \(Int(s.rate)) ops/s offered by \(s.writers) writers on A (one op in flight each, open-loop schedule), "
               + "\(s.readersB) readers on B, \(s.readersA) readers on A; \(fmt(s.warmup)) s warm-up, \(fmt(s.seconds)) s measured; "
               + "redis-server \(s.redisAOF ? "appendonly yes, appendfsync always" : "without persistence"); "
               + (s.skipEmbedded ? "" : "embedded instance's journal in \(s.embeddedData); ")
               + "\(ProcessInfo.processInfo.activeProcessorCount) CPUs")

        var embedded: (load: LatencyLoad, rate: Double, cpu: String)?
        if !s.skipEmbedded {
            let data = s.embeddedData + "/collab-bench-\(UUID().uuidString)"
            directories.append(data)  // removed in tearDown
            let solo = try serve(["--port", "0", "--data", data])
            let url = "ws://127.0.0.1:\(solo.port)/bench-solo-\(UUID().uuidString.prefix(8).lowercased())"
            // The same connections on one instance: writers, then both reader groups.
            embedded = try run("embedded", settings: s, writerURL: url, readerGroups: [(url, s.readersB), (url, s.readersA)],
                               processes: [("server", solo.child.pid), ("clients", getpid())])
            solo.terminate()
        }
        let room = "bench-redis-\(UUID().uuidString.prefix(8).lowercased())"
        let urlA = "ws://127.0.0.1:\(a.port)/\(room)"
        let urlB = "ws://127.0.0.1:\(b.port)/\(room)"
        let viaRedis = try run("--redis", settings: s, writerURL: urlA, readerGroups: [(urlB, s.readersB), (urlA, s.readersA)],
                               processes: processes)
        if let path = ProcessInfo.processInfo.environment["COLLAB_BENCH_DUMP"], !path.isEmpty {
            let csv = try clients.sync { _ in viaRedis.load.csv }
            try csv.write(toFile: path, atomically: true, encoding: .utf8)
            report("per-op timings of the --redis run in \(path)")
        }

        // The table.
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        report(pad("run", 31) + pad("path", 28) + "  count     p50     p90     p99   p99.9     max (ms)")
        func row(_ run: String, _ path: String, _ l: LatencySummary) {
            report(pad(run, 31) + pad(path, 28) + String(format: "%7d %7.2f %7.2f %7.2f %7.2f %7.2f", l.count, l.p50, l.p90, l.p99, l.p999, l.max))
        }
        let cross = LatencySummary(viaRedis.load.groupLatencies[0])
        row("--redis, A and B", "writer on A -> reader on B", cross)
        row("--redis, A and B", "writer on A -> reader on A", LatencySummary(viaRedis.load.groupLatencies[1]))
        row("--redis, A and B", "writer on A: ack", LatencySummary(viaRedis.load.ackLatencies))
        if let e = embedded {
            let same = LatencySummary(e.load.groupLatencies[0] + e.load.groupLatencies[1])
            row("embedded journal, one instance", "writer -> reader", same)
            row("embedded journal, one instance", "writer: ack", LatencySummary(e.load.ackLatencies))
            report(String(format: "cost of the Redis hop (reader on B vs reader on the embedded instance): p50 x%.2f, p90 x%.2f, p99 x%.2f, p99.9 x%.2f",
                          cross.p50 / same.p50, cross.p90 / same.p90, cross.p99 / same.p99, cross.p999 / same.p999))
        }
        for (name, r) in [("--redis", Optional(viaRedis)), ("embedded", embedded)] {
            guard let r else { continue }
            let lag = LatencySummary(r.load.lags)
            report("\(name): " + String(format: "achieved %.1f ops/s (acks in the measured window); send lag behind schedule p99 %.2f ms, max %.2f ms; ", r.rate, lag.p99, lag.max)
                   + "\(r.load.behind) ops due while the writer's previous op was unacknowledged")
            report("\(name): cpu (100% = one CPU) in the measured window: \(r.cpu)")
        }
        let met = cross.p99 < 5.0 && viaRedis.rate >= 0.98 * s.rate
        report(String(format: "target p99 < 5 ms cross-instance at %.0f ops/s: ", s.rate) + (met ? "met" : "NOT met")
               + String(format: " (p99 %.2f ms at %.1f ops/s)", cross.p99, viaRedis.rate))
    }

    /// Connects the writers and readers, runs the schedule, waits until everything arrived, checks
    /// it, and closes the connections. Returns the load, the achieved rate and the CPU use.
    func run(_ name: String, settings s: LatencyBenchSettings, writerURL: String, readerGroups: [(url: String, count: Int)],
             processes: [(String, Int32)]) throws -> (load: LatencyLoad, rate: Double, cpu: String) {
        let load = LatencyLoad(settings: s, groups: readerGroups.count)
        var connections: [TestClient] = []
        defer { for c in connections { c.close() } }

        // Readers first, so they are in the room (and B has loaded it) before the first op.
        for (g, group) in readerGroups.enumerated() {
            for k in 0 ..< group.count {
                let c = try clients.connect(group.url)
                connections.append(c)
                let welcome = try c.join("reader\(g)-\(k)", client: "r\(g)-\(k)")
                XCTAssertEqual(welcome.rev, 0, "a fresh room")
                let reader = LatencyLoad.Reader(group: g, writers: s.writers)
                try clients.sync { _ in
                    load.readers.append(reader)
                    c.connection?.handlers.onText = { _, bytes in load.readerText(reader, bytes) }
                    c.connection?.handlers.onClose = { _, code, why in reader.received.problem("reader closed: \(code) \(why)") }
                }
            }
        }
        for w in load.writers {
            let c = try clients.connect(writerURL)
            connections.append(c)
            let welcome = try c.join("writer\(w.index)", client: w.name)
            XCTAssertEqual(welcome.rev, 0, "a fresh room")
            try clients.sync { _ in
                w.connection = c.connection
                c.connection?.handlers.onText = { _, bytes in load.writerText(w, bytes) }
                c.connection?.handlers.onClose = { _, code, why in w.received.problem("\(w.name) closed: \(code) \(why)") }
            }
        }

        // The pacer: op n is due at t0 + n / rate, for writer n % writers, whether or not earlier
        // ops were acknowledged (open loop). A writer with its previous op in flight sends the
        // due one when the ack comes; the lag is recorded.
        let period = s.periodNanos
        let t0 = monotonicNow() + 50_000_000
        let windowStart = t0 + UInt64(Double(s.warmupOps) * period)
        let windowEnd = t0 + UInt64(Double(s.totalOps) * period)
        let cpuStart = Locked<[Double]>([])
        let pacerDone = DispatchSemaphore(value: 0)
        let clients = self.clients!
        let pacer = Thread {
            for n in 0 ..< s.totalOps {
                let at = t0 + UInt64(Double(n) * period)
                var ts = timespec(tv_sec: Int(at / 1_000_000_000), tv_nsec: Int(at % 1_000_000_000))
                while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
                if n == s.warmupOps {
                    cpuStart.withLock {
                        $0 = processes.map { cpuSeconds(pid: $0.1) ?? 0 } + [(cpuPressureMicros() ?? 0) / 1e6, machineIdleSeconds() ?? 0]
                    }
                }
                clients.post { _ in load.due(writer: n % s.writers, n: n, at: at) }
            }
            pacerDone.signal()
        }
        pacer.start()
        guard pacerDone.wait(timeout: .now() + s.warmup + s.seconds + 60) == .success else {
            throw WaitTimeout(description: "the pacer did not finish")
        }
        let cpuEnd = processes.map { cpuSeconds(pid: $0.1) ?? 0 } + [(cpuPressureMicros() ?? 0) / 1e6, machineIdleSeconds() ?? 0]
        let measuredSeconds = Double(windowEnd - windowStart) / 1e9
        var begin = cpuStart.withLock { $0 }
        if begin.count != cpuEnd.count { begin = Array(repeating: 0, count: cpuEnd.count) }
        let used = zip(cpuEnd, begin).map { 100 * ($0 - $1) / measuredSeconds }
        let ours = used.prefix(processes.count).reduce(0, +)
        let busy = Double(ProcessInfo.processInfo.activeProcessorCount) * 100 - used[processes.count + 1]
        let cpu = zip(processes, used).map { p, u in p.0 + String(format: " %.0f%%", u) }.joined(separator: ", ")
            + String(format: "; other processes %.0f%%; some task waited for a CPU %.0f%% of the time (PSI)",
                     max(0, busy - ours), used[processes.count])

        // Everything sent must arrive: wait (bounded) until every connection has the last op.
        let deadline = Date(timeIntervalSinceNow: 30)
        while try !clients.sync({ _ in load.drained }) {
            guard Date() < deadline else { break }
            usleep(20_000)
        }
        let (problems, acksInWindow) = try clients.sync { _ in
            (load.problems, load.ackTimes.filter { $0 >= windowStart && $0 < windowEnd }.count)
        }
        XCTAssertTrue(problems.isEmpty, "connections did not see every op once, in order:\n" + problems.prefix(20).joined(separator: "\n"))
        if problems.isEmpty {
            report("\(name): verified: \(connections.count) connections each saw all \(s.totalOps) ops (acks for their own) exactly once, in revision order, each writer's in seq order")
        }
        return (load, Double(acksInWindow) / measuredSeconds, cpu)
    }

    func fmt(_ x: Double) -> String { String(format: "%g", x) }
}
