/**
 * `npm run bundle`: the workflow code bundled once, ahead of time, into dist/workflow-bundle.js. A worker started
 * with TEMPORAL_WORKFLOW_BUNDLE pointing at it loads the bundle instead of running the bundler itself, which keeps
 * the bundler's memory out of every worker process.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

export const DEFAULT_BUNDLE_PATH = join(__dirname, '..', 'dist', 'workflow-bundle.js');

export async function bundleWorkflows(out = DEFAULT_BUNDLE_PATH): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows') });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, code);
  return out;
}

if (require.main === module) {
  bundleWorkflows(process.argv[2]).then(
    (path) => console.log(`workflow bundle: ${path}`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
