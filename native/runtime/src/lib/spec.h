/* config.json (runtime-spec 1.x) parsed into plain structs and validated, so that
 * a bad bundle fails in the parent with one clear line before anything is made. */
#ifndef BERTH_SPEC_H
#define BERTH_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "error.h"
#include "json.h"

struct spec_mount
{
  char *destination, *type, *source;
  unsigned long flags;       /* MS_* from the options */
  unsigned long propagation; /* MS_PRIVATE|MS_REC etc., 0 when none */
  char *data;                /* options the kernel parses (mode=755, size=...) */
  bool bind;
};

struct spec_rlimit
{
  int resource;
  uint64_t soft, hard;
};

struct spec_namespace
{
  int flag;   /* CLONE_NEW* */
  char *path; /* join this one when set */
};

struct spec_idmap
{
  uint32_t container_id, host_id, size;
};

struct spec_device
{
  char *path;
  char type; /* c, b, u, p */
  int64_t major, minor;
  mode_t mode;
  uid_t uid;
  gid_t gid;
};

struct spec_device_rule
{
  bool allow;
  char type; /* a, c, b */
  int64_t major, minor; /* -1 = wildcard */
  char access[4];
};

struct spec_resources
{
  bool has_memory_limit, has_memory_reservation, has_memory_swap, has_swappiness;
  int64_t memory_limit, memory_reservation, memory_swap;
  uint64_t swappiness;
  bool has_cpu_shares, has_cpu_quota, has_cpu_period;
  uint64_t cpu_shares, cpu_period;
  int64_t cpu_quota;
  char *cpuset_cpus, *cpuset_mems;
  bool has_pids_limit;
  int64_t pids_limit;
  bool has_blkio_weight;
  uint16_t blkio_weight;
  struct spec_device_rule *device_rules;
  size_t n_device_rules;
  json_node *unified; /* cgroup v2 file → value, written as given */
};

struct spec_sysctl
{
  char *key, *value;
};

struct spec_caps
{
  uint64_t bounding, effective, permitted, inheritable, ambient;
};

struct spec
{
  json_node *json;
  char *oci_version;
  char *bundle; /* absolute */

  /* process */
  bool terminal;
  char **args;
  char **env;
  size_t n_args, n_env;
  char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *additional_gids;
  size_t n_additional_gids;
  struct spec_rlimit *rlimits;
  size_t n_rlimits;
  bool no_new_privileges;
  bool has_umask;
  mode_t umask;
  bool has_caps;
  struct spec_caps caps;
  bool has_oom_score_adj;
  int oom_score_adj;

  char *hostname;
  char *root_path; /* absolute */
  bool root_readonly;

  struct spec_mount *mounts;
  size_t n_mounts;

  struct spec_namespace *namespaces;
  size_t n_namespaces;
  struct spec_idmap *uid_mappings, *gid_mappings;
  size_t n_uid_mappings, n_gid_mappings;

  struct spec_device *devices;
  size_t n_devices;
  char **masked_paths, **readonly_paths;
  size_t n_masked_paths, n_readonly_paths;
  struct spec_sysctl *sysctl;
  size_t n_sysctl;
  char *cgroups_path;
  unsigned long rootfs_propagation;
  json_node *seccomp;     /* parsed later, in the child */
  json_node *annotations; /* echoed by `state` */
  /* From the annotations berth.rootfs.overlay (overlayfs options: lowerdir,
   * upperdir, workdir) and berth.rootfs.overlay-base (the directory relative
   * paths in them start from): the init mounts the rootfs itself, inside the
   * container's mount namespace, so the host has no mount to clean up.
   * Both point into `json`. */
  const char *overlay_options;
  const char *overlay_base;
  struct spec_resources resources;
};

/* Reads <bundle>/config.json. */
int spec_load (const char *bundle, struct spec **out, berth_error_t *err);
void spec_free (struct spec *s);
void cleanup_specp (struct spec **s);
#define cleanup_spec __attribute__ ((cleanup (cleanup_specp)))

/* The CLONE_NEW* flag of a namespace, or 0. */
const struct spec_namespace *spec_find_namespace (const struct spec *s, int flag);
const char *namespace_name (int flag);

#endif
