'use strict';
// Names and settings of one run of the example.
//
// Every run gets its own topic, consumer group, Redis key prefix and dead
// letter hash (a timestamp suffix), so a rerun never picks up messages, offsets
// or schedule entries an earlier (maybe interrupted) run left behind.

const RUN_ID = process.env.DEMO_RUN_ID || String(Date.now());

// KAFKA_BROKERS / REDIS_URL are what `scripts/services.sh env` prints; the
// defaults match the addon's own defaults.
const KAFKA_BROKERS = (process.env.KAFKA_BROKERS || 'localhost:9092')
  .split(',')
  .map((b) => b.trim().replace(/^[A-Za-z_]+:\/\//, '')) // PLAINTEXT://host:port -> host:port
  .filter(Boolean);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

module.exports = {
  RUN_ID,
  KAFKA_BROKERS,
  REDIS_URL,
  TOPIC: `kafka-redis-retry-demo-${RUN_ID}`,
  GROUP_ID: `kafka-redis-retry-demo-group-${RUN_ID}`,
  DEAD_LETTER_QUEUE: `kafka-redis-retry-demo-dlq-${RUN_ID}`,
  EVENT_NAME: 'KafkaRetry',

  // Config of every KafkaRetry of this example. The instance that pushes (in the
  // consumer) and the one that listens (in server.js) must use the same
  // keyPrefix, or the listener never sees what was pushed. redisUrl and brokers
  // are left out: the addon reads REDIS_URL / KAFKA_BROKERS itself.
  RETRY_CONFIG: { keyPrefix: `kafka-redis-retry-demo-${RUN_ID}` },

  // Headers of the first produce. KafkaRetry.headers() defaults to
  // { delay: '2', maxRetry: '3', retryCount: '0' }, and delay is in MINUTES, so
  // with the seed's bare produce(topic, key, value) each retry would wait two
  // minutes. Decimals are allowed: '0.02' min = 1.2 s, which makes the whole
  // flow (1 attempt + 3 retries + dead letter) take a few seconds. The listener
  // copies delay and maxRetry onto every re-published message.
  RETRY_HEADERS: { delay: '0.02', maxRetry: '3' },

  // Give up (exit 1) if the dead letter has not shown up this long after the
  // first produce.
  DEAD_LETTER_TIMEOUT_MS: Number(process.env.DEMO_TIMEOUT_MS) || 60000,
};
