import CollabProtocol
import Histogram

#if canImport(Glibc)
import Glibc
#endif

/// Percentiles of a latency histogram (recorded in microseconds), in milliseconds.
public struct LatencySummary: Sendable, Equatable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double

    public init(count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        self.count = count
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    public init(_ h: Histogram<UInt64>) {
        let n = Int(h.totalCount)
        count = n
        func ms(_ us: UInt64) -> Double { n == 0 ? 0 : Double(us) / 1000 }
        p50 = ms(h.valueAtPercentile(50))
        p90 = ms(h.valueAtPercentile(90))
        p99 = ms(h.valueAtPercentile(99))
        p999 = ms(h.valueAtPercentile(99.9))
        max = ms(h.maxRecorded)
    }

    /// A histogram for latencies in microseconds: 1 µs to 60 s, 3 significant digits (values
    /// above 60 s are clamped to it).
    public static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
}

extension Histogram where Count == UInt64 {
    /// Records nanoseconds at microsecond resolution, clamped to the trackable range.
    @inline(__always)
    mutating func recordNanos(_ nanos: UInt64) {
        _ = record(Swift.min(highestTrackableValue, Swift.max(1, nanos / 1000)))
    }
}

/// One process' share of a run (a server given with --server-pid, or the generator itself).
public struct ProcessUsage: Sendable, Equatable {
    public var pid: Int32
    /// CPU seconds during the measured window.
    public var cpuSeconds: Double
    /// Resident set before the clients connected, at the end of the window, and its peak.
    public var rssStartBytes: Int
    public var rssBytes: Int
    public var peakRSSBytes: Int

    public init(pid: Int32, cpuSeconds: Double, rssStartBytes: Int, rssBytes: Int, peakRSSBytes: Int) {
        self.pid = pid
        self.cpuSeconds = cpuSeconds
        self.rssStartBytes = rssStartBytes
        self.rssBytes = rssBytes
        self.peakRSSBytes = peakRSSBytes
    }
}

/// Everything a run measured; rendered as a table (stdout) or one JSON object (--json).
public struct BenchReport: Sendable {
    public var urls: [String] = []
    public var rooms = 0
    public var clients = 0
    public var active = 0
    public var rate = 0.0
    public var warmupSeconds = 0.0
    /// Length of the measured window as it happened (it may end early on a signal).
    public var windowSeconds = 0.0
    public var connectSeconds = 0.0
    /// Handshakes that failed while connecting and were tried again.
    public var connectRetries = 0
    /// From the last welcome until the connections fell quiet (joins and rosters delivered).
    public var settleSeconds = 0.0
    public var drainSeconds = 0.0
    /// Whether the drain completed (everything acknowledged and delivered) before its timeout.
    public var drained = true

    // Counts over the whole run (warm-up, window and drain).
    public var sent = 0
    public var acked = 0
    public var late = 0
    public var expected = 0
    public var delivered = 0
    public var missing = 0
    public var duplicates = 0
    public var outOfOrder = 0
    public var unmatched = 0
    public var foreign = 0
    public var errors = 0
    public var disconnects = 0
    public var firstProblems: [String] = []

