#!/usr/bin/env python3
"""ws:// against wss:// through the same collab-bench load, alternating runs on fresh servers, so
the noise of these 2-core machines falls on both alike; prints Markdown rows and medians.

usage: tls.py --bin DIR [--runs N] [-- EXTRA collab-bench ARGS]
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

LOAD = ["--clients", "200", "--active", "10", "--rate", "20", "--duration", "10", "--warmup", "2"]


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_certificates(d):
    """A throwaway CA and a server certificate for 127.0.0.1 (EC P-256), as the tests make them."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=bench CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    openssl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/key.pem", "-out", f"{d}/req.csr")
    openssl("x509", "-req", "-in", f"{d}/req.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/cert.pem")


def run_once(bin_dir, secure, certs, extra):
    """A fresh server (journals on tmpfs unless COLLAB_BENCH_DATA), one bench run, the server
    stopped whatever happens. Returns the bench's JSON with the load average before it."""
    data = tempfile.mkdtemp(prefix="collab-tls-bench-", dir=os.environ.get("COLLAB_BENCH_DATA", "/dev/shm"))
    log_path = os.path.join(data, "serve.log")
    tls = ["--tls-cert", f"{certs}/cert.pem", "--tls-key", f"{certs}/key.pem"] if secure else []
    with open(log_path, "w") as log:
        server = subprocess.Popen([f"{bin_dir}/collab-serve", "--port", "0", "--data", f"{data}/rooms",
                                   "--log-level", "warn", *tls], stdin=subprocess.DEVNULL, stderr=log)
    try:
        scheme = "wss" if secure else "ws"
        deadline = time.monotonic() + 15
        url = None
        while url is None:
            with open(log_path, errors="replace") as f:
                for line in f:
                    if "listening on " in line:
                        url = line.split("listening on ", 1)[1].strip()
            if url is None:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"collab-serve did not start: {open(log_path).read()[-500:]}")
                time.sleep(0.01)
        assert url.startswith(scheme + "://"), url
        load = os.getloadavg()[0]
        started = time.strftime("%H:%M:%S")
        trust = ["--ca-file", f"{certs}/ca.pem"] if secure else []
        bench = subprocess.run([f"{bin_dir}/collab-bench", "--json", "--quiet", "--server-pid", str(server.pid),
                                *LOAD, *trust, *extra, url], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=300)
        r = json.loads(bench.stdout) if bench.stdout.strip() else {}
        r["_status"] = bench.returncode
        r["_stderr"] = bench.stderr[-500:]
        r["_scheme"] = scheme
        r["_load_before"] = load
        r["_time"] = started
        return r
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(data, ignore_errors=True)


def fmt(v, digits=2):
    return "-" if v is None else f"{v:,.{digits}f}"


def row(r):
    lat, ack, srv, gen = r.get("latency_ms", {}), r.get("ack_ms", {}), r.get("server", {}), r.get("generator", {})
    return (f"| {r['_time']} | {r['_scheme']} | {r['_load_before']:.2f} | {fmt(r.get('machine', {}).get('others_percent'), 0)} % "
            f"| {r.get('sent', 0):,} | {r.get('delivered', 0):,} | {r.get('missing', '-')} | {fmt(r.get('deliveries_per_s'), 0)} "
            f"| {fmt(lat.get('p50'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('p999'))} | {fmt(ack.get('p50'))} / {fmt(ack.get('p99'))} "
            f"| {fmt(srv.get('cpu_us_per_delivery'))} | {fmt(srv.get('rss_mib'), 1)} | {fmt(gen.get('cpu_us_per_delivery'))} |")


def main(argv):
    bin_dir, runs, extra = None, 3, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--bin": bin_dir = argv[i + 1]; i += 2
        elif a == "--runs": runs = int(argv[i + 1]); i += 2
        elif a == "--": extra = argv[i + 1:]; break
        else: sys.exit(__doc__)
    if not bin_dir: sys.exit(__doc__)
    certs = tempfile.mkdtemp(prefix="collab-tls-certs-")
    try:
        make_certificates(certs)
        results = []
        for k in range(runs):
            for secure in (False, True):
                r = run_once(bin_dir, secure, certs, extra)
                print(f"run {k + 1}/{runs} {r['_scheme']} at {r['_time']}: load {r['_load_before']:.2f}, status {r['_status']}",
                      file=sys.stderr)
                if r["_status"] != 0: print(r["_stderr"], file=sys.stderr)
                results.append(r)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    print("| time | scheme | load before | others' CPU | sent | delivered | missing | deliveries/s | p50 ms | p99 ms | p99.9 ms | ack p50 / p99 ms | server µs CPU/delivery | server RSS MiB | generator µs CPU/delivery |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results: print(row(r))
    print()
    for scheme in ("ws", "wss"):
        rs = [r for r in results if r["_scheme"] == scheme and r["_status"] == 0]
        if not rs: continue
        def med(*path, digits=2):
            values = []
            for r in rs:
                v = r
                for k in path: v = (v or {}).get(k)
                if v is not None: values.append(v)
            return fmt(statistics.median(values), digits) if values else "-"
        print(f"{scheme}: median of {len(rs)}: p50 {med('latency_ms', 'p50')} ms, p99 {med('latency_ms', 'p99')} ms, "
              f"ack p50 {med('ack_ms', 'p50')} ms, server {med('server', 'cpu_us_per_delivery')} µs CPU/delivery, "
              f"RSS {med('server', 'rss_mib', digits=1)} MiB ({med('server', 'rss_per_connection_kib', digits=1)} KiB per connection), "
              f"generator {med('generator', 'cpu_us_per_delivery')} µs CPU/delivery")
    return 0 if all(r["_status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
