// Types shared by every part. API shapes come from api/openapi.yaml (generated);
// the records below are how the parts keep state in Redis.
import type { components } from '../api/src/openapi-types.ts';

export type Schemas = components['schemas'];
export type TaskDefinition = Schemas['TaskDefinition'];
export type TaskDefinitionInput = Schemas['TaskDefinitionInput'];
export type Task = Schemas['Task'];
export type TaskStatus = Schemas['TaskStatus'];
export type StopCode = NonNullable<Task['stopCode']>;
export type RunTaskInput = Schemas['RunTaskInput'];
export type LogEvent = Schemas['LogEvent'];
export type HealthCheck = Schemas['HealthCheck'];
export type HealthStatus = NonNullable<Task['healthStatus']>;

/** Task lifecycle order; a task only ever moves forward through it. */
export const TASK_STATUS_ORDER: readonly TaskStatus[] = ['PROVISIONING', 'PENDING', 'RUNNING', 'STOPPING', 'STOPPED'];

/**
 * What a task runs: its definition with the run's overrides applied, frozen
 * when the task is created so a later revision never changes a running task.
 */
export type TaskContainerSpec =
  Pick<TaskDefinitionInput, 'image' | 'command' | 'entryPoint' | 'workingDirectory' | 'user' | 'repositoryCredentials'
    | 'tmpfs' | 'volumes' | 'mountPoints' | 'healthCheck'>
  & Required<Pick<TaskDefinitionInput, 'environment' | 'cpu' | 'memory' | 'pidsLimit' | 'ulimits' | 'portMappings'
    | 'networkMode' | 'readonlyRootFilesystem' | 'stopTimeout'>>
  & {
    /** Environment variables from the tenant's secrets, sealed (common/secret-box.ts); the agent opens them. */
    sealedSecrets?: SealedSecretVariable[];
  };

/** One secret environment variable of a task: `secret` names the tenant's secret it was sealed as. */
export interface SealedSecretVariable {
  name: string;
  secret: string;
  sealed: string;
}

/**
 * A task as stored in its Redis hash (flat string fields): the API's Task
 * fields it shares, and what only the parts need (tenant, the frozen spec).
 */
export interface TaskRecord extends Pick<Task, 'taskId' | 'family' | 'revision' | 'lastStatus' | 'desiredStatus' | 'nodeId'
  | 'createdAt' | 'pullStartedAt' | 'pullStoppedAt' | 'startedAt' | 'stoppingAt' | 'stoppedAt' | 'exitCode' | 'stopCode'
  | 'stoppedReason' | 'startedBy' | 'imageDigest' | 'ipAddress' | 'tags' | 'healthStatus'> {
  tenant: string;
  spec: TaskContainerSpec;
  /** Tasks of one group are spread and kept apart together; `family:<family>` by default. */
  group?: string;
  placementStrategy?: PlacementStrategy;
  placementConstraints?: PlacementConstraint[];
}

/** As ECS: best effort ordering of the nodes that fit. */
export type PlacementStrategy =
  | { type: 'binpack'; field: 'memory' | 'cpu' }
  /** `node`, or `attribute:<label>` to spread over the values of a node label. */
  | { type: 'spread'; field: string }
  | { type: 'random' };

/** As ECS: binding filters; `expression` is `label == value`, `label != value` or `label in [a, b]`. */
export type PlacementConstraint = { type: 'distinctInstance' } | { type: 'memberOf'; expression: string };

export type NodeStatus = 'ACTIVE' | 'DRAINING' | 'LOST';

/** A node as it registers itself; `cpu` in units (1024 per core), memory in MiB. */
export interface NodeRecord {
  nodeId: string;
  address: string;
  status: NodeStatus;
  cpuTotal: number;
  memoryTotal: number;
  cpuReserved: number;
  memoryReserved: number;
  labels: Record<string, string>;
  registeredAt: string;
  heartbeatAt: string;
}

/**
 * The job on the placement queue. The API adds what placing needs, so a
 * scheduler places without reading the task first; a job with the task id
 * alone (function instances) has the scheduler read it.
 */
/** The tasks of one run, as a placement job carries them. */
export interface PlacementRun {
  /** The (first) task; the job's id when the run comes first in its job. */
  taskId: string;
  /** All the tasks of a run with `count` > 1 (same demand). */
  taskIds?: string[];
  /** Read from the task when absent. */
  demand?: PlacementDemand;
}

/** A placement job: a run, and other runs the API queued with it. */
export interface PlacementJob extends PlacementRun {
  moreRuns?: PlacementRun[];
}

/** A task as placement sees it (common/tasks.ts placementDemand makes it from the record). */
export interface PlacementDemand {
  tenant: string;
  /** The task's group (TaskRecord.group or `family:<family>`). */
  group: string;
  cpu: number;
  memory: number;
  createdAt: string;
  strategy?: PlacementStrategy;
  constraints?: PlacementConstraint[];
}

/** Work on one node's queue. */
export type NodeJob =
  | { kind: 'start'; taskId: string }
  | { kind: 'stop'; taskId: string; reason: string };
