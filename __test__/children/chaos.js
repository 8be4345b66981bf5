// Child process of __test__/faults/chaos.test.js: a service whose Redis and broker sit behind toxiproxy.
// One KafkaRetry pushes messages at a steady rate while its listener publishes them with the
// package's own producer (queueListener with no producer). A rejected push is pushed again with the
// same msgId after `repushMs`, as a consumer redelivers a message it could not hand over; the
// package stores a redelivery once. Its own process, so its descriptors and memory are the
// package's and not jest's.
//
// Driven over the IPC channel (fork): the parent sends { id, cmd } and gets { id, ...reply }:
//   start   create the instance and start the listener
//   push    start pushing (`rate` per second) until `stop`
//   stop    stop starting new pushes; replies once every push started is stored
//   sample  open descriptors (/proc/self/fd) and resident memory
//   status  how many were started, stored, published (retry events)
//   close   close() the instance; replies with every push attempt, publish time and error event
// Config (CHAOS_CONFIG, JSON): redisUrl, brokers, prefix, topic, dlq, rate, payloadBytes, repushMs,
// and `options` passed on to the constructor.
'use strict'
const fs = require('fs')
const { KafkaRetry } = require('../..')

const cfg = JSON.parse(process.env.CHAOS_CONFIG)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const pad = 'x'.repeat(cfg.payloadBytes || 0)

/** Every push attempt: n, when it was called, how long it took to settle, 'stored' or the code. */
const attempts = []
/** When each `retry` event (a publish the broker acknowledged) was seen. */
const published = []
/** Error events by code. */
const errors = {}
const lastErrors = []
let retry
let pushing = false
let started = 0
let stored = 0
const pending = new Set()

function sample() {
  return { fds: fs.readdirSync('/proc/self/fd').length, rss: process.memoryUsage().rss }
}

async function pushOne(n) {
  const message = { event: `e${n}`, value: JSON.stringify({ n, msgId: `chaos-${n}`, pad }) }
  for (;;) {
    const at = Date.now()
    try {
      await retry.pushToQueue(cfg.topic, message, { delay: '0', maxRetry: '3', retryCount: '0' })
      attempts.push({ n, at, ms: Date.now() - at, code: 'stored' })
      stored += 1
      return
    } catch (err) {
      attempts.push({ n, at, ms: Date.now() - at, code: err.code || `uncoded: ${err.message}` })
      if (err.code === 'ERR_CLOSED') return
      await sleep(cfg.repushMs)
    }
  }
}

async function pushLoop() {
  const t0 = Date.now()
  while (pushing) {
    // Catch up to the rate (timers on a loaded machine run late).
    const due = Math.floor(((Date.now() - t0) * cfg.rate) / 1000) + 1
    while (started < due && pushing) {
      const p = pushOne(started)
      started += 1
      pending.add(p)
      p.finally(() => pending.delete(p))
    }
    await sleep(Math.max(5, Math.min(100, 1000 / cfg.rate)))
  }
}

const commands = {
  async start() {
    retry = new KafkaRetry({
      redisUrl: cfg.redisUrl,
      brokers: cfg.brokers,
      keyPrefix: cfg.prefix,
      ...cfg.options,
      onEvent(e) {
        if (e.type === 'retry') published.push(Date.now())
        else if (e.type === 'error') {
          errors[e.code] = (errors[e.code] || 0) + 1
          lastErrors.push(e.message)
          if (lastErrors.length > 5) lastErrors.shift()
        }
      },
    })
    await retry.queueListener(null, cfg.dlq)
    return sample()
  },
  async push() {
    pushing = true
    pushLoop()
    return {}
  },
  async stop() {
    pushing = false
    while (pending.size) await Promise.all([...pending])
    return { started, stored }
  },
  async sample() {
    return sample()
  },
  async status() {
    return { started, stored, published: published.length }
  },
  async close() {
    const at = Date.now()
    await retry.close()
    return { closeMs: Date.now() - at, attempts, published, errors, lastErrors, started, stored }
  },
}

process.on('message', async ({ id, cmd }) => {
  try {
    process.send({ id, ...(await commands[cmd]()) })
  } catch (err) {
    process.send({ id, error: `${err.code || ''} ${err.stack || err}` })
  }
})
