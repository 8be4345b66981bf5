'use strict';
// The seed's server.js, end to end: a consumer that always fails one event,
// KafkaRetry retrying it with a delay, and the dead letter queue at the end.
//
//   npm run demo              (starts Redis + a Kafka broker, then runs this)
//   node examples/server.js   (with REDIS_URL / KAFKA_BROKERS pointing at yours)
//
// Exits 0 once the message has been tried 1 + maxRetry times and its dead
// letter is read back from the Redis hash DEAD_LETTER_QUEUE; exits 1 if that
// does not happen within DEAD_LETTER_TIMEOUT_MS.

const { randomUUID } = require('crypto');
const { KafkaRetry } = require('..'); // the built addon at the repo root
const KafkaProducer = require('./producer');
const KafkaConsumer = require('./consumer');
const { MiniRedis } = require('./redis');
const {
  TOPIC,
  DEAD_LETTER_QUEUE,
  EVENT_NAME,
  RETRY_CONFIG,
  RETRY_HEADERS,
  DEAD_LETTER_TIMEOUT_MS,
  REDIS_URL,
  KAFKA_BROKERS,
} = require('./constants');
const { log, warn, short } = require('./log');

let retry = null; // the KafkaRetry running queueListener
let redis = null; // reads the dead letter hash
let stopping = null;

// Graceful shutdown, in dependency order: first stop the listener (close()
// lets its current batch finish, so a claimed retry is either published or
// put back on the schedule, never lost), then the consumer, then the producer
// the listener was publishing through. Safe to call more than once.
function shutdown(code, why) {
  if (!stopping) {
    stopping = (async () => {
      log('shutdown', why);
      const hang = setTimeout(() => {
        console.error('shutdown did not finish within 15 s; exiting anyway');
        process.exit(1);
      }, 15000);
      hang.unref();
      const step = async (what, fn) => {
        try {
          await fn();
        } catch (err) {
          warn(`${what} failed: ${err.message}`);
          if (code === 0) code = 1;
        }
      };
      if (retry) await step('KafkaRetry close()', () => retry.close());
      await step('consumer disconnect', () => KafkaConsumer.disconnect());
      await step('producer disconnect', () => KafkaProducer.disconnect());
      if (redis) await step('redis quit', () => redis.quit());
      log('shutdown', `done, exit ${code}`);
      process.exit(code);
    })();
  }
  return stopping;
}

// The pattern for a real service: on SIGTERM (docker stop, kubernetes) or
// Ctrl-C, close the listener before the Kafka clients, e.g.
//   process.on('SIGTERM', async () => { await retry.close(); await consumer.disconnect(); ... })
process.on('SIGTERM', () => shutdown(143, 'SIGTERM received'));
process.on('SIGINT', () => shutdown(130, 'SIGINT received'));

// Polls the Redis hash until a dead letter of our message shows up.
async function waitForDeadLetter(hash, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!stopping && Date.now() < deadline) {
    const fields = await redis.hgetall(hash);
    const entries = Object.entries(fields);
    if (entries.length) return entries;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}

