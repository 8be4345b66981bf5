'use strict'
// Lateness: a steady `rate` pushes/s for `seconds`, each with a delay drawn uniformly from
// [minMs, maxMs] (given to pushToQueue as decimal minutes), while a listener in this process
// publishes through a JS produce wrapper that records Date.now() - Number(headers.executeAt) and
// resolves at once (no broker: this measures the schedule, not Kafka). The pushes come from a
// separate instance in this process (pushFrom 'same', as in a service that pushes and listens),
// or from a second Node process (pushFrom 'process', lateness-pusher.js: consumers on other pods
// than the listener), whose wake-ups reach the listener only through Redis.
//
// args: { seconds, rate, minMs, maxMs, pushFrom }

const { spawn } = require('child_process')
const path = require('path')
const c = require('../lib/common')
const { pushPaced } = require('./lateness-pusher')

function percentile(sorted, p) {
  if (!sorted.length) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Runs lateness-pusher.js; `done` resolves to its { failed, pushRate, cpuMs }. */
function pushFromProcess(args) {
  const child = spawn(process.execPath, [path.join(__dirname, 'lateness-pusher.js')], {
    env: { ...process.env, PUSHER_ARGS: JSON.stringify(args) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const done = new Promise((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`pusher exited with ${code}`))))
  })
  return { done }
}

c.main(async ({ seconds, rate, minMs, maxMs, pushFrom = 'same' }) => {
  const { KafkaRetry } = require(c.PACKAGE)
  const redis = c.redisClient()
  const prefix = c.unique('late')
  const keys = c.scheduleKeys(prefix)
  const dlq = `${prefix}:dlq`
  const late = []
  const producer = {
    produce(topic, key, value, headers) {
      late.push(Date.now() - Number(headers.executeAt))
      return Promise.resolve()
    },
  }
  const listener = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
  await listener.queueListener(producer, dlq)
  const total = Math.round(seconds * rate)
  let failed = 0
  let pushRate
  let cpu
  let pusherCpuMs = 0
  if (pushFrom === 'process') {
    const child = pushFromProcess({ prefix, seconds, rate, minMs, maxMs, redisUrl: c.REDIS_URL })
    // The pusher's CPU (it reports its own) is this run's work, not a disturbance.
    cpu = await c.cpuMeter(redis)
    ;({ failed, pushRate, cpuMs: pusherCpuMs } = await child.done)
  } else {
    const pusher = new KafkaRetry({ keyPrefix: prefix, redisUrl: c.REDIS_URL })
    cpu = await c.cpuMeter(redis)
    ;({ failed, pushRate } = await pushPaced(pusher, prefix, { seconds, rate, minMs, maxMs }))
    await pusher.close()
  }
  const deadline = Date.now() + maxMs + 10_000
  while (late.length < total - failed && Date.now() < deadline) await c.sleep(20)
  const cpuUsage = cpu.stop(pusherCpuMs)
  await listener.close()
  await c.unlink(redis, keys.due, keys.entries, keys.seen, keys.lease, dlq)
  redis.disconnect()

  const sorted = late.slice().sort((a, b) => a - b)
  return {
    pushed: total,
    failed,
    received: late.length,
    pushRate,
    min: sorted[0],
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1],
    cpu: cpuUsage,
  }
})
