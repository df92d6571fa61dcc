// Placement constraints, as ECS has them: binding filters over the nodes.
//   distinctInstance              no two tasks of the same run group on one node
//   memberOf "label == value"     also `!=`, and `label in [a, b]` / `label not in [a, b]`
import type { NodeRecord, PlacementConstraint } from '../../common/types.ts';

export class ConstraintError extends Error {}

type Predicate = (node: NodeRecord) => boolean;

const EXPRESSION = /^\s*([A-Za-z0-9_.\-/:]+)\s*(==|!=|not in|in)\s*(.+?)\s*$/;

function parseValues(text: string): string[] {
  const list = /^\[(.*)\]$/.exec(text);
  const items = list ? list[1]!.split(',') : [text];
  return items.map((v) => v.trim().replace(/^(['"])(.*)\1$/, '$2')).filter((v) => v.length > 0);
}

/** Parses `label == value`, `label != value`, `label in [a, b]`, `label not in [a, b]`. */
export function parseExpression(expression: string): Predicate {
  const match = EXPRESSION.exec(expression);
  if (!match) throw new ConstraintError(`memberOf expression "${expression}": expected "label == value", "label != value" or "label in [a, b]"`);
  const [, label, op, rest] = match as unknown as [string, string, string, string];
  const values = parseValues(rest);
  if (values.length === 0) throw new ConstraintError(`memberOf expression "${expression}": no value to compare with`);
  const valueOf = (node: NodeRecord): string | undefined => (label === 'nodeId' ? node.nodeId : node.labels[label]);
  switch (op) {
    case '==': return (n) => valueOf(n) === values[0];
    case '!=': return (n) => valueOf(n) !== values[0];
    case 'in': return (n) => values.includes(valueOf(n) ?? '\u0000');
    default: return (n) => !values.includes(valueOf(n) ?? '\u0000');
  }
}

/**
 * The nodes that satisfy every constraint. `nodesWithSibling` holds the nodes
 * already running a task of the same group (for distinctInstance).
 */
export function filterNodes(nodes: NodeRecord[], constraints: PlacementConstraint[] = [], nodesWithSibling: Set<string> = new Set()): NodeRecord[] {
  const predicates: Predicate[] = constraints.map((c) =>
    c.type === 'distinctInstance' ? (n: NodeRecord) => !nodesWithSibling.has(n.nodeId) : parseExpression(c.expression),
  );
  return nodes.filter((n) => predicates.every((p) => p(n)));
}
