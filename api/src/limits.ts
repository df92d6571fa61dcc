// Rules on task definitions that a JSON schema cannot say: the CPU/memory ratio,
// the image reference, and combinations of fields.
import { BerthError } from '../../common/errors.ts';
import { invalidField } from './paging.ts';

/** At most this much memory (MiB) per CPU unit: 8 GiB per vCPU, Fargate's highest ratio. */
export const MAX_MIB_PER_CPU_UNIT = 8;

/** Refuses memory above the ratio; `at` names the fields, e.g. 'body' or 'body/overrides'. */
export function checkCpuMemory(cpu: number, memory: number, at: { cpu: string; memory: string }): void {
  const max = cpu * MAX_MIB_PER_CPU_UNIT;
  if (memory > max) {
    const message = `must be <= ${max} for ${cpu} CPU units (at most ${MAX_MIB_PER_CPU_UNIT} MiB per unit); raise ${at.cpu} to at least ${Math.ceil(memory / MAX_MIB_PER_CPU_UNIT)} or lower the memory`;
    throw invalidField(at.memory, message);
  }
}

// [registry[:port]/]path[:tag][@sha256:digest], as the distribution reference grammar has it:
// the first part is a registry only when it is localhost, has a dot or a port, or is an IPv6 address.
const LABEL = String.raw`[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?`;
const PORT = String.raw`:[0-9]{1,5}`;
const DOMAIN = String.raw`(?:\[[0-9A-Fa-f:]+\](?:${PORT})?|localhost(?:${PORT})?|${LABEL}(?:\.${LABEL})+(?:${PORT})?|${LABEL}${PORT})`;
const COMPONENT = String.raw`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`;
const IMAGE_REF = new RegExp(String.raw`^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`);

export function checkImageReference(image: string): void {
  if (!IMAGE_REF.test(image)) {
    throw new BerthError('INVALID_IMAGE_REFERENCE', `body/image "${image.slice(0, 100)}" is not an image reference ([registry/]repository[:tag][@sha256:digest])`,
      [{ field: 'body/image', message: 'is not an image reference' }]);
  }
}

interface DefinitionShape {
  image: string;
  cpu: number;
  memory: number;
  networkMode: 'bridge' | 'none' | 'host';
  portMappings?: { containerPort: number; hostPort?: number }[];
  ulimits?: { softLimit: number; hardLimit: number }[];
  tmpfs?: { containerPath: string }[];
  volumes?: { name: string }[];
  mountPoints?: { sourceVolume: string; containerPath: string }[];
}

function checkMounts(d: DefinitionShape): void {
  const names = new Set<string>();
  (d.volumes ?? []).forEach((v, i) => {
    if (names.has(v.name)) throw invalidField(`body/volumes/${i}/name`, `names the volume "${v.name}" twice`);
    names.add(v.name);
  });
  const paths = new Map<string, string>();
  const claim = (containerPath: string, at: string) => {
    const normal = containerPath.replace(/\/+$/, '');
    if (paths.has(normal)) throw invalidField(at, `mounts ${containerPath} again (already by ${paths.get(normal)})`);
    paths.set(normal, at);
  };
  (d.tmpfs ?? []).forEach((t, i) => claim(t.containerPath, `body/tmpfs/${i}/containerPath`));
  (d.mountPoints ?? []).forEach((m, i) => {
    if (!names.has(m.sourceVolume)) throw invalidField(`body/mountPoints/${i}/sourceVolume`, `names no volume of this task definition ("${m.sourceVolume}")`);
    claim(m.containerPath, `body/mountPoints/${i}/containerPath`);
  });
}

export function checkTaskDefinition(d: DefinitionShape): void {
  checkImageReference(d.image);
  checkCpuMemory(d.cpu, d.memory, { cpu: 'body/cpu', memory: 'body/memory' });
  (d.ulimits ?? []).forEach((u, i) => {
    if (u.softLimit > u.hardLimit) throw invalidField(`body/ulimits/${i}/softLimit`, 'must be <= hardLimit');
  });
  checkMounts(d);
  const ports = d.portMappings ?? [];
  if (d.networkMode === 'none' && ports.length > 0) throw invalidField('body/portMappings', 'must be empty when networkMode is none');
  ports.forEach((p, i) => {
    if (d.networkMode === 'host' && p.hostPort !== undefined && p.hostPort !== p.containerPort) {
      throw invalidField(`body/portMappings/${i}/hostPort`, 'must equal containerPort when networkMode is host');
    }
  });
}
