// Type-checked by `npm run typecheck`: the producers queueListener accepts, with their own types.
// (@platformatic/kafka's own .d.ts files need lib es2022 and @types/debug under skipLibCheck:
// false, so its Producer is described by the members the package reads.)
interface PlatformaticProducer {
  send(options: { messages: Array<{ topic: string; key?: Buffer; value?: Buffer; headers?: Map<Buffer, Buffer> }>; acks?: number }): Promise<unknown>
  asStream(options?: object): unknown
  beginTransaction(options?: object): Promise<unknown>
}
import type { Producer as KafkajsProducer } from 'kafkajs'
import { KafkaRetry } from '../..'

export async function start(platformatic: PlatformaticProducer, kafkajs: KafkajsProducer): Promise<void> {
  await new KafkaRetry().queueListener(platformatic, 'DEAD_LETTER_QUEUE')
  await new KafkaRetry().queueListener(kafkajs, 'DEAD_LETTER_QUEUE')
  await new KafkaRetry().queueListener({ produce: async (topic: string, key: string, value: string) => void [topic, key, value] })
  // @ts-expect-error a Kafka client is not a producer
  await new KafkaRetry().queueListener({ producer: () => kafkajs, consumer: () => null })
}
