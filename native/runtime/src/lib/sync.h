/* Messages between `create` and the container init over a SOCK_SEQPACKET pair. */
#ifndef BERTH_SYNC_H
#define BERTH_SYNC_H

#include "error.h"

enum sync_type
{
  SYNC_GO = 1, /* parent → init: ids mapped, limits set; status is a GO_* */
  SYNC_READY,  /* init → parent: set up, about to wait for `start` (or exec) */
  SYNC_ERROR,  /* init → parent: setup failed, msg says why */
  SYNC_CREATED, /* parent → init: devices limited, state recorded; go on */
};

/* How the init gets into its cgroups. */
enum
{
  GO_JOIN_ALL, /* write "0" to every hierarchy itself */
  GO_JOIN_V1,  /* cgroup2 joined by CLONE_INTO_CGROUP: only the v1 hierarchies */
  GO_JOINED,   /* the parent moved it (user namespaces: the init may not write) */
};

struct sync_msg
{
  int type;
  int status;
  char msg[3072];
};

int sync_send (int fd, int type, int status, const char *msg);
/* Fails with "… exited during setup" on EOF. */
int sync_recv (int fd, struct sync_msg *m, berth_error_t *err);

#endif
