// Lint policy: typescript-eslint strict + type-checked rules; no `any`, no
// unchecked non-null assertions, no floating promises.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NO_SIMULATOR = { regex: '(^|/)firmware-sim(/|$)', message: 'The product must not depend on the simulator: move what both need into src/ (docs/architecture.md).' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'native/**', 'coverage/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-confusing-void-expression': 'off',
      '@typescript-eslint/prefer-literal-enum-member': 'off',
    },
  },
  {
    // The product never depends on the simulator (firmware-sim imports from src, not the reverse).
    // Repeated in the blocks below: a later block's no-restricted-imports replaces this one for its files.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NO_SIMULATOR] }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        NO_SIMULATOR,
        { regex: '^(node:)?(fs|net|http|https|dgram|child_process|os|tls|dns|worker_threads)(/.*)?$', message: 'src/core is pure: no I/O.' },
        { regex: '^\\.\\./(vehicle|phone|cloud|cli|transport)', message: 'src/core depends on nothing outside it.' },
      ] }],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Inject the clock.' },
        { object: 'Math', property: 'random', message: 'Inject the RNG.' },
      ],
      'no-restricted-syntax': ['error', { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Inject the clock.' }],
    },
  },
  {
    // The BLE link handler may use the store and the transport, never the cloud path (DESIGN invariant 1).
    files: ['src/vehicle/link-handler.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)(sync|cloud-client|cloud)(/|$)', message: 'No cloud code on the entry path (DESIGN invariant 1): the sync worker runs beside it.' },
        { regex: '^(node:)?(net|http|https|http2|dgram|tls|dns)$|^(undici|mqtt|pg)(/|$)', message: 'No network on the entry path (DESIGN invariant 1).' },
      ] }],
    },
  },
  {
    files: ['src/vehicle/authorizer*.ts', 'src/vehicle/decision*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        NO_SIMULATOR,
        { regex: '(cloud|sync|http|https|net|fetch|undici)', message: 'No network on the entry path (DESIGN invariant 1).' },
      ] }],
    },
  },
);
