/* The smallest Berth function: a static HTTP server in C (musl, about 30 KB).
 * Listens on $PORT, answers every request with a short text, keeps connections
 * alive, one forked child per connection. PID 1 in its container, so SIGTERM is
 * handled explicitly. Build: musl-gcc -static -Os -s -o server server.c */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body[] = "Hello from a static Berth function\n";

static void on_term(int sig) { (void) sig; _exit(0); }

/* Serves one connection until the client closes it or asks to. */
static void serve(int fd) {
  char buf[16384];
  size_t have = 0;
  for (;;) {
    char *end;
    while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
      if (have == sizeof buf) return;
      ssize_t n = read(fd, buf + have, sizeof buf - have);
      if (n <= 0) return;
      have += (size_t) n;
    }
    size_t head = (size_t) (end - buf) + 4;
    long length = 0;
    int close_after = 0;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
      if (strncasecmp(line + 2, "content-length:", 15) == 0) length = strtol(line + 17, NULL, 10);
      if (strncasecmp(line + 2, "connection:", 11) == 0 && strstr(line + 13, "close") && strstr(line + 13, "close") < strstr(line + 2, "\r\n")) close_after = 1;
    }
    /* Skip the body: what is buffered, then the rest from the socket. */
    size_t in_buf = have - head < (size_t) length ? have - head : (size_t) length;
    long left = length - (long) in_buf;
    memmove(buf, buf + head + in_buf, have - head - in_buf);
    have -= head + in_buf;
    while (left > 0) {
      char sink[4096];
      ssize_t n = read(fd, sink, left < (long) sizeof sink ? (size_t) left : sizeof sink);
      if (n <= 0) return;
      left -= n;
    }
    char out[256];
    int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
                     sizeof body - 1, close_after ? "Connection: close\r\n" : "", body);
    if (write(fd, out, (size_t) n) != n || close_after) return;
  }
}

int main(void) {
  const char *port = getenv("PORT");
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
  int s = socket(AF_INET6, SOCK_STREAM, 0), off = 0, on = 1;
  if (s < 0) { perror("socket"); return 1; }
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in6 addr = { .sin6_family = AF_INET6, .sin6_port = htons((unsigned short) atoi(port ? port : "8080")), .sin6_addr = IN6ADDR_ANY_INIT };
  if (bind(s, (struct sockaddr *) &addr, sizeof addr) < 0 || listen(s, 1024) < 0) { perror("listen"); return 1; }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) { if (errno == EINTR) continue; perror("accept"); continue; }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    pid_t pid = fork();
    if (pid == 0) { close(s); serve(c); _exit(0); }
    close(c);
  }
}
