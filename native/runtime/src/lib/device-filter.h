/* Device rules on cgroup v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
 * compiled from linux.resources.devices and attached to the container's cgroup. */
#ifndef BERTH_DEVICE_FILTER_H
#define BERTH_DEVICE_FILTER_H

#include <stddef.h>
#include "error.h"
#include "spec.h"

/* Rules follow cgroup v1's meaning: the last matching rule wins; a request no
 * rule matches is allowed (as under a parent that allows everything). */
int device_filter_attach (const char *cgroup_dir, const struct spec_device_rule *rules, size_t n, berth_error_t *err);

#endif
