#!/usr/bin/env node
// JavaScript lives in .js files, never in Rust strings: every `run_script` in src/ must evaluate a
// constant that is `include_str!` of a .js file beside it (where eslint, tests and readers see
// the code), never a string literal, a `const` holding one, or text built at run time.
// `npm run lint` runs this (and so does .ci/run); `__test__/unit/js-in-rust.test.js` holds it to
// examples. Exit status 1 with one line per offence.
'use strict'

const fs = require('fs')
const path = require('path')

/** `.rs` files under `dir`, recursively. */
function rustFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return rustFiles(full)
    return entry.name.endsWith('.rs') ? [full] : []
  })
}

/** The text between the parenthesis opening at `open` and its match (strings not considered). */
function argumentAt(source, open) {
  let depth = 0
  for (let i = open; i < source.length; i++) {
    if (source[i] === '(') depth++
    else if (source[i] === ')' && --depth === 0) return source.slice(open + 1, i)
  }
  return source.slice(open + 1)
}

/**
 * Every `run_script` call of `source` (the text of a Rust file named `file`) whose argument is not
 * a constant of that file defined as `include_str!("....js")`: `[{ file, line, argument }]`.
 */
function offences(source, file = '<source>') {
  // Line comments out (their text is not code), keeping line numbers.
  const code = source
    .split('\n')
    .map((line) => (/^\s*\/\//.test(line) ? '' : line))
    .join('\n')
  const included = new Set()
  for (const match of code.matchAll(/\b(?:const|static)\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*include_str!\(\s*"[^"]+\.js"\s*\)\s*;/g)) {
    included.add(match[1])
  }
  const found = []
  for (const match of code.matchAll(/\brun_script\s*(?:::\s*<[^>]*>\s*)?\(/g)) {
    const open = match.index + match[0].length - 1
    const argument = argumentAt(code, open).trim()
    const name = /^&?\s*([A-Za-z_][A-Za-z0-9_]*)$/.exec(argument)
    if (name && included.has(name[1])) continue
    const line = code.slice(0, match.index).split('\n').length
    found.push({ file, line, argument: argument.length > 60 ? `${argument.slice(0, 57)}...` : argument })
  }
  return found
}

/** The offences of every Rust file under `root`/src. */
function check(root) {
  return rustFiles(path.join(root, 'src')).flatMap((file) => offences(fs.readFileSync(file, 'utf8'), path.relative(root, file)))
}

module.exports = { offences, check }

if (require.main === module) {
  const found = check(path.join(__dirname, '..'))
  for (const { file, line, argument } of found) {
    process.stderr.write(`${file}:${line}: run_script(${argument}) evaluates JavaScript held in Rust: put it in a .js file and include_str! it into a const\n`)
  }
  process.exitCode = found.length ? 1 : 0
}
