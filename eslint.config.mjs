// ESLint flat config: typescript-eslint with type information, plus the workflow sandbox rule.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { builtinModules } from 'node:module';

// Workflow code runs in Temporal's deterministic sandbox: no Node built-ins and no I/O libraries.
const forbiddenInWorkflows = [
  ...builtinModules.filter((m) => !m.startsWith('_')),
  'pg',
  'undici',
  'pino',
  'sharp',
  'nodemailer',
  'node-pg-migrate',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
];
const message = 'Workflows are deterministic: do I/O in activities.';

export default tseslint.config(
  { ignores: ['node_modules/**', '.stack/**', 'artifacts/**', 'dist/**', 'eslint.config.mjs', 'scripts/*.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', name: ['test', 'it', 'describe', 'suite'], package: 'node:test' },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports' },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/require-await': 'off',
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: forbiddenInWorkflows.map((name) => ({ name, message })),
          patterns: [{ group: ['node:*', '@aws-sdk/*', '**/activities/*', '!**/activities/types'], message }],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'sim/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Tests read JSON answers of the simulator and third-party clients whose shapes are the thing under test.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
