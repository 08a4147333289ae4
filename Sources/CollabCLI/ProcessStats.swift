// What collab-bench reads about processes and the machine from /proc (Linux), and the open-file
// limit it needs for thousands of connections. Parsing is separate from reading so tests can
// feed it text.
#if canImport(Glibc)
import Glibc
#endif

/// CPU time and memory of one process at one moment.
public struct ProcessSample: Sendable, Equatable {
    /// User + system CPU time, seconds (clock-tick resolution: 10 ms on usual kernels).
    public var cpuSeconds: Double
    /// Resident set now (VmRSS), bytes.
    public var rssBytes: Int
    /// Peak resident set so far (VmHWM), bytes.
    public var peakRSSBytes: Int

    public init(cpuSeconds: Double, rssBytes: Int, peakRSSBytes: Int) {
        self.cpuSeconds = cpuSeconds
        self.rssBytes = rssBytes
        self.peakRSSBytes = peakRSSBytes
    }
}

public enum ProcStat {
    /// utime + stime in clock ticks from the text of /proc/PID/stat. The command name (field 2)
    /// is in parentheses and may itself contain spaces and parentheses, so fields are counted
    /// from the last ')'.
    public static func cpuTicks(stat text: String) -> Int? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After ")": state is field 3 of the line, so utime (14) and stime (15) are at 11 and 12.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// A "Key:   1234 kB" line of /proc/PID/status, in bytes.
    public static func statusBytes(_ key: String, status text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            let rest = line.dropFirst(key.count)
            guard rest.first == ":" else { continue }
            let parts = rest.dropFirst().split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let n = parts.first.flatMap({ Int($0) }) else { return nil }
            let unit = parts.count > 1 ? parts[1] : "B"
            switch unit {
            case "kB": return n * 1024
            case "mB": return n * 1024 * 1024
            default: return n
            }
        }
        return nil
    }

    /// The first line of /proc/stat ("cpu  user nice system idle iowait ..."): idle + iowait
    /// ticks. Unlike the busy columns, which are sampled at the tick and miss processes that run
    /// for microseconds thousands of times a second, idle time is accounted exactly (nohz), so
    /// CPUs × elapsed − idle is how busy the machine was.
    public static func idleTicks(procStat text: String) -> Int? {
        guard let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let v = line.split(separator: " ").dropFirst().compactMap { Int($0) }
        guard v.count >= 5 else { return nil }
        return v[3] + v[4]
    }

    /// The 1-minute load average from /proc/loadavg.
    public static func loadAverage(_ text: String) -> Double? {
        text.split(separator: " ").first.flatMap { Double($0) }
    }

    public static var ticksPerSecond: Double { Double(sysconf(Int32(_SC_CLK_TCK))) }

    /// Reads a small file of /proc whole (their size is not known in advance: st_size is 0).
    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: chunk[..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// CPU time and memory of `pid` (nil when it does not exist or /proc is not readable).
    public static func sample(pid: Int32) -> ProcessSample? {
        let base = pid == 0 ? "/proc/self" : "/proc/\(pid)"
        guard let stat = read("\(base)/stat"), let ticks = cpuTicks(stat: stat),
              let status = read("\(base)/status") else { return nil }
        return ProcessSample(cpuSeconds: Double(ticks) / ticksPerSecond,
                             rssBytes: statusBytes("VmRSS", status: status) ?? 0,
                             peakRSSBytes: statusBytes("VmHWM", status: status) ?? 0)
    }

    /// This process: CPU from getrusage (microseconds, finer than /proc's ticks).
    public static func sampleSelf() -> ProcessSample {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let status = read("/proc/self/status") ?? ""
        return ProcessSample(cpuSeconds: cpu, rssBytes: statusBytes("VmRSS", status: status) ?? 0,
                             peakRSSBytes: statusBytes("VmHWM", status: status) ?? Int(usage.ru_maxrss) * 1024)
    }

    /// The machine's idle seconds so far, summed over CPUs.
    public static func machineIdleSeconds() -> Double? {
        read("/proc/stat").flatMap(idleTicks(procStat:)).map { Double($0) / ticksPerSecond }
    }

    public static func machineLoadAverage() -> Double? {
        read("/proc/loadavg").flatMap(loadAverage)
    }

    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
