'use strict'
// What a push costs in Redis with many ids remembered in the seen window: the push script's µs
// per message (INFO commandstats) after N ids were acked into one seen bucket by the ack script,
// for this checkout's scripts and those of another git revision, side by side. Not part of
// `npm run bench` (filling 3 million ids takes a minute per build).
//
//   node bench/seen-lookup.js <git revision to compare with> [ids remembered ...]
//   e.g. node bench/seen-lookup.js a1ffe79 0 300000 1000000 3000000
//
// Uses REDIS_URL (default redis://127.0.0.1:6379) and deletes only its own keys.

const { execFileSync } = require('child_process')
const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const { redisClient, unlinkMatching } = require('./lib/common')
const { LUA, resolve } = require('./lib/lua')

const ROOT = path.join(__dirname, '..')
// Where the scripts are: with `--- @include` lines (crates/engine/lua/), or, in revisions before
// them, one folder whose libraries the store glued in front of a script.
const OLD_LUA = ['crates/engine/src/store/lua/', 'src/store/lua/']
const [revision, ...sizes] = process.argv.slice(2)
if (!revision) {
  console.error('usage: node bench/seen-lookup.js <git revision> [ids remembered ...]')
  process.exit(2)
}
const counts = sizes.length ? sizes.map(Number) : [0, 300_000, 1_000_000, 3_000_000]

/** A file of this checkout (rev null) or of `rev`; '' when there is no such file. */
function lua(rev, file) {
  if (!rev) {
    const at = path.join(ROOT, file)
    return fs.existsSync(at) ? fs.readFileSync(at, 'utf8') : ''
  }
  try {
    return execFileSync('git', ['show', `${rev}:${file}`], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return ''
  }
}

/** The push and ack scripts as the store composes them (seen.lua exists from a1ffe79 on). */
function scripts(rev) {
  if (lua(rev, `${LUA}schedule/push.lua`)) {
    const read = (file) => lua(rev, file)
    return { push: resolve('schedule/push', read), ack: resolve('schedule/ack', read) }
  }
  const dir = OLD_LUA.find((d) => lua(rev, `${d}push.lua`)) || OLD_LUA[0]
  const old = (file) => lua(rev, `${dir}${file}`)
  const seen = old('seen.lua')
  return {
    push: old('tally.lua') + old('base36.lua') + seen + old('push.lua'),
    ack: old('tally.lua') + seen + old('ack.lua'),
  }
}

const id = () => 'm:' + crypto.randomBytes(17).toString('base64url').slice(0, 22)
const WINDOW = 3_600_000
const ENTRY = 'x\n3\n0\nOrderFailed\nbench-orders\n{"msgId":"abc","orderId":12345,"success":false}\n'

async function measure(redis, name, { push, ack }, remembered) {
  const p = `{bench-seen-${crypto.randomBytes(4).toString('hex')}}`
  const keys = ['due', 'entries', 'seen', 'wake', 'topics', 'history'].map((k) => `${p}:${k}`)
  const pushSha = await redis.script('LOAD', push)
  const ackSha = await redis.script('LOAD', ack)
  for (let i = 0; i < remembered; i += 1000) {
    const ids = Array.from({ length: Math.min(1000, remembered - i) }, id)
    await redis.evalsha(ackSha, 6, `${p}:lease`, `${p}:entries`, `${p}:seen`, `${p}:failures`, `${p}:topics`, `${p}:history`, WINDOW, 1, 'o', 'bench-orders', ids.length, ...ids)
  }
  let bytes = 0
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${p}:seen:*`, 'COUNT', 100)
    cursor = next
    for (const key of found) bytes += await redis.memory('USAGE', key, 'SAMPLES', 0)
  } while (cursor !== '0')
  const before = await redis.info('commandstats')
  const CALLS = 200
  const BATCH = 100
  for (let c = 0; c < CALLS; c++) {
    const args = [6, ...keys, WINDOW]
    for (let i = 0; i < BATCH; i++) args.push(id(), WINDOW, ENTRY, '1', 'bench-orders')
    await redis.evalsha(pushSha, ...args)
  }
  const after = await redis.info('commandstats')
  const usec = (info) => {
    const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(info)
    return m ? Number(m[2]) : 0
  }
  // Other clients' EVALSHA calls count too: run it on a Redis nothing else uses.
  const perPush = (usec(after) - usec(before)) / (CALLS * BATCH)
  await unlinkMatching(redis, `${p}:*`)
  return { name, remembered, perPush, bytesPerId: remembered ? bytes / remembered : null }
}

async function main() {
  const redis = redisClient()
  const builds = [
    [`this checkout`, scripts(null)],
    [revision, scripts(revision)],
  ]
  console.log('| ids remembered in one bucket | ' + builds.map(([n]) => `${n}: push script µs/message, bytes/id`).join(' | ') + ' |')
  console.log('| --- | ' + builds.map(() => '---').join(' | ') + ' |')
  for (const remembered of counts) {
    const cells = []
    for (const [name, s] of builds) {
      const r = await measure(redis, name, s, remembered)
      cells.push(`${r.perPush.toFixed(2)} µs, ${r.bytesPerId == null ? '–' : r.bytesPerId.toFixed(1) + ' B'}`)
    }
    console.log(`| ${remembered.toLocaleString('en-US')} | ${cells.join(' | ')} |`)
  }
  redis.disconnect()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
