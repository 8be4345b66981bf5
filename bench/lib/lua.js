'use strict'
// The Lua scripts as Redis runs them, for the bench's own Redis calls: each `--- @include "lib/x"`
// line replaced by that library (after the ones it includes), each library once, as the engine's
// store/scripts.rs resolves them.

const fs = require('fs')
const path = require('path')

/** Where the scripts are, relative to the repository root. */
const LUA = 'crates/engine/lua/'

/** A file of this checkout relative to the repository root; '' when there is none. */
function readCheckout(file) {
  const at = path.join(__dirname, '..', '..', file)
  return fs.existsSync(at) ? fs.readFileSync(at, 'utf8') : ''
}

/**
 * The script `name` (say `schedule/ack`) with its includes resolved. `read(file)` gives a file's
 * text ('' when missing): this checkout by default, a git revision's in bench/seen-lookup.js.
 */
function resolve(name, read = readCheckout, done = new Set()) {
  const text = read(`${LUA}${name}.lua`)
  if (!text) throw new Error(`no ${LUA}${name}.lua`)
  return text
    .split(/(?<=\n)/)
    .map((line) => {
      const include = /^--- @include "([^"]+)"\s*$/.exec(line)
      if (!include) return line
      if (done.has(include[1])) return ''
      done.add(include[1])
      const body = resolve(include[1], read, done)
      return body.endsWith('\n') ? body : body + '\n'
    })
    .join('')
}

/**
 * The ARGV after `ack.lua`'s first 3 for one group of `ids` published to `topic`, with `m:` ids of
 * the seen bucket's size grouped by field as the engine's store/schedule/seen.rs sends them.
 */
function ackArgs(windowMs, topic, ids) {
  const fields = new Map()
  const setIds = []
  for (const id of ids) {
    if (windowMs > 0 && id.length === 24 && id.startsWith('m:')) {
      const field = id.slice(2, 4)
      fields.set(field, (fields.get(field) || '') + id.slice(4))
    } else if (id.startsWith('m:') || id.startsWith('legacy:')) setIds.push(id)
  }
  return [1, fields.size, setIds.length, 'o', topic, ids.length, ...[...fields].flat(), ...setIds, ...ids]
}

module.exports = { LUA, resolve, readCheckout, ackArgs }
