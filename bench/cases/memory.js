'use strict'
// Redis memory per scheduled message: n messages with a payload (message.value) of
// `payloadBytes` bytes, due a year from now; MEMORY USAGE (SAMPLES 0: every element counted) of
// the entries hash + due zset + seen zset, divided by n.
//
// args: { n, payloadBytes }

const c = require('../lib/common')

const TOPIC = 'orders'
const EVENT = 'OrderFailed'

/** A JSON payload of exactly `bytes` bytes with a msgId, like the seed's. */
function payload(tag, k, bytes) {
  const base = { msgId: `${tag}-${String(k).padStart(8, '0')}`, orderId: 100000 + k, success: false, pad: '' }
  const pad = bytes - JSON.stringify(base).length
  if (pad < 0) throw new Error(`payload of ${bytes} bytes is too small`)
  base.pad = 'x'.repeat(pad)
  return JSON.stringify(base)
}

c.main(async ({ n, payloadBytes }) => {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const prefix = c.unique('mem')
  const keys = c.scheduleKeys(prefix)
  const retry = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  const tag = c.unique('m')
  const options = { delay: '525600', maxRetry: '3', retryCount: '0' }
  await c.runCallers(256, n, (k) => retry.pushToQueue(TOPIC, { event: EVENT, value: payload(tag, k, payloadBytes) }, options))
  await retry.close()

  const usage = async (key) => Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) || 0)
  const bytes = {
    entries: await usage(keys.entries),
    due: await usage(keys.due),
    seen: await usage(keys.seen),
  }
  const count = await redis.zcard(keys.due)
  const [id] = await redis.hrandfield(keys.entries, 1)
  const entryJson = await redis.hget(keys.entries, id)
  const encodings = {
    entries: await redis.object('ENCODING', keys.entries),
    due: await redis.object('ENCODING', keys.due),
    seen: await redis.object('ENCODING', keys.seen),
  }
  await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease)
  redis.disconnect()
  const total = bytes.entries + bytes.due + bytes.seen
  return {
    n,
    count,
    payloadBytes: Buffer.byteLength(payload(tag, 0, payloadBytes)),
    idBytes: Buffer.byteLength(id),
    entryBytes: Buffer.byteLength(entryJson),
    bytes,
    encodings,
    perMessage: total / count,
    perMessageParts: {
      entries: bytes.entries / count,
      due: bytes.due / count,
      seen: bytes.seen / count,
    },
  }
})
