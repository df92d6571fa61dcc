import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.berth/**'],
    // Tests share the host's kernel (cgroups, mounts, netns): run files one at a time.
    fileParallelism: false,
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
