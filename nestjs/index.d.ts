// Types of `require('kafka-redis-retry/nestjs')`.
//
// Written against Nest's shapes rather than importing them: @nestjs/common 12 is an ES module,
// whose types a CommonJS TypeScript file (moduleResolution node16/nodenext) may not import
// without a resolution-mode attribute. What is returned is assignable to Nest's own types
// (`DynamicModule`, `NestInterceptor`, method and class decorators).
import { KafkaRetry } from '../index'
import type { KafkaRetryConfig, RetryOptions, RetryOptionsWithHeaders, RetryProducer } from '../index'

export { KafkaRetry }

/** The listener the module starts at bootstrap (`queueListener(producer, dlqName)`) and stops when the application closes. */
export interface KafkaRetryListenerOptions {
  /** What `queueListener` publishes through; `null` or absent: the package's own producer (config `brokers`). A producer of yours must be connected before the application bootstraps. */
  producer?: RetryProducer | null
  /** The dead letter hash. Default: `<keyPrefix>:dead-letters`. */
  dlqName?: string
}

/** The second argument of `KafkaRetryModule.forRoot`. */
export interface KafkaRetryModuleOptions {
  /** Start `queueListener` at bootstrap (closed with the instance). Default: no listener (another process runs it). */
  listener?: KafkaRetryListenerOptions | false
  /** The instance is injectable in every module without importing this one. Default true. */
  global?: boolean
}

/** `KafkaRetryModule.forRootAsync`'s options: a config made from other providers (say, a config service). */
export interface KafkaRetryModuleAsyncOptions {
  /** Modules whose providers `inject` names (Nest's `imports`). */
  imports?: any[]
  /** Tokens of the providers handed to `useFactory` (and to `listener` when a function), in order. */
  inject?: any[]
  /** Returns (or resolves to) the `KafkaRetry` config. */
  useFactory: (...injected: any[]) => KafkaRetryConfig | undefined | Promise<KafkaRetryConfig | undefined>
  /** The listener to start, or a function of the injected values returning it. */
  listener?: KafkaRetryListenerOptions | false | ((...injected: any[]) => KafkaRetryListenerOptions | false | undefined | Promise<KafkaRetryListenerOptions | false | undefined>)
  /** Default true: see `KafkaRetryModuleOptions.global`. */
  global?: boolean
}

/** What `forRoot`/`forRootAsync` return: a Nest `DynamicModule` for `@Module({ imports })`. */
export interface KafkaRetryDynamicModule {
  module: typeof KafkaRetryModule
  global: boolean
  imports: any[]
  providers: any[]
  exports: any[]
}

/**
 * Provides one `KafkaRetry`, injected by its class (`constructor(private retry: KafkaRetry)`,
 * `app.get(KafkaRetry)`), and `KafkaRetryInterceptor`. The instance (and the listener, if the
 * module started one) is closed when the application closes.
 */
export declare class KafkaRetryModule {
  /** `config` is the `KafkaRetry` constructor's (none: environment, then defaults). Throws `ERR_INVALID_ARG` for a bad `options`. */
  static forRoot(config?: KafkaRetryConfig, options?: KafkaRetryModuleOptions): KafkaRetryDynamicModule
  /** The config from `useFactory(...inject)`. Throws `ERR_INVALID_ARG` for bad options. */
  static forRootAsync(options: KafkaRetryModuleAsyncOptions): KafkaRetryDynamicModule
}

/** What a Kafka handler's failure does, given to `@RetryThroughQueue()`. */
export interface RetryThroughQueueOptions {
  /** True: the error cannot be fixed by retrying, the message is dead-lettered at once. Default: every error is retried. */
  isPermanent?: (error: unknown) => boolean
  /** The dead letter hash for permanent errors and payloads that are not JSON. Default: the instance's `dlqName`. */
  dlqName?: string
  /** Retry options merged over those the message's headers carry (e.g. `{ delay: '0.5', maxRetry: 5 }`), and headers of your own. */
  options?: RetryOptions | RetryOptionsWithHeaders
}

/**
 * Nest interceptor: a Kafka handler's error pushes the message onto the schedule (`pushToQueue`
 * on the consumed topic, key and payload, with the retry headers it came with) and the handler
 * completes, so the offset is committed and the partition moves on; `isPermanent` errors and
 * payloads that are not JSON are dead-lettered instead (`pushToDlq`). If that push fails, its
 * error propagates: Nest does not commit and Kafka redelivers. Other contexts pass through.
 * Provided by `KafkaRetryModule`; use it with `@RetryThroughQueue()` or globally
 * (`app.useGlobalInterceptors(app.get(KafkaRetryInterceptor))`).
 */
export declare class KafkaRetryInterceptor {
  constructor(retry: KafkaRetry, options?: RetryThroughQueueOptions)
  intercept(context: any, next: { handle(): any }): any
}

/** On a Kafka handler or its controller: its errors retry through the queue (`KafkaRetryInterceptor` with these options). Throws `ERR_INVALID_ARG` for bad options. */
export declare function RetryThroughQueue(options?: RetryThroughQueueOptions): MethodDecorator & ClassDecorator

/** The token of the module's resolved options (`{ config, listener }`). */
export declare const KAFKA_RETRY_MODULE_OPTIONS: 'KAFKA_RETRY_MODULE_OPTIONS'
