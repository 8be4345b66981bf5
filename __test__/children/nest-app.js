// A Nest application using kafka-redis-retry/nestjs, for __test__/nestjs/nestjs.test.js. A child
// process because Nest 12 is an ES module, which Node's require() loads and jest's does not.
// Reports to the test over IPC (`process.send`); `NEST_MODE` says which application:
//
//   flow         a Kafka microservice (Transport.KAFKA) whose @EventPattern handler fails its
//                first NEST_FAIL_TIMES attempts per order and throws a permanent error for
//                `kind: 'permanent'`, with @RetryThroughQueue and the module's listener
//   global       the same handler without the decorator, the interceptor made with its options
//                and installed with app.useGlobalInterceptors
//   unreachable  the same handler always failing, with Redis unreachable: the push fails
//   async        forRootAsync with a config provider, in an application context; bad options
//
// On { type: 'close' } the application closes and the child reports what a call on the
// instance does afterwards, then exits.
'use strict'

require('reflect-metadata')
const { Module, Controller, Inject } = require('@nestjs/common')
const { NestFactory } = require('@nestjs/core')
const { Transport, EventPattern, Payload, Ctx } = require('@nestjs/microservices')
const { KafkaRetry, KafkaRetryModule, KafkaRetryInterceptor, RetryThroughQueue } = require('../../nestjs')

const MODE = process.env.NEST_MODE
const TOPIC = process.env.NEST_TOPIC
const FAIL_TIMES = Number(process.env.NEST_FAIL_TIMES || 0)
const BROKERS = process.env.KAFKA_BROKERS.split(',')
const report = (message) => process.send(message)

/** Applies a method decorator to a class's method, as TypeScript's `@Decorator()` would. */
function decorate(target, method, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(target.prototype, method)
  for (const decorator of decorators.reverse()) decorator(target.prototype, method, descriptor)
}

const attempts = new Map()

async function handleOrder(data, context) {
  // A payload that is not JSON reaches the handler as text.
  const order = typeof data === 'object' && data !== null ? data : { id: String(data) }
  const message = context.getMessage()
  const count = (attempts.get(order.id) || 0) + 1
  attempts.set(order.id, count)
  report({ type: 'attempt', id: order.id, offset: message.offset, retryCount: KafkaRetry.headers(message.headers).retryCount })
  if (order.kind === 'permanent') throw Object.assign(new Error(`order ${order.id} is malformed`), { permanent: true })
  if (MODE === 'unreachable' || count <= FAIL_TIMES) throw new Error(`attempt ${count} of ${order.id} failed`)
  report({ type: 'handled', id: order.id, key: message.key, attempts: count })
}

const RETRY_OPTIONS = { isPermanent: (error) => error.permanent === true, dlqName: process.env.NEST_DLQ, options: { delay: '0.01' } }

/** The controller, its handler decorated with `decorators` besides @EventPattern(TOPIC). */
function ordersController(...decorators) {
  class OrdersController {
    constructor(retry) {
      this.retry = retry
    }

    handle(order, context) {
      return handleOrder(order, context)
    }
  }
  Controller()(OrdersController)
  Inject(KafkaRetry)(OrdersController, undefined, 0)
  Payload()(OrdersController.prototype, 'handle', 0)
  Ctx()(OrdersController.prototype, 'handle', 1)
  decorate(OrdersController, 'handle', EventPattern(TOPIC), ...decorators)
  return OrdersController
}

async function closeAndProbe(app, retry) {
  await app.close()
  try {
    await retry.pushToQueue(TOPIC, { event: 'after-close', value: '{}' }, KafkaRetry.headers())
    report({ type: 'closed', code: null })
  } catch (error) {
    report({ type: 'closed', code: error.code })
  }
}

async function microservice() {
  const config = MODE === 'unreachable'
    ? { redisUrl: 'redis://127.0.0.1:1', redisTimeoutMs: 500, keyPrefix: process.env.NEST_PREFIX }
    : { redisUrl: process.env.REDIS_URL, brokers: BROKERS, keyPrefix: process.env.NEST_PREFIX }
  const listener = MODE === 'unreachable' ? false : { producer: null, dlqName: process.env.NEST_DLQ }

  const OrdersController = MODE === 'global' ? ordersController() : ordersController(RetryThroughQueue(RETRY_OPTIONS))
  class AppModule {}
  Module({ imports: [KafkaRetryModule.forRoot(config, { listener })], controllers: [OrdersController] })(AppModule)

  // As Nest's Kafka documentation configures it; fromBeginning because the test's topic is new.
  const app = await NestFactory.createMicroservice(AppModule, {
    transport: Transport.KAFKA,
    options: {
      client: { clientId: `nest-${process.pid}`, brokers: BROKERS },
      consumer: { groupId: process.env.NEST_GROUP },
      subscribe: { fromBeginning: true },
    },
    // The unreachable case fails on purpose, on every redelivery.
    logger: MODE === 'unreachable' ? false : ['error'],
  })
  if (MODE === 'global') app.useGlobalInterceptors(new KafkaRetryInterceptor(app.get(KafkaRetry), RETRY_OPTIONS))
  await app.listen()
  const retry = app.get(KafkaRetry)
  report({
    type: 'ready',
    isKafkaRetry: retry instanceof KafkaRetry,
    sameInControllers: app.get(OrdersController).retry === retry,
    keyPrefix: retry.keyPrefix,
  })
  process.on('message', (message) => {
    if (message.type === 'close') closeAndProbe(app, retry).then(() => process.exit(0))
  })
}

async function asyncModule() {
  const invalid = []
  for (const call of [
    () => KafkaRetryModule.forRoot('redis://x'),
    () => KafkaRetryModule.forRoot({}, { listener: 'yes' }),
    () => KafkaRetryModule.forRootAsync({ useFactory: 'config' }),
    () => RetryThroughQueue({ isPermanent: true }),
  ]) {
    try {
      call()
      invalid.push(null)
    } catch (error) {
      invalid.push({ code: error.code, message: error.message })
    }
  }

  class Settings {
    constructor() {
      this.prefix = process.env.NEST_PREFIX
    }
  }
  class SettingsModule {}
  Module({ providers: [Settings], exports: [Settings] })(SettingsModule)

  class AppModule {}
  Module({
    imports: [
      KafkaRetryModule.forRootAsync({
        imports: [SettingsModule],
        inject: [Settings],
        useFactory: async (settings) => ({ redisUrl: process.env.REDIS_URL, keyPrefix: settings.prefix }),
      }),
    ],
  })(AppModule)
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error'] })
  const retry = app.get(KafkaRetry)
  await retry.pushToQueue(TOPIC, { event: 'e', value: '{"msgId":"async-1"}' }, { ...KafkaRetry.headers(), delay: '60' })
  report({ type: 'ready', keyPrefix: retry.keyPrefix, scheduled: (await retry.stats()).scheduled, invalid })
  await closeAndProbe(app, retry)
  process.exit(0)
}

;(MODE === 'async' ? asyncModule() : microservice()).catch((error) => {
  report({ type: 'error', message: String(error && error.stack) })
  process.exit(1)
})
