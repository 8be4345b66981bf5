'use strict'
// Baseline of the fire benchmark: bench/plain-producer (a plain rdkafka producer, acks=all) sends
// n messages of the same shape to a fresh topic on the same broker and waits for every delivery
// report; its own clock starts before it creates the producer.
//
// args: { n, inFlight }   inFlight 0 = everything handed to librdkafka at once

const path = require('path')
const { execFile } = require('child_process')
const c = require('../lib/common')

const BIN = path.join(__dirname, '..', 'plain-producer', 'target', 'release', 'plain-producer')

c.main(async ({ n, inFlight = 0 }) => {
  const redis = c.redisClient()
  const topic = c.unique('plain-topic')
  await c.createTopic(topic)
  const cpu = await c.cpuMeter(redis)
  const out = await new Promise((resolve, reject) =>
    execFile(BIN, [c.KAFKA_BROKERS, topic, String(n), String(inFlight)], (err, stdout, stderr) =>
      err ? reject(new Error(`${BIN} failed: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  )
  const usage = cpu.stop()
  redis.disconnect()
  const result = JSON.parse(out.trim().split('\n').pop())
  if (result.failed) throw new Error(`plain producer: ${result.failed} of ${n} sends failed`)
  // Only the broker's CPU means something here: the producer is a child process, so this
  // process's figure and `others` would be misleading.
  return { n, inFlight, ms: result.ms, perSec: (n / result.ms) * 1000, cpu: { broker: usage.broker } }
})
