// Type-checked by `npm run typecheck`: retry.retrying() / retryingBatch() (docs/consumer.md) merge
// into the KafkaRetry class and fit kafkajs's consumer.run() without a cast.
import { KafkaRetry, RetryingOptions, RetryingPayload } from '../..'
import type { Consumer, EachMessagePayload } from 'kafkajs'

class ValidationError extends Error {}

export async function consume(consumer: Consumer): Promise<void> {
  const retry = new KafkaRetry()
  const options: RetryingOptions = { delay: '0.5', maxRetry: 5, isPermanent: (err: Error) => err instanceof ValidationError, dlqName: 'orders-dlq', keepHeaders: ['x-tenant'] }
  // A handler typed with kafkajs's own payload: the eachMessage takes that payload.
  await consumer.run({
    eachMessage: retry.retrying(async ({ topic, message }: EachMessagePayload) => {
      const offset: string = message.offset
      void topic, offset
    }, options),
  })
  // Untyped handlers are inferred; the batch handler gets a per-message payload.
  await consumer.run({ eachMessage: retry.retrying(async ({ message }) => void message.value) })
  await consumer.run({
    eachBatch: retry.retryingBatch(async ({ message, heartbeat }) => {
      const value: Buffer | string | null = message.value
      await heartbeat()
      void value
    }, { ordered: true, backoff: { type: 'exponential', multiplier: 2 } }),
  })
  // Still the native class: its statics and instanceof.
  const isRetry: boolean = retry instanceof KafkaRetry
  const payload = null as unknown as RetryingPayload
  void isRetry, payload, KafkaRetry.headers({})
}

export function wrong(retry: KafkaRetry): void {
  // @ts-expect-error an unknown option
  retry.retrying(async () => {}, { delai: 1 })
  // @ts-expect-error the handler must be a function
  retry.retryingBatch('handler')
}
