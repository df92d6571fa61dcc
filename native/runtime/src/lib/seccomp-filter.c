#include "seccomp-filter.h"
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <seccomp.h>
#include <string.h>
#include "utils.h"

static void
cleanup_ctxp (scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release (*ctx);
}

static int
parse_action (const char *name, const json_node *errno_ret, uint32_t default_errno, uint32_t *out, berth_error_t *err)
{
  uint32_t e = default_errno;
  if (errno_ret && errno_ret->type == JSON_NUMBER && errno_ret->is_int)
    e = (uint32_t) errno_ret->integer;
  if (name == NULL)
    return berth_make_error (err, 0, "seccomp: missing action");
  if (strcmp (name, "SCMP_ACT_ALLOW") == 0)
    *out = SCMP_ACT_ALLOW;
  else if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
    *out = SCMP_ACT_ERRNO (e);
  else if (strcmp (name, "SCMP_ACT_KILL") == 0 || strcmp (name, "SCMP_ACT_KILL_THREAD") == 0)
    *out = SCMP_ACT_KILL_THREAD;
  else if (strcmp (name, "SCMP_ACT_KILL_PROCESS") == 0)
    *out = SCMP_ACT_KILL_PROCESS;
  else if (strcmp (name, "SCMP_ACT_TRAP") == 0)
    *out = SCMP_ACT_TRAP;
  else if (strcmp (name, "SCMP_ACT_TRACE") == 0)
    *out = SCMP_ACT_TRACE (e);
  else if (strcmp (name, "SCMP_ACT_LOG") == 0)
    *out = SCMP_ACT_LOG;
  else
    return berth_make_error (err, 0, "seccomp: unsupported action `%s`", name);
  return 0;
}

