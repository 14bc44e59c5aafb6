import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist-bench/**',
      'node_modules/**',
      'coverage/**',
      '*.config.js',
      'bin/**',
    ],
  },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Build scripts run before any compile step, so they are plain .mjs files.
        projectService: { allowDefaultProject: ['scripts/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // The pure core: no filesystem, no processes, no clock.
    files: [
      'src/policy/model.ts',
      'src/compile/**',
      'src/plan/**',
      'src/netfilter/parse*.ts',
      'src/netfilter/render*.ts',
      'src/core/**',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: ['node:fs*', 'node:child_process', 'execa', 'fs', 'child_process'] },
      ],
    },
  },
  {
    // Only the CLI entry talks to the process.
    files: ['src/**'],
    ignores: ['src/cli/main.ts'],
    rules: { 'no-restricted-properties': ['error', { object: 'process', property: 'exit' }] },
  },
  {
    files: ['test/**', 'scripts/**'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    // Plain JavaScript has no types to check JSON.parse's result against.
    files: ['scripts/*.mjs'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
);
