// Type-checked by `npm run typecheck`: kafka-redis-retry/nestjs against Nest's own types (the
// module in @Module's imports, the interceptor where Nest takes one, the decorator on a handler).
import 'reflect-metadata'
import { Module, Injectable, UseInterceptors, type DynamicModule, type NestInterceptor, type INestApplicationContext } from '@nestjs/common'
import { EventPattern } from '@nestjs/microservices'
import { KafkaRetry, KafkaRetryModule, KafkaRetryInterceptor, RetryThroughQueue, type RetryThroughQueueOptions } from '../../nestjs'

const root: DynamicModule = KafkaRetryModule.forRoot({ redisUrl: 'redis://127.0.0.1:6379', keyPrefix: 'orders' }, { listener: { producer: null, dlqName: 'DEAD_LETTER_QUEUE' } })
const asyncRoot: DynamicModule = KafkaRetryModule.forRootAsync({
  inject: ['CONFIG'],
  useFactory: async (config: { redis: string }) => ({ redisUrl: config.redis }),
  listener: () => ({ dlqName: 'DEAD_LETTER_QUEUE' }),
  global: false,
})
// @ts-expect-error keyPrefix is a string
KafkaRetryModule.forRoot({ keyPrefix: 1 })
// @ts-expect-error useFactory is required
KafkaRetryModule.forRootAsync({ inject: [] })

const options: RetryThroughQueueOptions = { isPermanent: (error) => error instanceof TypeError, options: { delay: '0.5', maxRetry: 5, tenant: 'acme' } }
// @ts-expect-error isPermanent is a function
RetryThroughQueue({ isPermanent: true })

@Injectable()
class Orders {
  constructor(private readonly retry: KafkaRetry) {}

  @EventPattern('orders')
  @RetryThroughQueue(options)
  async handle(order: { id: string }): Promise<void> {
    await this.retry.pushToQueue('orders', { event: order.id, value: order }, KafkaRetry.headers())
  }
}

@UseInterceptors(KafkaRetryInterceptor)
@RetryThroughQueue()
class Payments {}

@Module({ imports: [root, asyncRoot], providers: [Orders, Payments] })
class AppModule {}

function globally(app: INestApplicationContext & { useGlobalInterceptors(...interceptors: NestInterceptor[]): unknown }): KafkaRetry {
  app.useGlobalInterceptors(app.get(KafkaRetryInterceptor))
  return app.get(KafkaRetry)
}
void AppModule
void globally
