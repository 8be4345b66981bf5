// Child process of __test__/faults/batch-lease.test.js: a listener that claims one batch and dies
// in the middle of it. Its producer publishes the messages whose `n` is even at once and never
// finishes the odd ones; the parent kills it (SIGKILL) once every publish has started and the even
// ones were acknowledged, so its batch's lease record stays behind with half of it unsettled.
// Config (LEASE_CONFIG, JSON): the constructor's options. Sends { started: [n...] } and
// { published: [n...] } over IPC as they change.
'use strict'
const { KafkaRetry } = require('../..')

const config = JSON.parse(process.env.LEASE_CONFIG)
const started = []
const published = []
const producer = {
  async produce(topic, key, value) {
    const { n } = JSON.parse(value)
    started.push(n)
    process.send({ started })
    if (n % 2 === 1) await new Promise(() => {})
    published.push(n)
    process.send({ published })
  },
}

new KafkaRetry(config).queueListener(producer, `${config.keyPrefix}:dlq`).catch((err) => {
  console.error(err)
  process.exit(1)
})
