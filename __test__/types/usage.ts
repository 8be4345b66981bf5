// Type-checked by `npm run typecheck` (tsc --noEmit): the public API as a TypeScript service uses it.
import { KafkaRetry, KafkaRetryConfig, RetryHeadersObject, RetryProducer } from '../..'

const config: KafkaRetryConfig = {
  redisUrl: 'redis://127.0.0.1:6379',
  brokers: ['127.0.0.1:9092'],
  kafka: { 'client.id': 'svc', 'linger.ms': 5, 'enable.idempotence': false },
  keyPrefix: 'svc',
  pollIntervalMs: 500,
  leaseMs: 30000,
  batchSize: 100,
}

const wrapper: RetryProducer = {
  async produce(topic: string, key: string, value: string, headers: Record<string, string>) {
    void topic, key, value, headers
  },
}

async function main(): Promise<void> {
  const retry = new KafkaRetry(config)
  const defaults = new KafkaRetry()
  const headers: RetryHeadersObject = KafkaRetry.headers({ retryCount: Buffer.from('1'), delay: '0.5' })
  const count: number = Number(headers.retryCount)
  void count
  await retry.pushToQueue('orders', { event: 'OrderCreated', value: JSON.stringify({ msgId: 'x' }) }, headers)
  await retry.pushToQueue('orders', { event: 'OrderCreated', value: { id: 1 } }, { delay: 0.01, maxRetry: 5, retryCount: 0 })
  await retry.queueListener(wrapper, 'DEAD_LETTER_QUEUE')
  await defaults.queueListener(null)
  const field: string = await retry.pushToDlq('DEAD_LETTER_QUEUE', { reason: 'manual' })
  void field
  try {
    await retry.pushToQueue('', { event: 'e', value: '{}' })
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_INVALID_ARG') console.log('bad input')
  }
  await retry.close()
  await defaults.close()
}

void main
