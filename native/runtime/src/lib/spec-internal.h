/* Helpers shared by the parts of the config.json parser (spec.c, spec-linux.c). */
#ifndef BERTH_SPEC_INTERNAL_H
#define BERTH_SPEC_INTERNAL_H

#include "spec.h"

struct mount_option
{
  const char *name;
  bool clear;
  unsigned long flag;
  bool propagation;
};

/* A mount option by name (ro, nosuid, rbind, rslave ...), or NULL. */
const struct mount_option *find_mount_option (const char *name);

/* Typed getters: each fails with "<what> must be ..." naming the field. */
int want (json_node *n, enum json_type t, const char *what, berth_error_t *err);
int get_int (json_node *n, const char *what, int64_t min, int64_t max, int64_t *out, berth_error_t *err);
int get_uint64 (json_node *n, const char *what, uint64_t *out, berth_error_t *err);
int get_string_array (json_node *n, const char *what, char ***out, size_t *count, berth_error_t *err);
void free_string_array (char **a, size_t n);
int check_abs_path (const char *what, const char *path, berth_error_t *err);

/* The `linux` object: namespaces, id mappings, devices, masked/readonly paths,
 * sysctl, cgroupsPath, rootfsPropagation, seccomp, resources. */
int spec_parse_linux (struct spec *s, json_node *l, berth_error_t *err);

#endif
