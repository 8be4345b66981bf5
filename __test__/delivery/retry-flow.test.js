// The seed's whole flow against real Redis and a real broker: a kafkajs consumer fails a message,
// pushes it with KafkaRetry, the listener re-publishes it with retryCount 1, 2, 3 in the headers,
// and then it lands in the dead letter hash.
const h = require('../helpers')
const { seedProducer, runSeedFlow } = require('../helpers/flows')

beforeAll(h.requireServers)

test('seed flow with the seed producer wrapper: retried 3 times, then dead-lettered', async () => {
  const calls = await runSeedFlow(seedProducer)
  // produce(topic, key, value, headers) was called exactly as the original did, once per retry.
  expect(calls).toHaveLength(3)
  for (const call of calls) {
    expect(typeof call.value).toBe('string')
    // The original's four headers first; extra ones (firstFailedAt, retryDelayMs) follow.
    expect(Object.keys(call.headers).slice(0, 4)).toEqual(['delay', 'maxRetry', 'retryCount', 'executeAt'])
  }
})

test('seed flow with a kafkajs Producer passed as is (send)', async () => {
  const calls = await runSeedFlow((kafkaProducer) => kafkaProducer)
  expect(calls).toHaveLength(0)
})

test('seed flow with the internal rdkafka producer (no producer given)', async () => {
  const calls = await runSeedFlow(() => null)
  expect(calls).toHaveLength(0)
})
