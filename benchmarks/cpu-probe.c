// How steady this machine's CPUs are: a fixed computation (calibrated to about 100 µs) run every
// PERIOD_MS, each timed on CLOCK_MONOTONIC. On the VMs this project is measured on, the same
// computation was seen to take up to 13 times its median for about 100 ms every 1.5 to 2 s, with
// the machine otherwise idle: whatever runs during such an episode is that much slower, below
// anything the guest's scheduler or our code decides. Used next to collab-bench to tell the
// machine's episodes from the software's own tail (benchmarks/collab-bench.py --probe).
//
// usage: cpu-probe SECONDS [PERIOD_MS]     prints "monotonic_us duration_us" per run of the work
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static volatile uint64_t sink;

static double work(long iterations) {
    double a = now();
    uint64_t x = sink;
    for (long i = 0; i < iterations; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = x;
    return now() - a;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SECONDS [PERIOD_MS]\n", argv[0]);
        return 64;
    }
    double seconds = atof(argv[1]), period = (argc > 2 ? atof(argv[2]) : 5) / 1e3;
    // Line by line: it is usually stopped with a signal, and every line up to then counts.
    setvbuf(stdout, NULL, _IOLBF, 0);
    // Calibrate: the median of a few short runs, scaled to 100 µs.
    double t[31];
    for (int i = 0; i < 31; i++) t[i] = work(20000);
    qsort(t, 31, sizeof t[0], cmp);
    long iterations = (long)(20000 * 100e-6 / t[15]);
    double end = now() + seconds;
    while (now() < end) {
        double a = now();
        double d = work(iterations);
        printf("%.0f %.1f\n", a * 1e6, d * 1e6);
        double rest = period - (now() - a);
        if (rest > 0) {
            struct timespec s = {(time_t)rest, (long)((rest - (time_t)rest) * 1e9)};
            nanosleep(&s, NULL);
        }
    }
    return 0;
}
