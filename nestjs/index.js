// kafka-redis-retry/nestjs: the package in a NestJS application.
//
//   @Module({ imports: [KafkaRetryModule.forRoot({ redisUrl }, { listener: { producer: null } })] })
//   class AppModule {}
//
//   @Controller() class Orders {
//     @EventPattern('orders') @RetryThroughQueue({ isPermanent: (e) => e instanceof TypeError })
//     async handle(data) { ... }
//   }
//
// The module provides one `KafkaRetry` with the class itself as the token, starts the listener
// when asked (`listener`), and closes both when the application closes. `KafkaRetryInterceptor`
// (or `@RetryThroughQueue()`, which applies it) turns a Kafka handler's error into a push onto
// the schedule, so Nest commits the offset and the partition moves on.
//
// Plain JavaScript with no build step: Nest's decorators are applied as functions. The Nest
// packages are optional peer dependencies, required only by this file, so a service without
// Nest loads none of them (the package's main entry never requires this file).
'use strict'

const { Module, Injectable, Inject, UseInterceptors, SetMetadata, applyDecorators } = requirePeer('@nestjs/common')
const { catchError, from } = requirePeer('rxjs')
const { KafkaRetry } = require('../lib/index.js')

/** A peer dependency, with what to install when it is missing (Node's error says only which file wanted it). */
function requirePeer(name) {
  try {
    return require(name)
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).includes(`'${name}'`)) {
      error.message = `kafka-redis-retry/nestjs needs ${name}, an optional peer dependency: npm install @nestjs/common @nestjs/core @nestjs/microservices rxjs reflect-metadata\n${error.message}`
    }
    throw error
  }
}

/** The token of the module's resolved options (`{ config, listener }`). */
const KAFKA_RETRY_MODULE_OPTIONS = 'KAFKA_RETRY_MODULE_OPTIONS'
/** The metadata key `@RetryThroughQueue(options)` stores its options under. */
const RETRY_THROUGH_QUEUE = 'kafka-redis-retry:retry-through-queue'

/** An `Error` with the package's stable code for bad input. */
function invalidArg(message) {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG' })
}

const isPlainObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value)

/** Checks `listener` (absent, `false`, or `{ producer?, dlqName? }`) when the module is configured, not at bootstrap. */
function checkListener(listener, where) {
  if (listener === undefined || listener === null || listener === false) return
  if (!isPlainObject(listener)) {
    throw invalidArg(`${where}: listener must be an object { producer?, dlqName? } or false, got ${describe(listener)}`)
  }
  if (listener.dlqName !== undefined && (typeof listener.dlqName !== 'string' || listener.dlqName === '')) {
    throw invalidArg(`${where}: listener.dlqName must be a non-empty string, got ${describe(listener.dlqName)}`)
  }
}

function describe(value) {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (Array.isArray(value)) return 'an array'
  return String(value)
}

/** Checks the options of `@RetryThroughQueue()` / `new KafkaRetryInterceptor(retry, options)`. */
function checkRetryOptions(options, where) {
  if (options === undefined) return {}
  if (!isPlainObject(options)) throw invalidArg(`${where}: options must be an object, got ${describe(options)}`)
  if (options.isPermanent !== undefined && typeof options.isPermanent !== 'function') {
    throw invalidArg(`${where}: isPermanent must be a function (error) => boolean, got ${describe(options.isPermanent)}`)
  }
  if (options.dlqName !== undefined && (typeof options.dlqName !== 'string' || options.dlqName === '')) {
    throw invalidArg(`${where}: dlqName must be a non-empty string, got ${describe(options.dlqName)}`)
  }
  if (options.options !== undefined && !isPlainObject(options.options)) {
    throw invalidArg(`${where}: options.options must be an object (retry options such as { delay, maxRetry }), got ${describe(options.options)}`)
  }
  return options
}

/**
 * Starts the listener at bootstrap (when the module was given `listener`) and closes the
 * instance, and with it the listener, when the application closes.
 */
class KafkaRetryLifecycle {
  constructor(retry, options) {
    this.retry = retry
    this.listener = options.listener
  }

  async onApplicationBootstrap() {
    const { listener } = this
    if (!listener) return
    const args = [listener.producer ?? null]
    if (listener.dlqName !== undefined) args.push(listener.dlqName)
    await this.retry.queueListener(...args)
  }

  // onApplicationShutdown runs after every provider's onModuleDestroy and
  // beforeApplicationShutdown, so those may still push while they shut down.
  async onApplicationShutdown() {
    await this.retry.close()
  }
}
Injectable()(KafkaRetryLifecycle)
Inject(KafkaRetry)(KafkaRetryLifecycle, undefined, 0)
Inject(KAFKA_RETRY_MODULE_OPTIONS)(KafkaRetryLifecycle, undefined, 1)

