// A child process of __test__/breaker/breaker.test.js: another service's consumer, pushing retries
// that came back failed (retryCount header 1) into the same schedule with the breaker on, then
// exiting. Configured by BREAKER_CONFIG (JSON: prefix, topic, count); prints "pushed <count>".
const { KafkaRetry } = require('../..')

const config = JSON.parse(process.env.BREAKER_CONFIG)

async function main() {
  const retry = new KafkaRetry({ keyPrefix: config.prefix, breaker: { minFailures: 3, probeIntervalMs: 60000 } })
  for (let i = 0; i < config.count; i++) {
    await retry.pushToQueue(
      config.topic,
      { event: `k${i}`, value: JSON.stringify({ i, from: 'child' }) },
      { delay: '0', maxRetry: '5', retryCount: '1' },
    )
  }
  await retry.close()
  process.stdout.write(`pushed ${config.count}\n`)
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`)
  process.exit(1)
})
