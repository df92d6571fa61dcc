// `node --import ./bin/ts-loader.mjs file.ts`: runs Berth's TypeScript (see ts-hooks.mjs).
import { register } from 'node:module';
import process from 'node:process';

process.setSourceMapsEnabled(true);
register('./ts-hooks.mjs', import.meta.url);
