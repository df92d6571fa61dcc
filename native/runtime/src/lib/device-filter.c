#include "device-filter.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "utils.h"

struct program
{
  struct bpf_insn *insns;
  size_t n, cap;
};

static void
emit (struct program *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
  if (p->n == p->cap)
    {
      p->cap = p->cap ? p->cap * 2 : 64;
      p->insns = realloc (p->insns, p->cap * sizeof (*p->insns));
      if (p->insns == NULL)
        abort ();
    }
  p->insns[p->n++] = (struct bpf_insn) { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

#define LDX_W(p, dst, src, off) emit (p, BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define AND_K(p, dst, imm) emit (p, BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH_K(p, dst, imm) emit (p, BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm)
#define MOV_X(p, dst, src) emit (p, BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV_K(p, dst, imm) emit (p, BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define JNE_K(p, dst, imm) emit (p, BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm) /* offset patched later */
#define EXIT(p) emit (p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* One rule: fall through to the next block unless type, access, major and minor
 * match. Returns true when the rule matches everything (nothing after it runs). */
static bool
emit_rule (struct program *p, const struct spec_device_rule *r)
{
  size_t start = p->n;
  int32_t access = 0;

  for (const char *a = r->access; *a; a++)
    access |= *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
  if (r->type != 'a')
    JNE_K (p, 2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
  if (access != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD))
    {
      /* The request must be covered by the rule's access. */
      MOV_X (p, 1, 3);
      AND_K (p, 1, ~access);
      JNE_K (p, 1, 0);
    }
  if (r->type != 'a' && r->major >= 0)
    JNE_K (p, 4, (int32_t) r->major);
  if (r->type != 'a' && r->minor >= 0)
    JNE_K (p, 5, (int32_t) r->minor);
  MOV_K (p, 0, r->allow ? 1 : 0);
  EXIT (p);
  bool conditional = false;
  for (size_t i = start; i < p->n; i++)
    if (p->insns[i].code == (BPF_JMP | BPF_JNE | BPF_K))
      {
        p->insns[i].off = (int16_t) (p->n - i - 1);
        conditional = true;
      }
  return !conditional;
}

int
device_filter_attach (const char *cgroup_dir, const struct spec_device_rule *rules, size_t n, berth_error_t *err)
{
  struct program p = { 0 };
  union bpf_attr attr;
  char log[4096] = "";
  cleanup_close int prog = -1;
  cleanup_close int dirfd = -1;

  /* r2 = type, r3 = access, r4 = major, r5 = minor (struct bpf_cgroup_dev_ctx in r1) */
  LDX_W (&p, 2, 1, 0);
  AND_K (&p, 2, 0xffff);
  LDX_W (&p, 3, 1, 0);
  RSH_K (&p, 3, 16);
  LDX_W (&p, 4, 1, 4);
  LDX_W (&p, 5, 1, 8);
  /* Last match wins: test the rules from the end. */
  bool total = false;
  for (size_t i = n; i > 0 && !total; i--)
    total = emit_rule (&p, &rules[i - 1]);
  if (!total)
    {
      MOV_K (&p, 0, 1);
      EXIT (&p);
    }

  memset (&attr, 0, sizeof (attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t) (uintptr_t) p.insns;
  attr.insn_cnt = (uint32_t) p.n;
  attr.license = (uint64_t) (uintptr_t) "Apache";
  attr.log_buf = (uint64_t) (uintptr_t) log;
  attr.log_size = sizeof (log);
  attr.log_level = 1;
  prog = (int) syscall (SYS_bpf, BPF_PROG_LOAD, &attr, sizeof (attr));
  if (prog < 0)
    {
      int e = errno;
      free (p.insns);
      return berth_make_error (err, e, "load the device filter%s%.200s", log[0] ? ": " : "", log);
    }
  free (p.insns);
  dirfd = open (cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return berth_make_error (err, errno, "open `%s`", cgroup_dir);
  memset (&attr, 0, sizeof (attr));
  attr.target_fd = (uint32_t) dirfd;
  attr.attach_bpf_fd = (uint32_t) prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (syscall (SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof (attr)) < 0)
    return berth_make_error (err, errno, "attach the device filter to `%s`", cgroup_dir);
  return 0;
}
