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

// One home per concern: only src/store/ speaks SQL, only src/s3/ builds S3 requests. Everywhere else calls them.
const sqlMessage = 'SQL lives in src/store/: call a store function.';
const s3Message = 'S3 requests are built in src/s3/: call an s3 function.';
const sqlImports = [{ name: 'pg', message: sqlMessage }];
const s3Imports = [
  { name: '@aws-sdk/client-s3', allowTypeImports: true, message: s3Message },
  { name: '@aws-sdk/lib-storage', message: s3Message },
];
const s3Patterns = [{ group: ['**/s3/wire'], message: s3Message }];
// Statements sent on a pool or a client (`pool.query`, `deps.pool.query`, `client.query`, `c.query`, `pool.connect`)
// and string literals that read as SQL. (Workflow handles' `.query('progress')` are not on a pool.)
const sqlSyntax = [
  {
    selector: 'CallExpression[callee.property.name=/^(query|connect)$/][callee.object.name=/^(pool|client|c|db|tx)$/]',
    message: sqlMessage,
  },
  {
    selector: "CallExpression[callee.property.name=/^(query|connect)$/][callee.object.property.name='pool']",
    message: sqlMessage,
  },
  {
    selector:
      'Literal[value=/^\\s*(select|insert into|update|delete from|with)\\s[\\s\\S]*\\b(from|set|values|where)\\b/i]',
    message: sqlMessage,
  },
  {
    selector:
      'TemplateElement[value.raw=/^\\s*(select|insert into|update|delete from|with)\\s[\\s\\S]*\\b(from|set|values|where)\\b/i]',
    message: sqlMessage,
  },
];
const s3Syntax = [
  { selector: 'NewExpression[callee.name=/.Command$/]', message: s3Message },
  { selector: "CallExpression[callee.property.name='send'][callee.object.name='s3']", message: s3Message },
  { selector: "CallExpression[callee.property.name='send'][callee.object.property.name='s3']", message: s3Message },
];
/** The rules of one part of src/: each flat-config block replaces a rule's options, so each part gets all of its own. */
function homes({ sql, s3 }) {
  return {
    'no-restricted-imports': [
      'error',
      { paths: [...(sql ? [] : sqlImports), ...(s3 ? [] : s3Imports)], patterns: s3 ? [] : s3Patterns },
    ],
    'no-restricted-syntax': ['error', ...(sql ? [] : sqlSyntax), ...(s3 ? [] : s3Syntax)],
  };
}

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
  { files: ['src/**/*.ts'], ignores: ['src/store/**', 'src/s3/**'], rules: homes({ sql: false, s3: false }) },
  { files: ['src/store/**/*.ts'], rules: homes({ sql: true, s3: false }) },
  { files: ['src/s3/**/*.ts'], rules: homes({ sql: false, s3: true }) },
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
