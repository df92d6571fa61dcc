/* linux.seccomp (the spec's object) compiled with libseccomp and loaded. */
#ifndef BERTH_SECCOMP_FILTER_H
#define BERTH_SECCOMP_FILTER_H

#include "error.h"
#include "json.h"

/* Checks the profile without loading it (used by `create` before forking). */
int seccomp_check (const json_node *profile, berth_error_t *err);
/* Loads the filter into the calling process. */
int seccomp_apply (const json_node *profile, berth_error_t *err);

#endif
