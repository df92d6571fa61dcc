/* Signal names (TERM, SIGTERM, KILL) and numbers. */
#ifndef BERTH_SIGNALS_H
#define BERTH_SIGNALS_H

#include "error.h"

int signal_parse (const char *s, int *out, berth_error_t *err);

#endif
