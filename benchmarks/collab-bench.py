#!/usr/bin/env python3
"""Runs collab-bench against fresh collab-serve processes (release build), several times, and
prints each run and the medians as Markdown rows for BENCHMARKS.md. Not a timed test: these 2-core
machines are noisy, so each run also records the load average before it and how much CPU other
processes took during its window; compare ratios within one invocation and prefer quiet runs.

usage: collab-bench.py fanout|idle [--redis] [--pin] [--probe] [--runs N] [--bin DIR] [-- EXTRA collab-bench ARGS]

  fanout  1,000 clients in one room, 10 active at 5 ops/s each (about 50,000 deliveries/s),
          2 s warm-up, 20 s measured, with the server's CPU per delivery and RSS.
  idle    10,000 idle clients in 100 rooms held for 5 s: the server's RSS before and after,
          KiB per connection, and the generator's.
  --redis a redis-server (no persistence) and two collab-serve --redis instances; the clients
          are split between them (client i on instance i mod 2), so every room spans both.

Every server starts anew for each run, on a free port (--port 0). Without --redis the rooms'
journals go to a fresh directory under $COLLAB_BENCH_DATA (default /dev/shm: tmpfs, so
fdatasync costs nothing and the disk's latency stays out of the fan-out figures; name a directory
on a disk to include it). Every process started here is stopped before the script returns.
"""
import json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

SCENARIOS = {
    "fanout": ["--clients", "1000", "--active", "10", "--rate", "5", "--duration", "20", "--warmup", "2"],
    "idle": ["--clients", "10000", "--rooms", "100", "--active", "0", "--duration", "5", "--warmup", "0",
             "--connecting", "400"],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(proc, needle, timeout):
    """Waits until the child's log (stderr, in a file) has a line containing needle (bounded);
    returns that line. A file, not a pipe: a server logging a line per connection would block
    once a pipe nobody reads is full, and stall the whole run."""
    deadline = time.monotonic() + timeout
    while True:
        with open(proc.log_path, errors="replace") as f:
            lines = f.read().split("\n")[:-1]
        for text in lines:
            if needle in text:
                return text
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} did not say {needle!r} within {timeout} s: {lines[-5:]}")
        time.sleep(0.01)


