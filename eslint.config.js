'use strict'
// ESLint 9 flat config: `npm run lint`. The package is CommonJS (no "type": "module").

const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  {
    // Generated (native.js, index.d.ts by napi), vendored or built things, and TypeScript. A
    // root index.js is what a bare `napi build --platform` (no `--js native.js`) leaves.
    ignores: [
      'native.js',
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
]
