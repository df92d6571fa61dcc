#include "sync.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
sync_send (int fd, int type, int status, const char *msg)
{
  struct sync_msg m;
  size_t len = offsetof (struct sync_msg, msg);
  m.type = type;
  m.status = status;
  m.msg[0] = '\0';
  if (msg)
    {
      snprintf (m.msg, sizeof (m.msg), "%s", msg);
      len += strlen (m.msg) + 1;
    }
  for (;;)
    {
      ssize_t n = send (fd, &m, len, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      return n < 0 ? -1 : 0;
    }
}

int
sync_recv (int fd, struct sync_msg *m, berth_error_t *err)
{
  ssize_t n;
  do
    n = recv (fd, m, sizeof (*m) - 1, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return berth_make_error (err, errno, "read from the container init");
  if (n == 0)
    return berth_make_error (err, 0, "the container init exited during setup");
  ((char *) m)[n] = '\0';
  if ((size_t) n < offsetof (struct sync_msg, msg))
    return berth_make_error (err, 0, "short message from the container init");
  if ((size_t) n == offsetof (struct sync_msg, msg))
    m->msg[0] = '\0';
  return 0;
}
