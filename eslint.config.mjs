// ESLint (flat config) with typescript-eslint: the recommended rules, plus what this code base
// relies on — no floating promises around money paths, no unused code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules/', '.gen/', 'cdktf.out/', 'build/', 'coverage/', 'java/**/target/', '**/*.d.ts'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Constructs are created for their side effect on the tree (`new Foo(this, …)`).
      'no-new': 'off',
      // Validators reject control characters on purpose (slot names, dead-letter text).
      'no-control-regex': 'off',
    },
  },
  {
    // Tests and scripts load some modules lazily (after env setup, or only on one code path).
    files: ['__tests__/**/*.ts', 'scripts/**/*.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The fuzz corpus holds numbers that cannot be represented exactly, on purpose.
    files: ['__tests__/lambdas/support/fuzz.ts'],
    rules: { 'no-loss-of-precision': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        console: 'readonly',
        __dirname: 'readonly',
        Buffer: 'readonly',
        performance: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
