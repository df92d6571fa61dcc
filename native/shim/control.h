/* The control socket <state-dir>/shim.sock: AF_UNIX stream, mode 0600.
 * A client sends one JSON request line and gets one JSON response line:
 *   {"op":"state"}          -> {"status":"running","pid":M,"startedAt":"…"}
 *                              or {"status":"stopped", …exit.json fields}
 *   {"op":"kill","signal":N}-> {"ok":true} or {"ok":false,"error":"…"}
 *   {"op":"wait"}           -> the exit.json object, once the container exited
 *   anything else           -> {"ok":false,"error":"…"}
 * After the response the shim shuts down its side and closes once the client
 * has closed (closing with unread input would reset the connection and could
 * cost the client the response). */
#ifndef BERTH_SHIM_CONTROL_H
#define BERTH_SHIM_CONTROL_H

#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "container.h"
#include "error.h"

#define CTL_MAX_CLIENTS 64
#define CTL_REQUEST_MAX 4096

struct ctl_client
{
  int fd; /* -1: free slot */
  bool waiting;
  bool eof;      /* the client shut down its side; still owed an answer */
  bool draining; /* answered: discarding input until the client closes */
  size_t len;
  char *buf; /* CTL_REQUEST_MAX bytes, kept apart so idle slots touch no memory */
};

struct ctl_server
{
  int listen_fd;
  char path[PATH_MAX];
  struct ctl_client clients[CTL_MAX_CLIENTS];
};

/* Binds <state_dir>/shim.sock (mode 0600) and listens. */
int ctl_open(struct ctl_server *s, const char *state_dir, shim_error_t *err);

/* True when a live shim answers on <state_dir>/shim.sock. */
bool ctl_probe(const char *state_dir);

/* Closes everything and removes the socket file. */
void ctl_close(struct ctl_server *s);

/* The poll events to ask for on listen_fd: none while every slot is busy
 * (further clients wait in the listen backlog). */
short ctl_listen_events(const struct ctl_server *s);

/* Accepts pending connections while there are slots (call when readable). */
void ctl_accept(struct ctl_server *s);

/* The poll events to ask for on client i. */
short ctl_client_events(const struct ctl_server *s, size_t i);

/* Handles poll's revents for client i: reads, answers a complete request. */
void ctl_client_event(struct ctl_server *s, size_t i, short revents, struct container *c);

/* Hands the pages of idle slots' request buffers back to the kernel. */
void ctl_release_memory(struct ctl_server *s);

/* Answers every pending `wait` (call once the container is STOPPED). */
void ctl_answer_waiters(struct ctl_server *s, const struct container *c);

#endif
