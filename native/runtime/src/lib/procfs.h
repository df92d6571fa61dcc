/* Writes meant for procfs, checked to land on procfs (fstatfs PROC_SUPER_MAGIC),
 * so a bind mount or symlink planted by a container cannot redirect them. */
#ifndef BERTH_PROCFS_H
#define BERTH_PROCFS_H

#include <stdbool.h>
#include <sys/types.h>
#include "error.h"

int procfs_write (int dirfd, const char *path, const char *value, berth_error_t *err);
/* The same on an fd already open for writing; `what` names it in errors. */
int procfs_write_fd (int fd, const char *what, const char *value, berth_error_t *err);
/* Start time (field 22 of /proc/PID/stat) and whether the process is alive (not a zombie). */
int proc_start_time (pid_t pid, unsigned long long *start, bool *alive);

#endif
