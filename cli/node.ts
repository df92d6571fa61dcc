// berth node ls | describe | drain (admin keys only)
import type { components } from '../api/src/openapi-types.ts';
import type { Command } from './command.ts';
import { age, keyValues, table } from './output.ts';

type Node = components['schemas']['Node'];

const labels = (n: Node) => Object.entries(n.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');

const nodeTable = (nodes: Node[]) => table(nodes, [
  ['node id', (n) => n.nodeId],
  ['status', (n) => n.status],
  ['address', (n) => n.address],
  ['cpu', (n) => `${n.cpuReserved}/${n.cpuTotal}`, 'right'],
  ['memory', (n) => `${n.memoryReserved}/${n.memoryTotal}`, 'right'],
  ['labels', labels],
  ['heartbeat', (n) => age(n.heartbeatAt)],
]);

export const nodeCommands: Command[] = [
  {
    name: 'node ls',
    summary: 'List the registered nodes with reserved/total CPU units and memory (MiB). Admin only.',
    async run(ctx) {
      const { nodes } = await ctx.client().request<{ nodes: Node[] }>('GET', '/v1/nodes');
      ctx.emit({ nodes }, () => nodeTable(nodes));
    },
  },
  {
    name: 'node describe',
    summary: 'Describe a node. Admin only.',
    args: 'NODE_ID',
    positionals: [1, 1],
    async run(ctx, _values, [id]) {
      const node = await ctx.client().request<Node>('GET', `/v1/nodes/${encodeURIComponent(id!)}`);
      ctx.emit(node, () => keyValues([
        ['Node', node.nodeId], ['Status', node.status], ['Address', node.address],
        ['CPU', `${node.cpuReserved} of ${node.cpuTotal} units reserved`],
        ['Memory', `${node.memoryReserved} of ${node.memoryTotal} MiB reserved`],
        ['Labels', labels(node)], ['Registered', node.registeredAt], ['Heartbeat', node.heartbeatAt],
      ]));
    },
  },
  {
    name: 'node drain',
    summary: 'Place no new task on the node; its running tasks go on. Admin only.',
    args: 'NODE_ID',
    positionals: [1, 1],
    async run(ctx, _values, [id]) {
      const node = await ctx.client().request<Node>('POST', `/v1/nodes/${encodeURIComponent(id!)}/drain`);
      ctx.emit(node, () => nodeTable([node]));
    },
  },
];
