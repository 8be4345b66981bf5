// Type-checked by `npm run typecheck`: ordered retries (issue 23) as a kafkajs consumer uses them.
import { KafkaRetry, RetryStats } from '../..'
import type { Consumer, EachMessagePayload, KafkaMessage } from 'kafkajs'

export async function consume(consumer: Consumer): Promise<void> {
  const retry = new KafkaRetry()
  await consumer.run({
    eachMessage: async ({ topic, message }: EachMessagePayload) => {
      const outcome: 'handled' | 'retried' | 'parked' | 'duplicate' = await retry.handleInOrder(topic, message, async (m: KafkaMessage) => {
        // The handler gets the kafkajs message back, typed as kafkajs types it.
        const offset: string = m.offset
        void offset
        if (!m.value) throw new Error('empty')
      })
      void outcome
    },
  })
  // The building blocks, for a consumer with its own loop.
  const blocked: boolean = await retry.isBlocked('orders', 'account-7')
  const parked: 'parked' | 'scheduled' | 'duplicate' = await retry.park('orders', { event: 'account-7', value: '{}' }, KafkaRetry.headers({}))
  const options = KafkaRetry.headers({}, ['retryOrder'])
  const turn = await retry.takeTurn('orders', { event: 'account-7', value: '{}' }, options)
  if (turn === 'free' || turn === 'mine') {
    await retry.endTurn('orders', { event: 'account-7', value: '{}' }, { ...options, error: new Error('x') }, true)
  }
  const stats: RetryStats = await retry.stats()
  const counts: number = stats.blockedKeys + stats.parkedMessages
  void blocked, parked, counts
}
