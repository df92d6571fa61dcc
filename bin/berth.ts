#!/bin/sh
//bin/true; here="$(dirname "$(readlink -f "$0")")"; exec node --import "$here/ts-loader.mjs" "$here/berth.ts" "$@"
// The berth CLI (the code is in cli/). The two lines above are read by sh, not by
// TypeScript: they start node with this repository's TypeScript loader (ts-loader.mjs), so
// `npx berth`, `node_modules/.bin/berth` and `bin/berth.ts` work from any directory.
import { main } from '../cli/index.ts';

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin });
