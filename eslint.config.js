'use strict'
// ESLint 9 flat config: `npm run lint`. The package is CommonJS (no "type": "module").

const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  {
    // Generated (index.js, index.d.ts by napi), vendored or built things, and TypeScript.
    ignores: [
      'index.js',
      'index.d.ts',
      'node_modules/',
      'target/',
      '.services/',
      'dist/',
      'docs/api/',
      'bench/plain-producer/target/',
      '__test__/types/',
    ],
  },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
  {
    files: ['__test__/**/*.js'],
    languageOptions: {
      globals: { ...globals.node, ...globals.jest },
    },
  },
  {
    // The dashboard's one browser script, served as it is (no build step).
    files: ['dashboard/assets/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { ...globals.browser },
    },
  },
  {
    // Evaluated by napi's env.run_script (src/js_publisher.rs): a plain script whose only
    // statement is a parenthesised function expression, the script's value. No Node globals.
    // (If no-unused-expressions is ever enabled, turn it off here: that bare expression is the
    // point.)
    files: ['src/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {},
    },
  },
]
