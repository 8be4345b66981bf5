'use strict'
// The pushing side of the lateness case: `rate` pushes/s for `seconds`, paced by the clock, each
// with a delay drawn uniformly from [minMs, maxMs]. lateness.js calls `pushPaced` in its own
// process, or runs this file as a second process (pushFrom: 'process'), which then prints
// { failed, pushRate, cpuMs } as one JSON line (cpuMs: its own CPU, for the CPU meter).
//
// env when run: PUSHER_ARGS = JSON { prefix, seconds, rate, minMs, maxMs, redisUrl }

const c = require('../lib/common')

const TICK_MS = 2

/** Pushes into schedule `prefix` through `pusher`; resolves to { failed, pushRate }. */
async function pushPaced(pusher, prefix, { seconds, rate, minMs, maxMs }) {
  const options = (ms) => ({ delay: String(ms / 60_000), maxRetry: '3', retryCount: '0' })
  const total = Math.round(seconds * rate)
  let pushed = 0
  let failed = 0
  const inflight = new Set()
  const t0 = Date.now()
  // Paced by the clock, not by the timer: each tick pushes what is owed so far.
  while (pushed < total) {
    const owed = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000))
    while (pushed < owed) {
      const k = pushed++
      const delayMs = minMs + Math.random() * (maxMs - minMs)
      const p = pusher
        .pushToQueue('bench-late', { event: 'OrderFailed', value: JSON.stringify({ msgId: `${prefix}-${k}`, n: k }) }, options(delayMs))
        .catch(() => failed++)
        .finally(() => inflight.delete(p))
      inflight.add(p)
    }
    await c.sleep(TICK_MS)
  }
  const pushRate = total / ((Date.now() - t0) / 1000)
  await Promise.all(inflight)
  return { failed, pushRate }
}

async function main() {
  const args = JSON.parse(process.env.PUSHER_ARGS)
  const { KafkaRetry } = require(c.PACKAGE)
  const pusher = new KafkaRetry({ keyPrefix: args.prefix, redisUrl: args.redisUrl })
  const result = await pushPaced(pusher, args.prefix, args)
  await pusher.close()
  const cpu = process.cpuUsage()
  process.stdout.write(JSON.stringify({ ...result, cpuMs: (cpu.user + cpu.system) / 1000 }) + '\n')
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { pushPaced }
