#!/usr/bin/env python3
"""What checking tokens costs collab-serve: N clients connect and join (collab-bench, idle), to an
open server and to one with --auth-secret-file, alternately in one invocation, each on a fresh
release server. Reports the wall time until every client had its welcome and the server's CPU time
per admitted connection (utime+stime from /proc, before the first connection and after the last
welcome). Not a timed test: compare the two columns of one invocation.

usage: auth.py [--runs N] [--clients N] [--bin DIR]
"""
import json, os, statistics, subprocess, sys, tempfile, time

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def read_until(proc, needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"no '{needle}' from collab-serve")

def run(bindir, clients, auth, workdir):
    args = [f"{bindir}/collab-serve", "--port", "0", "--data", tempfile.mkdtemp(dir=workdir), "--log-level", "warn",
            "--max-conns-per-ip", "0"]  # every client comes from 127.0.0.1
    bench = [f"{bindir}/collab-bench", "--json", "--quiet", "--clients", str(clients), "--rooms", str(max(1, clients // 100)),
             "--active", "0", "--duration", "0.5", "--warmup", "0", "--connecting", "200"]
    if auth:
        secret = os.path.join(workdir, "secret")
        with open(secret, "w") as f:
            f.write("benchmark secret of more than thirty-two bytes\n")
        args += ["--auth-secret-file", secret]
        token = subprocess.run([f"{bindir}/collab-serve", "token", "--auth-secret-file", secret, "--user", "bench",
                                "--room", "**"], check=True, capture_output=True, text=True).stdout.strip()
        bench += ["--token", token]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = read_until(server, "listening on ws://", 20)
        url = line[line.index("ws://"):].split()[0]
        load = float(open("/proc/loadavg").read().split()[0])
        before = cpu_seconds(server.pid)
        out = subprocess.run(bench + [url], capture_output=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"collab-bench exited {out.returncode}: {out.stderr.decode(errors='replace')}")
        after = cpu_seconds(server.pid)
        r = json.loads(out.stdout)
        # The server's CPU covers the connects, the joins and the closes at the end.
        return {"load": load, "connect_s": r["connect_s"], "cpu_us": (after - before) / clients * 1e6}
    finally:
        server.terminate()
        server.wait()

def main():
    argv = sys.argv[1:]
    runs, clients, bindir = 3, 2000, ".build-bench/release"
    for i, a in enumerate(argv):
        if a == "--runs": runs = int(argv[i + 1])
        if a == "--clients": clients = int(argv[i + 1])
        if a == "--bin": bindir = argv[i + 1]
    rows = []
    with tempfile.TemporaryDirectory(prefix="collab-auth-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as workdir:
        for k in range(runs):
            for auth in (False, True):
                r = run(bindir, clients, auth, workdir)
                r.update(time=time.strftime("%H:%M:%S"), auth=auth)
                rows.append(r)
                print(f"run {k + 1}/{runs} {'tokens' if auth else 'open'}: {r}", file=sys.stderr)
    print(f"machine: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; {clients:,} clients in {max(1, clients // 100)} rooms, {runs} runs of each, alternating")
    print()
    print("| time | load before | server | clients connected and welcomed in s | server CPU µs per connection |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['time']} | {r['load']:.2f} | {'--auth-secret-file' if r['auth'] else 'open'} | {r['connect_s']:.2f} | {r['cpu_us']:.0f} |")
    med = lambda auth, key: statistics.median(r[key] for r in rows if r["auth"] == auth)
    print()
    print(f"median: open {med(False, 'connect_s'):.2f} s, {med(False, 'cpu_us'):.0f} µs per connection; "
          f"with tokens {med(True, 'connect_s'):.2f} s, {med(True, 'cpu_us'):.0f} µs per connection "
          f"(×{med(True, 'cpu_us') / med(False, 'cpu_us'):.2f} CPU)")

if __name__ == "__main__":
    sys.exit(main())
