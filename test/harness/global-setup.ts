// Once per test run: a scratch directory for what test files share within the run
// (a probe's verdict, a private copy of a binary), removed when the run ends.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-test-run-'));
  process.env.BERTH_TEST_RUN_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
