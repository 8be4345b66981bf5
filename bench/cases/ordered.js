'use strict'
// What ordered retries cost (issue 23), side by side in one process and one run: the unordered
// pushToQueue, the ordered calls a consumer makes, and the Redis memory each stored message takes.
//
// args: { n, callers, rounds? }
//   push         pushToQueue: the unordered path (push.lua), as without ordering
//   failure      endTurn(..., failed = true) of a key with nothing waiting: the first failure of
//                a key starts its chain (park.lua, scheduled after its delay)
//   park         park behind a head (park.lua): the message is held, not scheduled
//   turn-free    takeTurn of a key with nothing waiting (turn.lua): what every message of an
//                ordered consumer pays when nothing fails
//   handled      endTurn of a head that came back and succeeded, releasing the next (done.lua)
// Every message has its own msgId. Nothing fires: the delay is 60 minutes. Kinds take turns, for
// `rounds` rounds (default 3), so load from other processes on the machine spreads over them all.
// Run by hand: node bench/cases/ordered.js '{"n":20000,"callers":64}'

const c = require('../lib/common')

const TOPIC = 'bench-orders'
const OPTIONS = { delay: '60', maxRetry: '3', retryCount: '0' }
const WARMUP = 500

const payload = (tag, k) => JSON.stringify({ msgId: `${tag}-${k}`, orderId: k, success: false })

async function usedMemory(redis) {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)[1])
}

/** One kind at `callers` concurrency: ops/s, server µs per script call, bytes per stored message. */
async function measure(retry, prefix, redis, kind, { n, callers }) {
  const tag = c.unique(kind)
  const key = (k) => `${tag}-key-${k}`
  const message = (k) => ({ event: key(k), value: payload(tag, k) })
  // What each kind needs in place first: a head for parks, a chain whose head came back for
  // `handled` (its token: the id the package gave it, carried as the retryOrder header).
  const tokens = []
  if (kind === 'park') {
    await c.runCallers(callers, n, (k) => retry.park(TOPIC, { event: key(k), value: payload(`${tag}h`, k) }, OPTIONS))
  }
  if (kind === 'handled') {
    await c.runCallers(callers, n, async (k) => {
      await retry.park(TOPIC, { event: key(k), value: payload(`${tag}h`, k) }, OPTIONS)
      await retry.park(TOPIC, { event: key(k), value: payload(`${tag}n`, k) }, OPTIONS)
    })
    for (let k = 0; k < n; k++) {
      tokens[k] = await redis.lindex(`{${prefix}}:chain:${TOPIC.length}:${TOPIC}:${key(k).length}:${key(k)}`, 0)
    }
  }
  const memory0 = await usedMemory(redis)
  const stats0 = await c.commandStats(redis)
  const op = {
    push: (k) => retry.pushToQueue(TOPIC, message(k), OPTIONS),
    failure: (k) => retry.endTurn(TOPIC, message(k), { ...OPTIONS, error: new Error('failed') }, true),
    park: (k) => retry.park(TOPIC, message(k), OPTIONS),
    'turn-free': (k) => retry.takeTurn(TOPIC, message(k), OPTIONS),
    handled: (k) => retry.endTurn(TOPIC, message(k), { ...OPTIONS, retryOrder: tokens[k] }, false),
  }[kind]
  const ms = await c.runCallers(callers, n, op)
  const stats1 = await c.commandStats(redis)
  const memory1 = await usedMemory(redis)
  const stores = kind === 'push' || kind === 'failure' || kind === 'park'
  return {
    perSec: Math.round((n / ms) * 1000),
    evalsha: c.usecPerCall(stats0, stats1, 'evalsha'),
    bytesPerMessage: stores ? Math.round((memory1 - memory0) / n) : null,
  }
}

c.main(async ({ n = 20000, callers = 64, rounds = 3 }) => {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const kinds = ['push', 'failure', 'park', 'turn-free', 'handled']
  const results = Object.fromEntries(kinds.map((k) => [k, []]))
  const prefixes = []
  const warmPrefix = c.unique('ordered-warm')
  const warm = new KafkaRetry({ keyPrefix: warmPrefix, redisUrl: c.REDIS_URL })
  prefixes.push(warmPrefix)
  for (const kind of kinds) await measure(warm, warmPrefix, redis, kind, { n: WARMUP, callers })
  for (let round = 0; round < rounds; round++) {
    for (const kind of kinds) {
      const prefix = c.unique('ordered')
      prefixes.push(prefix)
      const retry = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
      results[kind].push(await measure(retry, prefix, redis, kind, { n, callers }))
      await retry.close()
      await c.unlinkMatching(redis, `{${prefix}}:*`)
    }
  }
  await warm.close()
  for (const prefix of prefixes) await c.unlinkMatching(redis, `{${prefix}}:*`)
  redis.disconnect()
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const summary = {}
  for (const kind of kinds) {
    const runs = results[kind]
    summary[kind] = {
      perSec: median(runs.map((r) => r.perSec)),
      perSecRuns: runs.map((r) => r.perSec),
      evalshaUsec: median(runs.map((r) => (r.evalsha ? r.evalsha.usecPerCall : 0))),
      bytesPerMessage: runs[0].bytesPerMessage === null ? null : median(runs.map((r) => r.bytesPerMessage)),
    }
  }
  return { n, callers, rounds, summary }
})
