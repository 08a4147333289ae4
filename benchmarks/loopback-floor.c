// What the kernel alone charges for collab-serve's fan-out on loopback TCP: a sender writes one
// small message to each of N connections per round (one send() per recipient, as a WebSocket
// server does), ROUNDS per second; a receiver process reads them, waiting with epoll or with
// poll() over all N descriptors (as libwebsockets 4.1 does). Prints the CPU time (user + system,
// from getrusage) of each side per message. No WebSocket framing, no JSON, no event library: the
// floor under any server and any load generator on this machine.
//
// usage: loopback-floor N MESSAGE_BYTES ROUNDS_PER_S SECONDS epoll|poll [OPS_PER_MESSAGE]
// (OPS_PER_MESSAGE: how many ops one message stands for, when it batches several; the costs are
// then also printed per op.)
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(int who) {
    struct rusage u;
    getrusage(who, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s N MESSAGE_BYTES ROUNDS_PER_S SECONDS epoll|poll [OPS_PER_MESSAGE]\n", argv[0]);
        return 64;
    }
    int n = atoi(argv[1]), size = atoi(argv[2]);
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    int use_epoll = strcmp(argv[5], "epoll") == 0;
    int ops = argc == 7 ? atoi(argv[6]) : 1;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096) ||
        getsockname(listener, (struct sockaddr *)&addr, &len)) {
        perror("listen");
        return 1;
    }
    int *out = calloc(n, sizeof *out), *in = calloc(n, sizeof *in);
    for (int i = 0; i < n; i++) {
        in[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(in[i], (struct sockaddr *)&addr, sizeof addr)) { perror("connect"); return 1; }
        out[i] = accept(listener, NULL, NULL);
        int one = 1;
        setsockopt(out[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    long total = (long)(rate * seconds) * n;
    pid_t child = fork();
    if (child == 0) {
        // Receiver: read until every message has arrived.
        for (int i = 0; i < n; i++) close(out[i]);
        char buf[65536];
        long bytes = 0, want = total * size;
        double c0 = cpu(RUSAGE_SELF);
        if (use_epoll) {
            int ep = epoll_create1(0);
            for (int i = 0; i < n; i++) {
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = in[i]};
                epoll_ctl(ep, EPOLL_CTL_ADD, in[i], &ev);
            }
            struct epoll_event evs[1024];
            while (bytes < want) {
                int k = epoll_wait(ep, evs, 1024, 5000);
                if (k <= 0) break;
                for (int j = 0; j < k; j++) {
                    ssize_t r = recv(evs[j].data.fd, buf, sizeof buf, 0);
                    if (r > 0) bytes += r;
                }
            }
        } else {
            struct pollfd *fds = calloc(n, sizeof *fds);
            for (int i = 0; i < n; i++) fds[i] = (struct pollfd){.fd = in[i], .events = POLLIN};
            while (bytes < want) {
                int k = poll(fds, n, 5000);
                if (k <= 0) break;
                for (int i = 0; i < n && k > 0; i++) {
                    if (!fds[i].revents) continue;
                    k--;
                    ssize_t r = recv(fds[i].fd, buf, sizeof buf, 0);
                    if (r > 0) bytes += r;
                }
            }
        }
        double c = cpu(RUSAGE_SELF) - c0;
        printf("receiver (%s): %.2f µs CPU per message, %.2f per op (%ld of %ld bytes)\n", use_epoll ? "epoll" : "poll",
               c * 1e6 / (bytes / size), c * 1e6 / (bytes / size) / ops, bytes, want);
        return bytes == want ? 0 : 1;
    }
    for (int i = 0; i < n; i++) close(in[i]);
    char *msg = malloc(size);
    memset(msg, 'x', size);
    double start = now(), c0 = cpu(RUSAGE_SELF);
    long rounds = (long)(rate * seconds);
    for (long r = 0; r < rounds; r++) {
        double due = start + r / rate;
        double wait = due - now();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        for (int i = 0; i < n; i++) {
            if (send(out[i], msg, size, 0) != size) { perror("send"); return 1; }
        }
    }
    double c = cpu(RUSAGE_SELF) - c0;
    printf("sender: %.2f µs CPU per message, %.2f per op (%ld messages, %d connections, %d bytes, %.0f per second)\n",
           c * 1e6 / total, c * 1e6 / total / ops, total, n, size, total / (now() - start));
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