const init = async () => {
  log('start', `brokers=${KAFKA_BROKERS.join(',')} redis=${REDIS_URL}`);
  log('start', `topic=${TOPIC} dead letter hash=${DEAD_LETTER_QUEUE} keyPrefix=${RETRY_CONFIG.keyPrefix}`);
  redis = await MiniRedis.connect(REDIS_URL);

  await KafkaProducer.connect();
  await KafkaProducer.createTopic(TOPIC);
  await KafkaConsumer.connect();
  await KafkaConsumer.consumerFromTopic(TOPIC);
  retry = new KafkaRetry(RETRY_CONFIG);
  await retry.queueListener(KafkaProducer, DEAD_LETTER_QUEUE);
  log('listening', `KafkaRetry queueListener started, dead letters go to hash ${DEAD_LETTER_QUEUE}`);

  // Add msgId to handle deduplication of messages while picking from the redis queue
  const examplePayload = JSON.stringify({ msgId: randomUUID(), success: false });
  // RETRY_HEADERS = { delay: '0.02', maxRetry: '3' }: retry every 1.2 s instead
  // of the default 2 minutes (see constants.js).
  await KafkaProducer.produce(TOPIC, EVENT_NAME, examplePayload, RETRY_HEADERS);

  const found = await waitForDeadLetter(DEAD_LETTER_QUEUE, DEAD_LETTER_TIMEOUT_MS);
  if (stopping) return;
  if (!found) {
    console.error(
      `no dead letter in Redis hash ${DEAD_LETTER_QUEUE} after ${DEAD_LETTER_TIMEOUT_MS / 1000} s ` +
        `(${KafkaConsumer.attempts.length} attempt(s) consumed)`,
    );
    return shutdown(1, 'timed out waiting for the dead letter');
  }

  for (const [field, text] of found) {
    log('dead letter', `HGET ${DEAD_LETTER_QUEUE} ${field}:`);
    let entry;
    try {
      entry = JSON.parse(text); // its value is the payload as an object, as the original wrote it
    } catch {
      entry = entry || text;
    }
    console.log(JSON.stringify(entry, null, 2).replace(/^/gm, '             '));
  }

  const maxRetry = Number(RETRY_HEADERS.maxRetry);
  const attempts = KafkaConsumer.attempts;
  const expected = Array.from({ length: maxRetry + 1 }, (_, i) => i + 1);
  const seen = attempts.map((a) => a.attempt);
  if (seen.join() !== expected.join()) {
    warn(`expected attempts ${expected.join(', ')}, consumed ${seen.join(', ') || 'none'}`);
  }
  log(
    'summary',
    `${attempts.length} attempts (1 + ${maxRetry} retries, msgIds ` +
      `${attempts.map((a) => short(a.msgId)).join(' ')}), then ${found.length} dead letter(s)`,
  );

  // An operator fixes the bug and requeues the dead letter from the command line.
  KafkaConsumer.fixed = true;
  log('fix', 'the consumer is fixed; requeue the dead letter with the CLI:');
  const cli = (...args) => {
    const argv = [require.resolve('../bin/kafka-redis-retry.js'), '--redis', REDIS_URL, '--prefix', RETRY_CONFIG.keyPrefix, ...args];
    console.log(`             $ kafka-redis-retry ${args.join(' ')}`);
    const out = require('child_process').spawnSync(process.execPath, argv, { encoding: 'utf8' });
    console.log((out.stdout + out.stderr).trimEnd().replace(/^/gm, '             '));
    return out.status;
  };
  // Find the dead letters of this topic, hold the topic while deciding, count, then replay them.
  cli('dlq', 'list', DEAD_LETTER_QUEUE, '--topic', TOPIC);
  cli('pause', '--topic', TOPIC, '--for', '10m');
  cli('stats', '--dlq', DEAD_LETTER_QUEUE);
  cli('dlq', 'requeue', DEAD_LETTER_QUEUE, '--topic', TOPIC, '--dry-run');
  cli('resume', '--topic', TOPIC);
  if (cli('dlq', 'requeue', DEAD_LETTER_QUEUE, '--topic', TOPIC, '--rate', '100') !== 0) return shutdown(1, 'requeue failed');
  const deadline = Date.now() + 20000;
  while (!KafkaConsumer.processed.length && Date.now() < deadline && !stopping) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (!KafkaConsumer.processed.length) return shutdown(1, 'the requeued message did not arrive');
  cli('stats', '--dlq', DEAD_LETTER_QUEUE);
  // What happened, minute by minute: pushed, published, failed publishes, dead-lettered.
  cli('history', '--minutes', '5');
  log('summary', 'the requeued message was consumed again with retryCount 0 and handled; the dead letter queue is empty');

  // A message the fix does not cover dies too, and stays: the dashboard shows it.
  await KafkaProducer.produce(TOPIC, EVENT_NAME, JSON.stringify({ msgId: randomUUID(), success: false, poison: true }), RETRY_HEADERS);
  const poisoned = await waitForDeadLetter(DEAD_LETTER_QUEUE, DEAD_LETTER_TIMEOUT_MS);
  if (stopping) return;
  if (!poisoned) return shutdown(1, 'timed out waiting for the second dead letter');
  const [field] = poisoned[0];
  log('dashboard', 'a second message, one the fix does not cover, is a dead letter now. See it in the browser:');
  console.log(`             $ npx kafka-redis-retry dashboard --prefix ${RETRY_CONFIG.keyPrefix} --dlq ${DEAD_LETTER_QUEUE}`);
  console.log(`             then open http://127.0.0.1:3000/dlq/${encodeURIComponent(DEAD_LETTER_QUEUE)}/item/${encodeURIComponent(field)}`);
  return shutdown(0, 'finished');
};

init().catch((err) => {
  console.error(err);
  return shutdown(1, `failed: ${err.message}`);
});
