/* The state directory of a container (<root>/<id>, mode 0700): state.json and,
 * while created, the exec socket `start` connects to. */
#ifndef BERTH_STATE_H
#define BERTH_STATE_H

#include <stdbool.h>
#include <sys/types.h>
#include "error.h"
#include "json.h"

#define DEFAULT_STATE_ROOT "/run/berth-runtime"

enum container_status { STATUS_CREATED, STATUS_RUNNING, STATUS_STOPPED };

struct container_state
{
  char *id, *bundle, *oci_version, *cgroups_path, *created;
  pid_t pid;
  unsigned long long start_time;
  json_node *annotations; /* owned by json */
  json_node *json;
};

int validate_id (const char *id, berth_error_t *err);
char *state_dir (const char *root, const char *id);
char *state_exec_socket (const char *root, const char *id);

int state_write (const char *root, const struct container_state *st, berth_error_t *err);
/* Fails with "container `id` does not exist" when there is no state. */
int state_read (const char *root, const char *id, struct container_state **out, berth_error_t *err);
void state_free (struct container_state *st);
void cleanup_statep (struct container_state **st);
#define cleanup_state __attribute__ ((cleanup (cleanup_statep)))

/* created / running / stopped, checking the pid's start time against reuse. */
enum container_status state_status (const char *root, const struct container_state *st);
const char *status_name (enum container_status s);
/* A pidfd for the container init, or -1 when it is gone (or the pid was reused). */
int state_pidfd (const struct container_state *st);

#endif
