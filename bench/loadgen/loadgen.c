/*
 * loadgen: independent HTTP/1.1 keep-alive clients at a constant rate, for
 * latency figures without coordinated omission (as wrk2 measures).
 *
 *   loadgen [-w WARMUP_SECONDS] HOST PORT PATH CLIENTS RATE_PER_CLIENT SECONDS [HEADER ...]
 *
 * Each client owns one connection and sends GET PATH every 1/RATE_PER_CLIENT
 * seconds from a random phase of its own, so the clients' requests do not
 * arrive in step (Debian's hey ticks all the workers of one process together).
 * A request due while the client still waits for the previous answer goes out
 * as soon as that answer is in, and its latency counts from when it was due.
 * Prints one line per answer, "<latency µs> <status>", on stdout; errors on
 * stderr, exit status 1 when a connection fails. With -w, the clients first
 * send at the same rate for WARMUP_SECONDS and those answers are not printed
 * (as wrk2's calibration period): the figures are of the steady state, not of
 * the server settling after whatever ran before.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct client {
	int fd;
	uint64_t next_due; /* ns, CLOCK_MONOTONIC: when the next request is due */
	uint64_t sent_due; /* when the request in flight was due; 0 when idle */
	size_t have;       /* bytes of the current answer read so far */
	char buf[BUF_SIZE];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * The length of a complete answer at the start of buf (head and body), 0 while
 * incomplete, -1 when it cannot be read. Bodies: Content-Length or chunked.
 */
static long answer_length(const char *buf, size_t len, int *status)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end) return 0;
	size_t head = (size_t)(end - buf) + 4;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) return -1;
	*status = atoi(buf + 9);
	long body = -1;
	int chunked = 0;
	for (const char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
		if (strncasecmp(line, "content-length:", 15) == 0) body = atol(line + 15);
		else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && memmem(line, (size_t)(strstr(line, "\r\n") - line), "chunked", 7)) chunked = 1;
	}
	if (!chunked) return body < 0 ? -1 : (head + (size_t)body <= len ? (long)(head + (size_t)body) : 0);
	size_t at = head;
	for (;;) {
		const char *eol = memmem(buf + at, len - at, "\r\n", 2);
		if (!eol) return 0;
		size_t size = strtoul(buf + at, NULL, 16);
		at = (size_t)(eol - buf) + 2 + size + 2;
		if (at > len) return 0;
		if (size == 0) return (long)at;
	}
}

int main(int argc, char **argv)
{
	double warmup = 0;
	if (argc > 2 && strcmp(argv[1], "-w") == 0) {
		warmup = atof(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc < 7 || warmup < 0) {
		fprintf(stderr, "usage: loadgen [-w WARMUP_SECONDS] HOST PORT PATH CLIENTS RATE_PER_CLIENT SECONDS [HEADER ...]\n");
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	int clients = atoi(argv[4]);
	double rate = atof(argv[5]);
	double seconds = atof(argv[6]);
	if (port <= 0 || clients <= 0 || rate <= 0 || seconds <= 0) {
		fprintf(stderr, "loadgen: PORT, CLIENTS, RATE_PER_CLIENT and SECONDS must be positive\n");
		return 2;
	}
	char request[8192];
	int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n", argv[3], host, port);
	for (int i = 7; i < argc && n < (int)sizeof request; i++) n += snprintf(request + n, sizeof request - (size_t)n, "%s\r\n", argv[i]);
	if (n + 2 >= (int)sizeof request) {
		fprintf(stderr, "loadgen: the headers are too long\n");
		return 2;
	}
	n += snprintf(request + n, sizeof request - (size_t)n, "\r\n");

	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
		return 2;
	}
	int ep = epoll_create1(0);
	int timer = timerfd_create(CLOCK_MONOTONIC, 0);
	if (ep < 0 || timer < 0) die("epoll/timerfd");
	struct epoll_event tev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev) < 0) die("epoll_ctl");

	uint64_t period = (uint64_t)(1e9 / rate);
	uint64_t start = now_ns() + 100000000u; /* connect first, then begin */
	uint64_t measured_from = start + (uint64_t)(warmup * 1e9);
	uint64_t stop = measured_from + (uint64_t)(seconds * 1e9);
	struct client *cs = calloc((size_t)clients, sizeof *cs);
	if (!cs) die("calloc");
	srand((unsigned)(start ^ (uint64_t)getpid()));
	for (int i = 0; i < clients; i++) {
		struct client *c = &cs[i];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->next_due = start + (uint64_t)((double)rand() / RAND_MAX * (double)period);
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
	}

	int pending = 0; /* requests in flight */
	for (;;) {
		uint64_t now = now_ns();
		uint64_t wake = UINT64_MAX;
		for (int i = 0; i < clients; i++) {
			struct client *c = &cs[i];
			if (c->sent_due == 0 && c->next_due < stop && c->next_due <= now) {
				if (write(c->fd, request, (size_t)n) != n) die("write");
				c->sent_due = c->next_due;
				c->next_due += period;
				pending++;
			}
			if (c->sent_due == 0 && c->next_due < stop && c->next_due < wake) wake = c->next_due;
		}
		if (wake == UINT64_MAX && pending == 0) break;
		if (wake != UINT64_MAX) {
			struct itimerspec its = { .it_value = { .tv_sec = (time_t)(wake / 1000000000u), .tv_nsec = (long)(wake % 1000000000u) } };
			if (timerfd_settime(timer, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
		}
		struct epoll_event events[256];
		int ready = epoll_wait(ep, events, 256, wake == UINT64_MAX ? 10000 : -1);
		if (ready < 0 && errno != EINTR) die("epoll_wait");
		if (ready == 0) {
			fprintf(stderr, "loadgen: no answer for 10 s\n");
			return 1;
		}
		for (int e = 0; e < ready; e++) {
			struct client *c = events[e].data.ptr;
			if (!c) {
				uint64_t expirations;
				if (read(timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timer");
				continue;
			}
			ssize_t got = read(c->fd, c->buf + c->have, BUF_SIZE - 1 - c->have);
			if (got <= 0) {
				fprintf(stderr, "loadgen: the server closed a connection\n");
				return 1;
			}
			c->have += (size_t)got;
			c->buf[c->have] = '\0';
			int status = 0;
			long len = answer_length(c->buf, c->have, &status);
			if (len < 0 || (len == 0 && c->have >= BUF_SIZE - 1)) {
				fprintf(stderr, "loadgen: an answer could not be read\n");
				return 1;
			}
			if (len == 0 || c->sent_due == 0) continue;
			if (c->sent_due >= measured_from) printf("%llu %d\n", (unsigned long long)((now_ns() - c->sent_due) / 1000u), status);
			memmove(c->buf, c->buf + len, c->have - (size_t)len);
			c->have -= (size_t)len;
			c->sent_due = 0;
			pending--;
		}
	}
	for (int i = 0; i < clients; i++) close(cs[i].fd);
	free(cs);
	return 0;
}
