#!/usr/bin/env node
// JavaScript lives in the package's .js modules (lib/), never in the native module: no Rust file
// under src/ (or crates/) evaluates JavaScript with `run_script`, whatever its argument (a string
// literal, a `const`, text built at run time, or an `include_str!` of a .js file), and none
// includes a .js file's text (`include_str!("....js")`), which could only be there to be
// evaluated. The native module gets the JavaScript it calls from lib/index.js (src/helpers.rs).
// `npm run lint` runs this (and so does .ci/run); `__test__/unit/js-in-rust.test.js` holds it to
// examples. Exit status 1 with one line per offence.
'use strict'

const fs = require('fs')
const path = require('path')

/** `.rs` files under `dir`, recursively (none when it does not exist); build output skipped. */
function rustFiles(dir) {
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === 'target' ? [] : rustFiles(full)
    return entry.name.endsWith('.rs') ? [full] : []
  })
}

/** What `found` reports for the match at `index` of `code`, its text cut to 60 characters. */
function offence(file, code, index, text, why) {
  const line = code.slice(0, index).split('\n').length
  const shown = text.length > 60 ? `${text.slice(0, 57)}...` : text
  return { file, line, text: shown, why }
}

/**
 * Every `run_script` call and every `include_str!` of a JavaScript file in `source` (the text of
 * a Rust file named `file`): `[{ file, line, text, why }]`, in the order they appear.
 */
function offences(source, file = '<source>') {
  // Comments out (their text is not code), keeping line numbers: `//` to the end of the line
  // (doc comments too), and `/* ... */` blocks.
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, (block) => block.replace(/[^\n]/g, ' '))
    .split('\n')
    .map((line) => line.replace(/(^|[^:"])\/\/.*$/, '$1'))
    .join('\n')
  const found = []
  for (const match of code.matchAll(/\brun_script\b/g)) {
    found.push(offence(file, code, match.index, code.slice(match.index).split('\n')[0].trim(), 'evaluates JavaScript in the native module'))
  }
  for (const match of code.matchAll(/\binclude_str!\s*\(\s*(?:r#*)?"([^"]*\.[cm]?js)"/g)) {
    found.push(offence(file, code, match.index, match[0], `holds the JavaScript of ${match[1]} in the native module`))
  }
  return found.sort((a, b) => a.line - b.line)
}

/** The offences of every Rust file under `root`/src and `root`/crates. */
function check(root) {
  return ['src', 'crates']
    .flatMap((dir) => rustFiles(path.join(root, dir)))
    .flatMap((file) => offences(fs.readFileSync(file, 'utf8'), path.relative(root, file)))
}

module.exports = { offences, check }

if (require.main === module) {
  const found = check(path.join(__dirname, '..'))
  for (const { file, line, text, why } of found) {
    process.stderr.write(`${file}:${line}: ${text}: ${why}; put it in a module of lib/ and hand it over from lib/index.js (src/helpers.rs)\n`)
  }
  process.exitCode = found.length ? 1 : 0
}