/** The `KafkaContext` of a Kafka transport handler, else null (HTTP, other transports). */
function kafkaContextOf(context) {
  if (context.getType() !== 'rpc') return null
  const rpc = context.switchToRpc().getContext()
  // Duck-typed rather than `instanceof KafkaContext`, so using the module does not require
  // @nestjs/microservices; no other transport's context has all three.
  if (rpc && typeof rpc.getTopic === 'function' && typeof rpc.getPartition === 'function' && typeof rpc.getMessage === 'function') {
    return rpc
  }
  return null
}

/**
 * Nest's Kafka parser decodes header values to strings and parses those that look like JSON;
 * `KafkaRetry.headers()` takes strings and Buffers, so a parsed one goes back to its text.
 */
function rawHeaders(headers) {
  const out = {}
  for (const [name, value] of Object.entries(headers || {})) {
    if (value === null || value === undefined) continue
    out[name] = typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value)
  }
  return out
}

/** The consumed payload as `pushToQueue` takes it: Nest's parser gives an object, text or a Buffer. */
function payloadOf(value) {
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  if (value === null || value === undefined) return 'null'
  return value
}

/** The consumed key as text (the retry's `event`): Nest's parser gives text, a Buffer, or an object for a key that looked like JSON. */
function keyOf(key) {
  if (key === null || key === undefined) return ''
  if (Buffer.isBuffer(key)) return key.toString('utf8')
  return typeof key === 'string' ? key : JSON.stringify(key)
}

function errorRecord(error) {
  if (error instanceof Error) return { message: error.message, name: error.name }
  return { message: String(error), name: 'Error' }
}

/**
 * Makes a Kafka transport handler (`@EventPattern`) retry through the queue: when the handler
 * fails, the message is pushed onto the schedule (or, for a permanent error, dead-lettered) and
 * the handler completes, so Nest commits the offset and the partition moves on. If the push
 * itself fails, the handler's error is replaced by the push's and propagates, so the offset is
 * not committed and Kafka redelivers the message: nothing is lost. Other contexts (HTTP, other
 * transports) pass through untouched.
 */
class KafkaRetryInterceptor {
  constructor(retry, options) {
    if (!(retry instanceof KafkaRetry)) {
      throw invalidArg('KafkaRetryInterceptor: the first argument must be a KafkaRetry instance (import KafkaRetryModule, or pass one)')
    }
    this.retry = retry
    this.defaults = checkRetryOptions(options, 'KafkaRetryInterceptor')
  }

  intercept(context, next) {
    const kafka = kafkaContextOf(context)
    if (!kafka) return next.handle()
    const settings = Reflect.getMetadata(RETRY_THROUGH_QUEUE, context.getHandler()) || Reflect.getMetadata(RETRY_THROUGH_QUEUE, context.getClass()) || this.defaults
    // One value, not EMPTY: Nest's Kafka server awaits the handler's stream with lastValueFrom,
    // which rejects a stream that completes without a value.
    return next.handle().pipe(catchError((error) => from(this.retryThroughQueue(kafka, error, settings))))
  }

  async retryThroughQueue(kafka, error, settings) {
    const message = kafka.getMessage()
    const topic = kafka.getTopic()
    const event = keyOf(message.key)
    const value = payloadOf(message.value)
    const options = { ...KafkaRetry.headers(rawHeaders(message.headers)), ...settings.options, error }
    if (settings.isPermanent && settings.isPermanent(error)) {
      await this.deadLetter(topic, event, value, options, error, settings)
      return undefined
    }
    try {
      await this.retry.pushToQueue(topic, { event, value }, options)
    } catch (pushError) {
      // A payload that is not JSON can never be pushed: retrying it would block the partition
      // forever, so it is dead-lettered (if that fails too, that error propagates).
      if (pushError && pushError.code === 'ERR_INVALID_ARG') {
        await this.deadLetter(topic, event, value, options, error, settings)
        return undefined
      }
      throw pushError
    }
    return undefined
  }

  async deadLetter(topic, event, value, options, error, settings) {
    // The error goes on the record as { message, name }, not among the options.
    const kept = { ...options }
    delete kept.error
    let parsed = value
    if (typeof value === 'string') {
      try {
        parsed = JSON.parse(value)
      } catch {
        parsed = value
      }
    }
    const entry = { topic, event, value: parsed, options: rawHeaders(kept), error: errorRecord(error), diedAt: Date.now() }
    if (kept.firstFailedAt !== undefined) entry.firstFailedAt = Number(kept.firstFailedAt)
    await this.retry.pushToDlq(settings.dlqName || this.retry.dlqName, entry)
  }
}
Injectable()(KafkaRetryInterceptor)
// Only the instance is injected: the module's interceptor (and @RetryThroughQueue's) takes no
// defaults, its settings come from the handler's metadata.
Inject(KafkaRetry)(KafkaRetryInterceptor, undefined, 0)

