// kafka-redis-retry/prometheus: the metrics of `retry.metrics()` in a prom-client registry.
import type { KafkaRetry } from './index'

/** Something prom-client's `Registry` is (`require('prom-client').register`, `new Registry()`). */
export interface PromRegistry {
  registerMetric(metric: unknown): void
}

/** An instance to report, with the dead letter hash to count (default: the listener's, else `<keyPrefix>:dead-letters`). */
export type MetricsSource = KafkaRetry | { retry: KafkaRetry; dlqName?: string }

/**
 * Registers the `kafka_retry_*` gauges and counters in `registry` (once per registry) and adds
 * `sources` to what they report: each scrape reads `retry.metrics(dlqName)` of every source once
 * and sets the same names, `prefix` labels and values. A closed instance is dropped; one whose
 * Redis fails is left out of that scrape and its error passed to `onError`. Besides, the gauge
 * `kafka_retry_redis_up` per prefix: 1 when metrics() answered, 0 when it failed with
 * `ERR_REDIS_UNAVAILABLE` (the lowest of a prefix's instances).
 * Returns a function that removes these sources again.
 */
export declare function registerMetrics(
  registry: PromRegistry,
  sources: MetricsSource | MetricsSource[],
  options?: { onError?: (error: Error) => void },
): () => void

/** Reads the text `metrics()` returns into samples. */
export declare function parseMetrics(text: string): Array<{ name: string; prefix: string; value: number }>

/** Metric name to its [type, help]. */
export declare const METRICS: Record<string, ['gauge' | 'counter', string]>

/** The gauge registerMetrics adds to what metrics() reports: 1 when Redis answered on the scrape, 0 when it did not. */
export declare const REDIS_UP: 'kafka_retry_redis_up'

/**
 * One scrape of `sources` as Prometheus text (format 0.0.4), read and merged as `registerMetrics`
 * does, without prom-client (what the dashboard's `GET /prometheus` serves). A source whose Redis
 * does not answer reports `kafka_retry_redis_up` 0 for its prefix; its error goes to `onError`.
 */
export declare function scrapeText(
  sources: MetricsSource | MetricsSource[],
  options?: { onError?: (error: Error) => void },
): Promise<string>

/** The Content-Type of `scrapeText`'s text: `text/plain; version=0.0.4; charset=utf-8`. */
export declare const CONTENT_TYPE: string
