/* Capabilities by name and their application in the container init. */
#ifndef BERTH_CAPS_H
#define BERTH_CAPS_H

#include <stdint.h>
#include "error.h"
#include "spec.h"

/* CAP_FOO (or FOO) to its number, -1 if unknown. */
int cap_from_name (const char *name);
int cap_last_cap (void);

/* Drops what is not in the bounding set; call before changing uid. */
int caps_drop_bounding (const struct spec_caps *caps, berth_error_t *err);
/* Sets effective/permitted, clears inheritable (whatever the config says) and
 * ambient; call after changing uid with PR_SET_KEEPCAPS. */
int caps_apply (const struct spec_caps *caps, berth_error_t *err);

#endif