/**
 * `@RetryThroughQueue(options?)` on a Kafka handler (or its controller): the handler's errors
 * retry through the queue (see `KafkaRetryInterceptor`). `options`: `isPermanent(error)` (true:
 * dead-letter at once), `dlqName` (default: the instance's `dlqName`), `options` (retry options
 * merged over the message's headers, e.g. `{ delay: '0.5', maxRetry: 5 }`).
 */
function RetryThroughQueue(options) {
  const settings = checkRetryOptions(options, 'RetryThroughQueue')
  return applyDecorators(SetMetadata(RETRY_THROUGH_QUEUE, settings), UseInterceptors(KafkaRetryInterceptor))
}

/** The module: `forRoot(config, options)` or `forRootAsync({ imports, inject, useFactory, listener })`. */
class KafkaRetryModule {
  /**
   * `config` is the `KafkaRetry` constructor's; `options.listener` (`{ producer?, dlqName? }`)
   * starts `queueListener` at bootstrap; `options.global` (default true) makes the instance
   * injectable in every module.
   */
  static forRoot(config, options = {}) {
    if (config !== undefined && !isPlainObject(config)) throw invalidArg(`KafkaRetryModule.forRoot: config must be an object, got ${describe(config)}`)
    if (!isPlainObject(options)) throw invalidArg(`KafkaRetryModule.forRoot: options must be an object, got ${describe(options)}`)
    checkListener(options.listener, 'KafkaRetryModule.forRoot')
    return dynamicModule(options, [], [{ provide: KAFKA_RETRY_MODULE_OPTIONS, useValue: { config, listener: options.listener } }])
  }

  /**
   * `useFactory(...injected)` returns (or resolves to) the config; `inject` lists its
   * dependencies from `imports`; `listener` is `{ producer?, dlqName? }` or a function of the
   * same injected values returning it (e.g. a producer another provider connects).
   */
  static forRootAsync(options) {
    if (!isPlainObject(options)) throw invalidArg(`KafkaRetryModule.forRootAsync: options must be an object, got ${describe(options)}`)
    const { useFactory, inject = [], imports = [], listener } = options
    if (typeof useFactory !== 'function') throw invalidArg(`KafkaRetryModule.forRootAsync: useFactory must be a function, got ${describe(useFactory)}`)
    if (!Array.isArray(inject)) throw invalidArg(`KafkaRetryModule.forRootAsync: inject must be an array, got ${describe(inject)}`)
    if (!Array.isArray(imports)) throw invalidArg(`KafkaRetryModule.forRootAsync: imports must be an array, got ${describe(imports)}`)
    if (typeof listener !== 'function') checkListener(listener, 'KafkaRetryModule.forRootAsync')
    const provider = {
      provide: KAFKA_RETRY_MODULE_OPTIONS,
      inject,
      useFactory: async (...injected) => {
        const config = await useFactory(...injected)
        if (config !== undefined && config !== null && !isPlainObject(config)) {
          throw invalidArg(`KafkaRetryModule.forRootAsync: useFactory must return a config object, got ${describe(config)}`)
        }
        const resolved = typeof listener === 'function' ? await listener(...injected) : listener
        checkListener(resolved, 'KafkaRetryModule.forRootAsync')
        return { config: config ?? undefined, listener: resolved }
      },
    }
    return dynamicModule(options, imports, [provider])
  }
}
Module({})(KafkaRetryModule)

function dynamicModule(options, imports, optionProviders) {
  if (options.global !== undefined && typeof options.global !== 'boolean') {
    throw invalidArg(`KafkaRetryModule: global must be a boolean, got ${describe(options.global)}`)
  }
  return {
    module: KafkaRetryModule,
    global: options.global !== false,
    imports,
    providers: [
      ...optionProviders,
      { provide: KafkaRetry, inject: [KAFKA_RETRY_MODULE_OPTIONS], useFactory: ({ config }) => new KafkaRetry(config) },
      KafkaRetryLifecycle,
      KafkaRetryInterceptor,
    ],
    exports: [KafkaRetry, KafkaRetryInterceptor],
  }
}

exports.KafkaRetry = KafkaRetry
exports.KafkaRetryModule = KafkaRetryModule
exports.KafkaRetryInterceptor = KafkaRetryInterceptor
exports.RetryThroughQueue = RetryThroughQueue
exports.KAFKA_RETRY_MODULE_OPTIONS = KAFKA_RETRY_MODULE_OPTIONS
