// berth config: which endpoint and key the CLI would use, and where each came from.
import type { Command } from './command.ts';
import { configFilePath } from './config.ts';
import { keyValues } from './output.ts';
import os from 'node:os';

export const configCommands: Command[] = [
  {
    name: 'config',
    summary: 'Show the endpoint and where the API key comes from (never the key itself).',
    details: 'Each setting comes from the first of: a flag (--endpoint, --api-key); the environment\n' +
      '(BERTH_API, or BERTH_API_ADDR as host:port; BERTH_API_KEY); the config file\n' +
      '(~/.config/berth/config.json, or $XDG_CONFIG_HOME/berth/config.json: { "endpoint", "apiKey" });\n' +
      'the all-in-one\'s files in the current directory (.berth/api-url, .berth/admin-key; BERTH_STATE_DIR\n' +
      'moves them). The endpoint defaults to http://127.0.0.1:8080.',
    async run(ctx) {
      const c = ctx.config();
      const out = {
        endpoint: c.endpoint.value,
        endpointSource: c.endpoint.source,
        apiKeySet: c.apiKey.value !== undefined,
        apiKeySource: c.apiKey.source,
        configFile: configFilePath(process.env, os.homedir()),
      };
      ctx.emit(out, () => keyValues([
        ['Endpoint', `${out.endpoint}  (${out.endpointSource})`],
        ['API key', out.apiKeySet ? `set  (${out.apiKeySource})` : 'not set'],
        ['Config file', out.configFile],
      ]));
    },
  },
];
