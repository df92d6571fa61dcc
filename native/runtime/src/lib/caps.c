#include "caps.h"
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const cap_names[] = {
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
  "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
  "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
  "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
  "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
  "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

int
cap_from_name (const char *name)
{
  if (strncasecmp (name, "CAP_", 4) == 0)
    name += 4;
  for (size_t i = 0; i < sizeof (cap_names) / sizeof (cap_names[0]); i++)
    if (strcasecmp (name, cap_names[i]) == 0)
      return (int) i;
  return -1;
}

int
cap_last_cap (void)
{
  static int last = -1;
  if (last < 0)
    {
      FILE *f = fopen ("/proc/sys/kernel/cap_last_cap", "re");
      if (f == NULL || fscanf (f, "%d", &last) != 1)
        last = CAP_LAST_CAP;
      if (f)
        fclose (f);
    }
  return last;
}

int
caps_drop_bounding (const struct spec_caps *caps, berth_error_t *err)
{
  int last = cap_last_cap ();
  for (int i = 0; i <= last; i++)
    {
      if (caps->bounding & (1ULL << i))
        continue;
      if (prctl (PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
        return berth_make_error (err, errno, "drop capability %d from the bounding set", i);
    }
  return 0;
}

int
caps_apply (const struct spec_caps *caps, berth_error_t *err)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];

  memset (data, 0, sizeof (data));
  for (int i = 0; i < 2; i++)
    {
      data[i].effective = (uint32_t) (caps->effective >> (32 * i));
      data[i].permitted = (uint32_t) (caps->permitted >> (32 * i));
      /* Inheritable stays empty whatever the config says (CVE-2022-27650):
       * a non-empty set lets file capabilities of a setuid-less binary grant
       * privileges the container's user was not meant to have. */
      data[i].inheritable = 0;
    }
  if (syscall (SYS_capset, &hdr, data) < 0)
    return berth_make_error (err, errno, "set capabilities");
  /* Ambient needs the cap in the inheritable set, which is empty: clear it. */
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return berth_make_error (err, errno, "clear ambient capabilities");
  return 0;
}
