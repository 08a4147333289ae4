#!/usr/bin/env python3
"""Runs a command several times and reports wall time and peak RSS of each run, measured per
child with wait4(2) (not with a timed test: these 2-core machines are noisy, so take the median
and the minimum of several runs, and compare ratios measured in one run of this script).

usage: measure.py RUNS LABEL STDIN_FILE|- STDOUT_FILE|- -- COMMAND [ARG ...]
prints one JSON object: {"label", "runs", "wall_s": {"min","median"}, "cpu_s": {"median"}, "max_rss_mib"}
"""
import json, os, statistics, sys, time

def main():
    runs, label, stdin_path, stdout_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    assert sys.argv[5] == "--"
    cmd = sys.argv[6:]
    walls, cpus, rss = [], [], []
    for _ in range(runs):
        fin = os.open(stdin_path if stdin_path != "-" else "/dev/null", os.O_RDONLY)
        fout = os.open(stdout_path if stdout_path != "-" else "/dev/null", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        start = time.perf_counter()
        pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, fin, 0), (os.POSIX_SPAWN_DUP2, fout, 1)])
        _, status, usage = os.wait4(pid, 0)
        walls.append(time.perf_counter() - start)
        os.close(fin); os.close(fout)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{label}: command failed with status {os.waitstatus_to_exitcode(status)}")
        cpus.append(usage.ru_utime + usage.ru_stime)
        rss.append(usage.ru_maxrss / 1024)
    print(json.dumps({"label": label, "runs": runs,
                      "wall_s": {"min": round(min(walls), 4), "median": round(statistics.median(walls), 4)},
                      "cpu_s": {"median": round(statistics.median(cpus), 4)},
                      "max_rss_mib": round(max(rss), 1)}))

main()
