/* What the monitor knows about its container; the control socket reads it. */
#ifndef BERTH_SHIM_CONTAINER_H
#define BERTH_SHIM_CONTAINER_H

#include <stdbool.h>
#include <sys/types.h>

#include "exitrec.h"

enum container_status
{
  CONTAINER_RUNNING, /* started; init not reaped yet */
  CONTAINER_EXITING, /* init reaped; draining output, exit record not written */
  CONTAINER_STOPPED, /* exit.json written */
};

struct container
{
  pid_t pid; /* init on the host; valid until reaped (we are its reaper) */
  enum container_status status;
  struct exit_record exit; /* started_at always; the rest once STOPPED */
};

#endif