static int
parse_arch (const char *name, uint32_t *out, berth_error_t *err)
{
  static const struct
  {
    const char *name;
    uint32_t arch;
  } archs[] = {
    { "SCMP_ARCH_X86", SCMP_ARCH_X86 },       { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
    { "SCMP_ARCH_X32", SCMP_ARCH_X32 },       { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
    { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 }, { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
    { "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 }, { "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },
    { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 }, { "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
    { "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },   { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
    { "SCMP_ARCH_S390", SCMP_ARCH_S390 },     { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
    { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
  };
  for (size_t i = 0; i < sizeof (archs) / sizeof (archs[0]); i++)
    if (strcmp (archs[i].name, name) == 0)
      {
        *out = archs[i].arch;
        return 0;
      }
  return berth_make_error (err, 0, "seccomp: unknown architecture `%s`", name);
}

static int
parse_op (const char *name, enum scmp_compare *out, berth_error_t *err)
{
  static const struct
  {
    const char *name;
    enum scmp_compare op;
  } ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
  };
  for (size_t i = 0; name && i < sizeof (ops) / sizeof (ops[0]); i++)
    if (strcmp (ops[i].name, name) == 0)
      {
        *out = ops[i].op;
        return 0;
      }
  return berth_make_error (err, 0, "seccomp: unknown operator `%s`", name ? name : "");
}

static uint64_t
num (const json_node *n)
{
  return n && n->type == JSON_NUMBER ? n->uinteger : 0;
}

static int
add_rule (scmp_filter_ctx ctx, uint32_t action, int nr, const json_node *args, berth_error_t *err)
{
  struct scmp_arg_cmp cmps[6];
  unsigned n = 0;
  bool repeated = false;
  int ret;

  for (size_t i = 0; args && i < args->len; i++)
    {
      const json_node *a = args->items[i];
      enum scmp_compare op = SCMP_CMP_EQ;
      uint64_t index = num (json_get (a, "index"));
      if (index > 5)
        return berth_make_error (err, 0, "seccomp: argument index %llu out of range", (unsigned long long) index);
      if (parse_op (json_get_string (a, "op"), &op, err) < 0)
        return -1;
      if (n >= 6)
        return berth_make_error (err, 0, "seccomp: too many argument conditions");
      for (unsigned j = 0; j < n; j++)
        if (cmps[j].arg == index)
          repeated = true;
      cmps[n].arg = (unsigned) index;
      cmps[n].op = op;
      cmps[n].datum_a = num (json_get (a, "value"));
      cmps[n].datum_b = num (json_get (a, "valueTwo"));
      /* For SCMP_CMP_MASKED_EQ the spec's value is the mask and valueTwo the
       * expected value: libseccomp's datum_a and datum_b, in that order. */
      n++;
    }
  if (!repeated)
    ret = seccomp_rule_add_array (ctx, action, nr, n, cmps);
  else
    {
      /* Conditions on one argument cannot be ANDed by libseccomp: one rule each (runc does this). */
      ret = 0;
      for (unsigned j = 0; j < n && ret == 0; j++)
        ret = seccomp_rule_add_array (ctx, action, nr, 1, &cmps[j]);
    }
  if (ret < 0 && ret != -EACCES && ret != -EEXIST)
    return berth_make_error (err, -ret, "seccomp: add rule for syscall %d", nr);
  return 0;
}

static int
build (const json_node *p, scmp_filter_ctx *out, berth_error_t *err)
{
  __attribute__ ((cleanup (cleanup_ctxp))) scmp_filter_ctx ctx = NULL;
  uint32_t def, act;
  const json_node *archs = json_get (p, "architectures"), *syscalls = json_get (p, "syscalls");

  if (parse_action (json_get_string (p, "defaultAction"), json_get (p, "defaultErrnoRet"), EPERM, &def, err) < 0)
    return berth_error_wrap (err, "linux.seccomp.defaultAction");
  ctx = seccomp_init (def);
  if (ctx == NULL)
    return berth_make_error (err, ENOMEM, "seccomp_init");
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (json_get (p, "flags") || json_get (p, "listenerPath"))
    {
      const json_node *f = json_get (p, "flags");
      for (size_t i = 0; f && i < f->len; i++)
        if (f->items[i]->type == JSON_STRING && strcmp (f->items[i]->string, "SECCOMP_FILTER_FLAG_LOG") == 0)
          seccomp_attr_set (ctx, SCMP_FLTATR_CTL_LOG, 1);
        else if (f->items[i]->type == JSON_STRING && strcmp (f->items[i]->string, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
          seccomp_attr_set (ctx, SCMP_FLTATR_CTL_SSB, 1);
      if (json_get (p, "listenerPath"))
        return berth_make_error (err, 0, "linux.seccomp.listenerPath is not supported");
    }
  for (size_t i = 0; archs && i < archs->len; i++)
    {
      uint32_t arch = 0;
      if (archs->items[i]->type != JSON_STRING || parse_arch (archs->items[i]->string, &arch, err) < 0)
        return berth_error_wrap (err, "linux.seccomp.architectures");
      int r = seccomp_arch_add (ctx, arch);
      if (r < 0 && r != -EEXIST)
        return berth_make_error (err, -r, "seccomp: add architecture `%s`", archs->items[i]->string);
    }
  for (size_t i = 0; syscalls && i < syscalls->len; i++)
    {
      const json_node *sc = syscalls->items[i], *names = json_get (sc, "names");
      /* A rule's errnoRet defaults to EPERM (the spec, runc); defaultErrnoRet is the default action's alone. */
      if (parse_action (json_get_string (sc, "action"), json_get (sc, "errnoRet"), EPERM, &act, err) < 0)
        return berth_error_wrap (err, "linux.seccomp.syscalls[%zu]", i);
      if (act == def)
        continue; /* libseccomp refuses rules equal to the default */
      for (size_t j = 0; names && j < names->len; j++)
        {
          const char *name = names->items[j]->type == JSON_STRING ? names->items[j]->string : "";
          int nr = seccomp_syscall_resolve_name (name);
          if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this kernel/libseccomp: skipped like runc */
          if (add_rule (ctx, act, nr, json_get (sc, "args"), err) < 0)
            return berth_error_wrap (err, "linux.seccomp syscall `%s`", name);
        }
    }
  *out = steal_pointer (&ctx);
  return 0;
}

/* The highest syscall number the profile names for `arch`, or -1. */
static int
max_syscall (const json_node *p, uint32_t arch)
{
  const json_node *syscalls = json_get (p, "syscalls");
  int max = -1;
  for (size_t i = 0; syscalls && i < syscalls->len; i++)
    {
      const json_node *names = json_get (syscalls->items[i], "names");
      for (size_t j = 0; names && j < names->len; j++)
        {
          int nr;
          if (names->items[j]->type != JSON_STRING)
            continue;
          nr = seccomp_syscall_resolve_name_arch (arch, names->items[j]->string);
          if (nr > max && nr < 0x40000000)
            max = nr;
        }
    }
  return max;
}

/*
 * As runc does: a syscall newer than anything the profile names answers ENOSYS,
 * not the default action, so libc falls back to an older call (clone3 → clone,
 * statx → stat) instead of failing on EPERM. A short stub is put in front of
 * libseccomp's program: per architecture, a number above the profile's highest
 * returns ENOSYS; everything else goes to libseccomp's filter unchanged.
 */
static size_t
enosys_stub (scmp_filter_ctx ctx, const json_node *p, struct sock_filter *stub)
{
  static const struct
  {
    uint32_t scmp, audit;
  } archs[] = { { SCMP_ARCH_X86_64, AUDIT_ARCH_X86_64 }, { SCMP_ARCH_X86, AUDIT_ARCH_I386 }, { SCMP_ARCH_AARCH64, AUDIT_ARCH_AARCH64 } };
  size_t n = 0, ends[8], nends = 0, enosys_jumps[8], nenosys = 0;
  uint32_t native = seccomp_arch_native ();

  for (size_t a = 0; a < sizeof (archs) / sizeof (archs[0]); a++)
    {
      int max;
      if (archs[a].scmp != native && seccomp_arch_exist (ctx, archs[a].scmp) != 0)
        continue;
      max = max_syscall (p, archs[a].scmp);
      if (max < 0)
        continue;
      /* if (arch == A) { if (x32 bit) go on; if (nr > max) ENOSYS; } */
      size_t start = n;
      stub[n++] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch));
      stub[n++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, archs[a].audit, 0, 0);
      stub[n++] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr));
      if (archs[a].audit == AUDIT_ARCH_X86_64)
        {
          stub[n++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JSET | BPF_K, 0x40000000, 0, 0);
          ends[nends++] = n - 1;
        }
      stub[n++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JGT | BPF_K, (uint32_t) max, 0, 0);
      enosys_jumps[nenosys++] = n - 1;
      stub[start + 1].jf = (uint8_t) (n - (start + 2)); /* arch mismatch: the next block */
    }
  if (n == 0)
    return 0;
  size_t enosys = n;
  stub[n++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
  size_t program = n;
  for (size_t i = 0; i < nenosys; i++)
    {
      stub[enosys_jumps[i]].jt = (uint8_t) (enosys - (enosys_jumps[i] + 1));
      stub[enosys_jumps[i]].jf = (uint8_t) (program - (enosys_jumps[i] + 1));
    }
  for (size_t i = 0; i < nends; i++)
    stub[ends[i]].jt = (uint8_t) (program - (ends[i] + 1));
  /* The last block's arch mismatch falls on the ENOSYS return: send it to the program. */
  for (size_t i = 0; i < enosys; i++)
    if (stub[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && i + 1 + stub[i].jf == enosys)
      stub[i].jf = (uint8_t) (program - (i + 1));
  return n;
}

static unsigned int
profile_flags (const json_node *p)
{
  const json_node *f = json_get (p, "flags");
  unsigned int flags = 0;
  for (size_t i = 0; f && i < f->len; i++)
    if (f->items[i]->type == JSON_STRING && strcmp (f->items[i]->string, "SECCOMP_FILTER_FLAG_LOG") == 0)
      flags |= SECCOMP_FILTER_FLAG_LOG;
    else if (f->items[i]->type == JSON_STRING && strcmp (f->items[i]->string, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
      flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
  return flags;
}

static int
compile (const json_node *p, struct seccomp_program *out, berth_error_t *err)
{
  __attribute__ ((cleanup (cleanup_ctxp))) scmp_filter_ctx ctx = NULL;
  cleanup_close int fd = -1;
  struct sock_filter stub[32];
  size_t n = 0;
  const char *def = json_get_string (p, "defaultAction");
  struct stat st;
  int r;

  if (build (p, &ctx, err) < 0)
    return -1;
  fd = memfd_create ("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0)
    return berth_make_error (err, errno, "memfd_create");
  r = seccomp_export_bpf (ctx, fd);
  if (r < 0)
    return berth_make_error (err, -r, "compile the seccomp filter");
  if (fstat (fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof (struct sock_filter))
    return berth_make_error (err, EINVAL, "compile the seccomp filter");
  if (def && strcmp (def, "SCMP_ACT_ALLOW") != 0 && strcmp (def, "SCMP_ACT_LOG") != 0)
    n = enosys_stub (ctx, p, stub);
  out->len = n + (size_t) st.st_size / sizeof (struct sock_filter);
  if (out->len > BPF_MAXINSNS)
    return berth_make_error (err, E2BIG, "the seccomp filter has %zu instructions (at most %d)", out->len, BPF_MAXINSNS);
  out->insns = xmalloc0 (out->len * sizeof (struct sock_filter));
  memcpy (out->insns, stub, n * sizeof (struct sock_filter));
  if (pread (fd, out->insns + n, st.st_size, 0) != st.st_size)
    return berth_make_error (err, errno, "read the seccomp filter");
  out->flags = profile_flags (p);
  return 0;
}

/* The cache key: everything the compiled program depends on. */
static char *
cache_key (const json_node *p)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&buf, &len);
  const struct scmp_version *v = seccomp_version ();
  if (f == NULL)
    return NULL;
  fprintf (f, "berth-seccomp-1 arch=%u libseccomp=%u.%u.%u\n", seccomp_arch_native (), v->major, v->minor, v->micro);
  json_write_node (f, p);
  fclose (f);
  return buf;
}

static uint64_t
fnv1a (const char *s)
{
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char) *s) * 0x100000001b3ULL;
  return h;
}

/* File: u32 key length, key, instructions. */
static bool
cache_read (const char *path, const char *key, struct seccomp_program *out)
{
  cleanup_free char *data = NULL;
  berth_error_t ignored = NULL;
  size_t len = 0, klen = strlen (key);
  uint32_t stored;

  if (read_file_at (AT_FDCWD, path, &data, &len, &ignored) < 0)
    {
      berth_error_release (&ignored);
      return false;
    }
  if (len < 4)
    return false;
  memcpy (&stored, data, 4);
  if (stored != klen || len < 4 + klen || memcmp (data + 4, key, klen) != 0)
    return false;
  len -= 4 + klen;
  if (len == 0 || len % sizeof (struct sock_filter) || len / sizeof (struct sock_filter) > BPF_MAXINSNS)
    return false;
  out->len = len / sizeof (struct sock_filter);
  out->insns = xmalloc0 (len);
  memcpy (out->insns, data + 4 + klen, len);
  return true;
}

static void
cache_write (const char *path, const char *key, const struct seccomp_program *p)
{
  uint32_t klen = (uint32_t) strlen (key);
  size_t size = 4 + klen + p->len * sizeof (struct sock_filter);
  cleanup_free char *data = xmalloc0 (size);
  berth_error_t ignored = NULL;
  memcpy (data, &klen, 4);
  memcpy (data + 4, key, klen);
  memcpy (data + 4 + klen, p->insns, p->len * sizeof (struct sock_filter));
  /* Best effort: a failed write only means compiling again next time. */
  if (write_file_atomic (path, data, size, 0600, &ignored) < 0)
    berth_error_release (&ignored);
}

int
seccomp_prepare (const json_node *profile, const char *cache_dir, struct seccomp_program *out, berth_error_t *err)
{
  cleanup_free char *key = NULL;
  cleanup_free char *path = NULL;

  memset (out, 0, sizeof (*out));
  if (profile == NULL)
    return 0;
  key = cache_key (profile);
  if (key && cache_dir)
    {
      cleanup_free char *dir = xasprintf ("%s/.seccomp-cache", cache_dir);
      /* If it cannot be made, the cache read misses and the write is dropped. */
      mkdir (dir, 0700);
      path = xasprintf ("%s/%016llx.bpf", dir, (unsigned long long) fnv1a (key));
      if (cache_read (path, key, out))
        {
          out->flags = profile_flags (profile);
          return 0;
        }
    }
  if (compile (profile, out, err) < 0)
    return berth_error_wrap (err, "linux.seccomp");
  if (path)
    cache_write (path, key, out);
  return 0;
}

int
seccomp_load_program (const struct seccomp_program *p, berth_error_t *err)
{
  struct sock_fprog fprog = { .len = (unsigned short) p->len, .filter = p->insns };
  if (p->insns == NULL)
    return 0;
  if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->flags, &fprog) < 0)
    return berth_make_error (err, errno, "load the seccomp filter");
  return 0;
}
