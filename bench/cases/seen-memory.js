'use strict'
// Redis memory per remembered id (the seen window that drops a redelivery after its message was
// published): the previous format, a sorted set of ids scored by their ack time, against the
// seen buckets ack.lua writes now, for the same ids, measured with MEMORY USAGE.
//
// args: { n }  ids remembered (acked 500 per script call, as a listener acks a batch)

const crypto = require('crypto')
const c = require('../lib/common')
const { resolve, ackArgs } = require('../lib/lua')

// As the addon loads it: ack.lua with the libraries it includes (the counts, the seen window).
const ACK = resolve('schedule/ack')
const WINDOW_MS = 3_600_000

/** An id as ids::message_id makes it from a msgId: 'm:' and 22 characters of base64url. */
const messageId = () => `m:${crypto.randomBytes(17).toString('base64url').slice(0, 22)}`

async function memoryOf(redis, pattern) {
  let bytes = 0
  let keys = 0
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    for (const key of found) {
      bytes += Number(await redis.memory('USAGE', key, 'SAMPLES', 0))
      keys++
    }
  } while (cursor !== '0')
  return { bytes, keys }
}

c.main(async ({ n }) => {
  const redis = c.redisClient()
  const ids = Array.from({ length: n }, messageId)

  // Before: one sorted set member per id, scored by the ack time (ms).
  const before = `{${c.unique('seen-zset')}}:seen`
  const now = Date.now()
  for (let i = 0; i < n; i += 500) {
    const args = []
    for (const id of ids.slice(i, i + 500)) args.push(now, id)
    await redis.zadd(before, ...args)
  }
  const zset = await memoryOf(redis, before)

  // After: ack.lua as the listener runs it (the lease and entries hold nothing: only the seen
  // window is measured).
  const prefix = c.unique('seen-buckets')
  const k = c.scheduleKeys(prefix)
  for (let i = 0; i < n; i += 500) {
    const batch = ids.slice(i, i + 500)
    // One group: published, topic 't', of no known batch (ack.lua's KEYS and ARGV layout).
    await redis.eval(ACK, 8, k.lease, k.entries, k.seen, `{${prefix}}:failures`, `{${prefix}}:topics`, `{${prefix}}:history`, `{${prefix}}:batches`, k.due, WINDOW_MS, '', '0', ...ackArgs(WINDOW_MS, 't', batch))
  }
  const buckets = await memoryOf(redis, `${k.seen}*`)

  await c.unlink(redis, before)
  await c.unlinkMatching(redis, `${k.seen}*`)
  await c.unlinkMatching(redis, `{${prefix}}:history*`)
  redis.disconnect()
  return {
    n,
    zsetBytesPerId: zset.bytes / n,
    bucketBytesPerId: buckets.bytes / n,
    bucketKeys: buckets.keys,
  }
})