    // The measured window.
    public var windowSent = 0
    public var windowDeliveries = 0
    public var latency = LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
    public var ack = LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
    public var sendLag = LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
    /// Per op: the latency of its first receiver, and the time from its first receiver to its
    /// last (how long its fan-out took through the server and the receiving side).
    public var firstDelivery = LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
    public var fanout = LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)

    public var servers: [ProcessUsage] = []
    public var generator: ProcessUsage?
    public var cpus = 1
    public var loadAverage: Double?
    /// Busy CPU time of the whole machine during the window, and of processes other than the
    /// generator and the servers named, as percent of one CPU.
    public var machineBusyPercent: Double?

    public var interruptedBy: Int32?

    public init() {}

    public var deliveriesPerSecond: Double { windowSeconds > 0 ? Double(windowDeliveries) / windowSeconds : 0 }
    public var opsPerSecond: Double { windowSeconds > 0 ? Double(windowSent) / windowSeconds : 0 }
    public var unacknowledged: Int { sent - acked }

    /// What makes the run a failure (exit status 1): lost, duplicated or reordered deliveries,
    /// ops never acknowledged, server errors, connections lost.
    public var isClean: Bool {
        missing == 0 && duplicates == 0 && outOfOrder == 0 && unacknowledged == 0 && errors == 0 && disconnects == 0
    }

    var serverCPUSeconds: Double { servers.reduce(0) { $0 + $1.cpuSeconds } }

    func perDeliveryMicros(_ cpu: Double) -> Double? {
        windowDeliveries > 0 ? cpu * 1e6 / Double(windowDeliveries) : nil
    }

    func percentOfCPU(_ cpu: Double) -> Double? {
        windowSeconds > 0 ? cpu / windowSeconds * 100 : nil
    }

    var othersPercent: Double? {
        guard let busy = machineBusyPercent, let own = percentOfCPU(serverCPUSeconds + (generator?.cpuSeconds ?? 0)) else { return nil }
        return Swift.max(0, busy - own)
    }

    static func mib(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }

    func perConnectionKiB(_ u: ProcessUsage, connections: Int) -> Double? {
        guard connections > 0, u.rssStartBytes > 0 else { return nil }
        return Double(u.rssBytes - u.rssStartBytes) / 1024 / Double(connections)
    }

    // MARK: JSON

    /// One JSON object (no newline).
    public var json: [UInt8] {
        var w = JSONWriter(capacity: 2048)
        func num(_ v: Double, _ digits: Int = 3) {
            let scale = pow(10, Double(digits))
            w.double((v * scale).rounded() / scale)
        }
        func optional(_ v: Double?, _ digits: Int = 3) {
            if let v { num(v, digits) } else { w.null() }
        }
        func summary(_ key: StaticString, _ s: LatencySummary) {
            w.key(key)
            w.beginObject()
            w.key("p50"); num(s.p50)
            w.key("p90"); num(s.p90)
            w.key("p99"); num(s.p99)
            w.key("p999"); num(s.p999)
            w.key("max"); num(s.max)
            w.key("count"); w.int(s.count)
            w.endObject()
        }
        w.beginObject()
        w.key("urls"); w.beginArray(); for u in urls { w.string(u) }; w.endArray()
        w.key("rooms"); w.int(rooms)
        w.key("clients"); w.int(clients)
        w.key("active"); w.int(active)
        w.key("rate"); num(rate)
        w.key("warmup_s"); num(warmupSeconds)
        w.key("duration_s"); num(windowSeconds)
        w.key("connect_s"); num(connectSeconds)
        w.key("settle_s"); num(settleSeconds)
        w.key("connect_retries"); w.int(connectRetries)
        w.key("drain_s"); num(drainSeconds)
        w.key("drained"); w.bool(drained)
        w.key("sent"); w.int(sent)
        w.key("acked"); w.int(acked)
        w.key("late"); w.int(late)
        w.key("expected"); w.int(expected)
        w.key("delivered"); w.int(delivered)
        w.key("missing"); w.int(missing)
        w.key("duplicates"); w.int(duplicates)
        w.key("out_of_order"); w.int(outOfOrder)
        w.key("unmatched"); w.int(unmatched)
        w.key("foreign"); w.int(foreign)
        w.key("errors"); w.int(errors)
        w.key("disconnects"); w.int(disconnects)
        w.key("ok"); w.bool(isClean)
        w.key("window_sent"); w.int(windowSent)
        w.key("window_deliveries"); w.int(windowDeliveries)
        w.key("ops_per_s"); num(opsPerSecond, 1)
        w.key("deliveries_per_s"); num(deliveriesPerSecond, 1)
        summary("latency_ms", latency)
        summary("ack_ms", ack)
        summary("send_lag_ms", sendLag)
        summary("first_delivery_ms", firstDelivery)
        summary("fanout_ms", fanout)
        if !servers.isEmpty {
            let rss = servers.reduce(0) { $0 + $1.rssBytes }
            let peak = servers.reduce(0) { $0 + $1.peakRSSBytes }
            let start = servers.reduce(0) { $0 + $1.rssStartBytes }
            w.key("server")
            w.beginObject()
            w.key("cpu_us_per_delivery"); optional(perDeliveryMicros(serverCPUSeconds))
            w.key("cpu_percent"); optional(percentOfCPU(serverCPUSeconds), 1)
            w.key("rss_mib"); num(Self.mib(rss), 1)
            w.key("peak_rss_mib"); num(Self.mib(peak), 1)
            w.key("rss_start_mib"); num(Self.mib(start), 1)
            w.key("rss_per_connection_kib")
            optional(clients > 0 && start > 0 ? Double(rss - start) / 1024 / Double(clients) : nil, 2)
            w.key("processes")
            w.beginArray()
            for s in servers {
                w.beginObject()
                w.key("pid"); w.int(Int(s.pid))
                w.key("cpu_s"); num(s.cpuSeconds, 2)
                w.key("rss_mib"); num(Self.mib(s.rssBytes), 1)
                w.key("peak_rss_mib"); num(Self.mib(s.peakRSSBytes), 1)
                w.key("rss_start_mib"); num(Self.mib(s.rssStartBytes), 1)
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        if let g = generator {
            w.key("generator")
            w.beginObject()
            w.key("cpu_us_per_delivery"); optional(perDeliveryMicros(g.cpuSeconds))
            w.key("cpu_percent"); optional(percentOfCPU(g.cpuSeconds), 1)
            w.key("rss_mib"); num(Self.mib(g.rssBytes), 1)
            w.key("peak_rss_mib"); num(Self.mib(g.peakRSSBytes), 1)
            w.key("rss_per_connection_kib"); optional(perConnectionKiB(g, connections: clients), 2)
            w.endObject()
        }
        w.key("machine")
        w.beginObject()
        w.key("cpus"); w.int(cpus)
        w.key("load_avg"); optional(loadAverage, 2)
        w.key("busy_percent"); optional(machineBusyPercent, 1)
        w.key("others_percent"); optional(othersPercent, 1)
        w.endObject()
        if !firstProblems.isEmpty {
            w.key("problems"); w.beginArray(); for p in firstProblems { w.string(p) }; w.endArray()
        }
        if let s = interruptedBy { w.key("interrupted"); w.int(Int(s)) }
        w.endObject()
        return w.bytes
    }

    // MARK: Text

    /// A human-readable summary: a few labelled lines and a latency table.
    public var text: String {
        var out = ""
        func line(_ s: String) { out += s + "\n" }
        let target = urls.joined(separator: " ")
        line("collab-bench \(target): \(rooms) room\(rooms == 1 ? "" : "s"), \(group(clients)) clients, \(active) active at \(fixed(rate, rate == rate.rounded() ? 0 : 2)) ops/s each")
        line("window      \(fixed(windowSeconds, 1)) s after \(fixed(warmupSeconds, 1)) s warm-up (connecting took \(fixed(connectSeconds, 1)) s\(connectRetries > 0 ? " with \(connectRetries) retried" : ""), settling \(fixed(settleSeconds, 1)) s, drain \(fixed(drainSeconds, 2)) s\(drained ? "" : ", timed out"))")
        line("ops         sent \(group(sent)), acked \(group(acked)), late \(group(late)) (due while the previous op was unacknowledged)")
        line("deliveries  expected \(group(expected)), delivered \(group(delivered)), missing \(group(missing)), duplicates \(group(duplicates)), out of order \(group(outOfOrder))")
        if errors + disconnects + unmatched + foreign > 0 {
            line("problems    server errors \(group(errors)), connections lost \(group(disconnects)), unmatched \(group(unmatched)), foreign ops \(group(foreign))")
        }
        line("throughput  \(group(Int(deliveriesPerSecond.rounded()))) deliveries/s, \(fixed(opsPerSecond, 1)) ops/s in the window")
        line("")
        line("latency (ms)        p50       p90       p99     p99.9       max      count")
        for (label, s) in [("delivery", latency), ("ack", ack), ("first recv", firstDelivery), ("fan-out", fanout), ("send lag", sendLag)] {
            let cells = [s.p50, s.p90, s.p99, s.p999, s.max].map { pad(fixed($0, 2), 10) }.joined()
            line(label + String(repeating: " ", count: max(0, 12 - label.count)) + cells + pad(group(s.count), 11))
        }
        line("")
        if !servers.isEmpty {
            let rss = servers.reduce(0) { $0 + $1.rssBytes }
            let peak = servers.reduce(0) { $0 + $1.peakRSSBytes }
            let start = servers.reduce(0) { $0 + $1.rssStartBytes }
            var s = "server      "
            if let us = perDeliveryMicros(serverCPUSeconds) { s += "\(fixed(us, 2)) µs CPU per delivery, " }
            s += "\(fixed(percentOfCPU(serverCPUSeconds) ?? 0, 1)) % of a CPU; RSS \(fixed(Self.mib(rss), 1)) MiB (peak \(fixed(Self.mib(peak), 1)), before connecting \(fixed(Self.mib(start), 1))"
            if clients > 0 && start > 0 { s += ", \(fixed(Double(rss - start) / 1024 / Double(clients), 2)) KiB per connection" }
            line(s + ")")
            if servers.count > 1 {
                for p in servers {
                    line("  pid \(p.pid)   \(fixed(percentOfCPU(p.cpuSeconds) ?? 0, 1)) % of a CPU, RSS \(fixed(Self.mib(p.rssBytes), 1)) MiB (peak \(fixed(Self.mib(p.peakRSSBytes), 1)))")
                }
            }
        }
        if let g = generator {
            var s = "generator   "
            if let us = perDeliveryMicros(g.cpuSeconds) { s += "\(fixed(us, 2)) µs CPU per delivery, " }
            s += "\(fixed(percentOfCPU(g.cpuSeconds) ?? 0, 1)) % of a CPU; RSS \(fixed(Self.mib(g.rssBytes), 1)) MiB"
            if let k = perConnectionKiB(g, connections: clients) { s += " (\(fixed(k, 2)) KiB per connection)" }
            line(s)
        }
        var m = "machine     \(cpus) CPUs"
        if let l = loadAverage { m += ", load average \(fixed(l, 2)) at start" }
        if let b = machineBusyPercent { m += ", busy \(fixed(b, 0)) % of a CPU in the window" }
        if let o = othersPercent { m += " (other processes \(fixed(o, 0)) %)" }
        line(m)
        for p in firstProblems { line("problem     \(p)") }
        if let s = interruptedBy { line("interrupted by signal \(s): the window was cut short") }
        return out
    }

    /// `v` with exactly `digits` decimals.
    func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite, abs(v) < 1e15 else { return "-" }
        var scale = 1
        for _ in 0 ..< digits { scale *= 10 }
        let n = Int((abs(v) * Double(scale)).rounded())
        var text = String(n / scale)
        if digits > 0 {
            let fraction = String(n % scale)
            text += "." + String(repeating: "0", count: digits - fraction.count) + fraction
        }
        return v < 0 && n > 0 ? "-" + text : text
    }

    func group(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}