class Processes:
    """Children of one run, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, cpus=None):
        self.children = []
        self.dirs = []
        self.cpus = cpus

    def start(self, args, stdout=subprocess.DEVNULL, pinned=True, **kw):
        cpus = self.cpus if pinned else None
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        if not self.dirs or not self.dirs[0].endswith("-logs"):
            self.dirs.insert(0, tempfile.mkdtemp(prefix="collab-bench-", suffix="-logs"))
        log_path = os.path.join(self.dirs[0], f"{len(self.children)}-{os.path.basename(args[0])}.log")
        with open(log_path, "w") as log:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=log, preexec_fn=pin, **kw)
        p.log_path = log_path
        self.children.append(p)
        return p

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.children):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.children):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def serve(procs, bindir, extra):
    # Every client comes from 127.0.0.1 (10,000 of them in idle): no per-address cap. The message
    # rate limit stays on, as deployed; the scenarios send far below it.
    p = procs.start([f"{bindir}/collab-serve", "--port", "0", "--log-level", "info", "--max-conns-per-ip", "0"] + extra)
    line = read_until(p, "listening on ws://", 20)
    url = line[line.index("ws://"):].split()[0]
    return p, url


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))]


def probe_split(probe_path, ops_path):
    """Episodes of the machine from the probe's timings, and the ops' latencies in and out of them."""
    samples = [tuple(map(float, line.split())) for line in open(probe_path) if len(line.split()) == 2]
    if len(samples) < 10:
        return None
    med = statistics.median(d for _, d in samples)
    # Slow runs of the work, merged when less than 50 ms apart. Being preempted by the benchmark's
    # own processes (a fan-out of a few ms) slows one run or a few; the machine's episodes slow
    # every run for about 100 ms (about 20 runs), so a group needs 8 slow runs to count.
    groups = []
    for start, d in samples:
        if d > 2 * med:
            if groups and start - groups[-1][1] < 50_000:
                groups[-1][1] = start + d
                groups[-1][2] += 1
            else:
                groups.append([start, start + d, 1])
    episodes = [(a, b) for a, b, n in groups if n >= 8]
    inside, outside = [], []
    with open(ops_path) as f:
        next(f)
        for line in f:
            _, _, _, ref, _, first, last = line.strip().split(",")
            ref, last = float(ref), float(last)
            hit = any(ref <= b and last >= a for a, b in episodes)
            (inside if hit else outside).append((last - ref) / 1000)
    span = (samples[-1][0] - samples[0][0]) / 1e6
    return {"episodes": len(episodes), "seconds": span, "median_us": med,
            "episode_ms": statistics.median((b - a) / 1000 for a, b in episodes) if episodes else 0,
            "worst_x": max(d for _, d in samples) / med,
            "inside": (len(inside), percentile(inside, 50), percentile(inside, 99)),
            "outside": (len(outside), percentile(outside, 50), percentile(outside, 99), percentile(outside, 99.9))}


def run_once(scenario, redis, bindir, extra, pin=False, probe=None):
    with Processes({0} if pin else None) as procs:
        pids, labels, urls = [], [], []
        if redis:
            port = free_port()
            workdir = tempfile.mkdtemp(prefix="collab-bench-redis-")
            procs.dirs.append(workdir)
            r = procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir, "--loglevel", "warning"])
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start")
                    time.sleep(0.02)
            for name in ("A", "B"):
                p, url = serve(procs, bindir, ["--redis", f"redis://127.0.0.1:{port}"])
                read_until(p, "redis: connected", 20)
                pids.append(p.pid); labels.append(name); urls.append(url)
            pids.append(r.pid); labels.append("redis")
        else:
            parent = os.environ.get("COLLAB_BENCH_DATA") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
            data = tempfile.mkdtemp(prefix="collab-bench-data-", dir=parent)
            procs.dirs.append(data)
            p, url = serve(procs, bindir, ["--data", data])
            pids.append(p.pid); labels.append("server"); urls.append(url)
        loadavg = open("/proc/loadavg").read().split()[0]
        args = [f"{bindir}/collab-bench", "--json", "--quiet"] + SCENARIOS[scenario] + extra
        probe_out = ops_csv = None
        if probe:
            workdir = tempfile.mkdtemp(prefix="collab-bench-probe-")
            procs.dirs.append(workdir)
            probe_out, ops_csv = os.path.join(workdir, "probe.txt"), os.path.join(workdir, "ops.csv")
            procs.start([probe, "600", "5"], stdout=open(probe_out, "w"), pinned=False)
            args += ["--ops-csv", ops_csv]
        for pid in pids:
            args += ["--server-pid", str(pid)]
        args += urls
        started = time.strftime("%H:%M:%S")
        out = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600,
                             preexec_fn=(lambda: os.sched_setaffinity(0, {1})) if pin else None)
        if out.returncode not in (0, 1) or not out.stdout.strip():
            raise RuntimeError(f"collab-bench exited {out.returncode}: {out.stderr.decode(errors='replace')}")
        result = json.loads(out.stdout)
        result["_status"] = out.returncode
        result["_labels"] = labels
        shown = [a if not a.isdigit() or a not in map(str, pids) else "PID" for a in args[1:]]
        if ops_csv:
            shown = [("OPS.csv" if a == ops_csv else a) for a in shown]
        result["_command"] = " ".join(shown)
        result["_load_before"] = float(loadavg)
        result["_time"] = started
        result["_pinned"] = pin
        if probe:
            for p in procs.children[-1:]:
                p.terminate()
                p.wait()
            result["_probe"] = probe_split(probe_out, ops_csv)
        return result


def fmt(v, digits=2):
    return "-" if v is None else f"{v:,.{digits}f}"


def per_process(result):
    """CPU µs per delivery and RSS of each measured process (A, B, redis or server)."""
    n = result.get("window_deliveries") or 0
    out = []
    for label, p in zip(result["_labels"], result.get("server", {}).get("processes", [])):
        out.append((label, p["cpu_s"] * 1e6 / n if n else None, p["rss_mib"], p["rss_start_mib"], p["peak_rss_mib"]))
    return out


def fanout_row(r):
    lat, ack = r["latency_ms"], r["ack_ms"]
    procs = per_process(r)
    servers = [p for p in procs if p[0] != "redis"]
    server_us = sum(p[1] or 0 for p in servers) if servers and r["window_deliveries"] else None
    redis_us = next((p[1] for p in procs if p[0] == "redis"), None)
    cpu = fmt(server_us) + (f" (+{fmt(redis_us)} redis)" if redis_us is not None else "")
    rss = " + ".join(fmt(p[2], 1) for p in servers)
    return (f"| {r['_time']} | {r['_load_before']:.2f} | {fmt(r['machine'].get('others_percent'), 0)} % "
            f"| {r['sent']:,} | {r['delivered']:,} | {r['missing']:,} | {fmt(r['deliveries_per_s'], 0)} "
            f"| {fmt(lat['p50'])} | {fmt(lat['p90'])} | **{fmt(lat['p99'])}** | {fmt(lat['p999'])} | {fmt(lat['max'])} "
            f"| {fmt(ack['p50'])} / {fmt(ack['p99'])} | {fmt(r['fanout_ms']['p50'])} / {fmt(r['fanout_ms']['p99'])} "
            f"| {r['late']} | {cpu} | {rss} "
            f"| {fmt(r['generator']['cpu_us_per_delivery'])} |")


def idle_row(r):
    redis = [p for p in per_process(r) if p[0] == "redis"]
    procs = [p for p in per_process(r) if p[0] != "redis"]
    clients_each = r["clients"] / max(1, len(procs))
    per = " / ".join(fmt((p[2] - p[3]) * 1024 / clients_each, 2) for p in procs)
    rss = " + ".join(f"{fmt(p[3], 1)} → {fmt(p[2], 1)}" for p in procs)
    g = r["generator"]
    if redis:
        rss += f" (redis-server {fmt(redis[0][3], 1)} → {fmt(redis[0][2], 1)})"
    return (f"| {r['_time']} | {r['_load_before']:.2f} | {r['clients']:,} | {fmt(r['connect_s'], 1)} | {rss} "
            f"| {fmt(sum(p[2] for p in procs), 1)} | {per} | {fmt(g['rss_mib'], 1)} | {fmt(g['rss_per_connection_kib'], 2)} "
            f"| {r['disconnects']} |")


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    if not argv or argv[0] not in SCENARIOS:
        sys.exit(__doc__)
    scenario, redis, runs = argv[0], "--redis" in argv, 3
    bindir = ".build-bench/release"
    for i, a in enumerate(argv):
        if a == "--runs":
            runs = int(argv[i + 1])
        if a == "--bin":
            bindir = argv[i + 1]
    probe = None
    if "--probe" in argv:
        probe = os.path.join(tempfile.mkdtemp(prefix="collab-cpu-probe-"), "cpu-probe")
        subprocess.run(["cc", "-O2", "-o", probe, os.path.join(os.path.dirname(__file__), "cpu-probe.c")], check=True)
    results = []
    for k in range(runs):
        r = run_once(scenario, redis, bindir, extra, pin="--pin" in argv, probe=probe)
        results.append(r)
        print(f"run {k + 1}/{runs} at {r['_time']}: load {r['_load_before']:.2f}, status {r['_status']}", file=sys.stderr)
    print(f"machine: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; {'two collab-serve --redis instances + redis-server' if redis else 'one collab-serve'}; {runs} runs"
          + ("; servers pinned to CPU 0, collab-bench to CPU 1" if "--pin" in argv else ""))
    print(f"command: collab-bench {results[0]['_command']}")
    print()
    if scenario == "fanout":
        print("| time | load before | others' CPU | sent | delivered | missing | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ack p50 / p99 ms | fan-out p50 / p99 ms | late | server µs CPU/delivery | server RSS MiB | generator µs CPU/delivery |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(fanout_row(r))
        med = lambda f: statistics.median(f(r) for r in results)
        servers_us = [sum(p[1] or 0 for p in per_process(r) if p[0] != "redis") for r in results]
        print()
        print(f"median of {runs}: p50 {med(lambda r: r['latency_ms']['p50']):.2f} ms, p99 {med(lambda r: r['latency_ms']['p99']):.2f} ms, "
              f"p99.9 {med(lambda r: r['latency_ms']['p999']):.2f} ms, max {med(lambda r: r['latency_ms']['max']):.2f} ms; "
              f"server {statistics.median(servers_us):.2f} µs CPU per delivery; "
              f"{med(lambda r: r['deliveries_per_s']):,.0f} deliveries/s; missing in all runs: {sum(r['missing'] for r in results)}")
        if probe:
            print()
            print("The machine's episodes (cpu-probe: 100 µs of fixed work every 5 ms; an episode is at least 8 runs of it taking over twice its median, less than 50 ms apart) and the latency of each op's last receiver, for ops that overlapped an episode and for the others:")
            print()
            print("| time | episodes | every (s) | episode length ms (median) | worst slowdown | ops in episodes | their last receiver p50 / p99 ms | other ops | their last receiver p50 / p99 / p99.9 ms |")
            print("|---|---|---|---|---|---|---|---|---|")
            for r in results:
                pr = r.get("_probe")
                if not pr:
                    continue
                ni, i50, i99 = pr["inside"]
                no, o50, o99, o999 = pr["outside"]
                every = pr["seconds"] / pr["episodes"] if pr["episodes"] else None
                print(f"| {r['_time']} | {pr['episodes']} | {fmt(every, 1)} | {fmt(pr['episode_ms'], 0)} | ×{pr['worst_x']:.1f} "
                      f"| {ni} of {ni + no} | {fmt(i50)} / {fmt(i99)} | {no} | {fmt(o50)} / {fmt(o99)} / {fmt(o999)} |")
    else:
        print("| time | load before | clients | connect s | server RSS MiB before → after | server RSS MiB | KiB per connection (server) | generator RSS MiB | KiB per connection (generator) | lost |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(idle_row(r))
        print()
        totals = [sum(p[2] for p in per_process(r) if p[0] != "redis") for r in results]
        print(f"median of {runs}: server RSS {statistics.median(totals):.1f} MiB with {results[0]['clients']:,} idle connections")
    bad = [r for r in results if r["_status"] != 0]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
