// Type-checked by `npm run typecheck`: kafka-redis-retry/prometheus with prom-client's own Registry.
import { Registry, register } from 'prom-client'
import { KafkaRetry } from '../..'
import { registerMetrics, parseMetrics, scrapeText, CONTENT_TYPE, REDIS_UP } from '../../prometheus'

const orders = new KafkaRetry({ keyPrefix: 'orders' })
const payments = new KafkaRetry({ keyPrefix: 'payments' })

const remove: () => void = registerMetrics(register, orders)
registerMetrics(new Registry(), [{ retry: orders, dlqName: 'DEAD_LETTER_QUEUE' }, payments], {
  onError: (error: Error) => console.error(error.message),
})
remove()

async function scrape(): Promise<number> {
  const samples = parseMetrics(await orders.metrics())
  return samples.filter((s) => s.name === 'kafka_retry_scheduled' && s.prefix === 'orders').reduce((sum, s) => sum + s.value, 0)
}
void scrape

const redisUp: 'kafka_retry_redis_up' = REDIS_UP
void redisUp

async function text(): Promise<[string, string]> {
  return [CONTENT_TYPE, await scrapeText([orders, { retry: payments, dlqName: 'DEAD_LETTER_QUEUE' }], { onError: () => undefined })]
}
void text
