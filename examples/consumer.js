'use strict';
// The seed's consumer: messages with key EVENT_NAME whose value.success is
// false always fail, and each failure is pushed to the KafkaRetry queue with the
// retry headers the message came with.

const { KafkaRetry } = require('..');
const kafka = require('./kafka');
const { EVENT_NAME, GROUP_ID, RETRY_CONFIG } = require('./constants');
const { log, warn, short } = require('./log');

class KafkaConsumer {
  constructor() {
    this.consumer = kafka.consumer({
      groupId: GROUP_ID, // a fresh group per run: no offsets from earlier runs
      sessionTimeout: 6000,
      rebalanceTimeout: 3000,
      heartbeatInterval: 500,
      // long-poll at most 250 ms: retries are seen sooner after they are
      // re-published, and disconnect() does not wait out a 5 s fetch
      maxWaitTimeInMs: 250,
    });
    this.connected = false;
    this.attempts = []; // { attempt, retryCount, msgId }, for server.js' summary
    this.fixed = false; // set by server.js once the dead letter is there: the "bug fix"
    this.processed = []; // { msgId, retryCount } handled after the fix
  }

  async connect() {
    await this.consumer.connect();
    this.connected = true;
  }

  async consumerFromTopic(topic) {
    await this.consumer.subscribe({ topic: topic, fromBeginning: true });
    await this.consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const key = message.key ? message.key.toString() : null;
        let value;
        try {
          value = JSON.parse(message.value.toString());
        } catch {
          warn(`skipping a message that is not JSON at ${topic}[${partition}]@${message.offset}`);
          return;
        }
        const headers = message.headers;

        if (key == EVENT_NAME) {
          if (this.fixed && !value.poison) {
            // After the "fix" (see server.js) the same message goes through; a `poison`
            // message (one the fix does not cover) still fails.
            const retryCount = headers && headers.retryCount ? headers.retryCount.toString() : 'absent';
            this.processed.push({ msgId: value.msgId, retryCount });
            log('processed', `msgId=${short(value.msgId)}… retryCount header '${retryCount}': handled successfully`);
            return;
          }
          if (!value.success) {
            // { delay, maxRetry, retryCount } as strings; defaults for missing headers
            const options = KafkaRetry.headers(headers);
            const attempt = Number(options.retryCount) + 1;
            this.attempts.push({ attempt, retryCount: options.retryCount, msgId: value.msgId });
            const raw = headers && headers.retryCount ? `'${headers.retryCount}'` : 'absent';
            let due = '';
            if (headers && headers.executeAt) {
              due = `, ${Date.now() - Number(headers.executeAt.toString())} ms after executeAt`;
            }
            log(
              'consumed',
              `attempt ${attempt} (retryCount header ${raw}) ${topic}@${message.offset} ` +
                `msgId=${short(value.msgId)}…${due}`,
            );
            try {
              throw new Error('Action failed');
            } catch (error) {
              log('failed', `attempt ${attempt}: ${error.message}`);
              // Awaited: the offset is committed only after the retry is safely
              // stored in Redis. If the push rejects (Redis down), eachMessage
              // throws and kafkajs redelivers the message instead of losing it;
              // a redelivered push of the same msgId + retryCount is stored once.
              try {
                await new KafkaRetry(RETRY_CONFIG).pushToQueue(
                  topic,
                  {
                    event: key,
                    value: JSON.stringify(value),
                  },
                  // error: kept on the entry and in the dead letter, so it says why it died.
                  { ...options, error },
                );
              } catch (pushError) {
                warn(`pushToQueue failed (${pushError.code || 'no code'}): ${pushError.message}`);
                throw pushError;
              }
              const next = attempt; // the retryCount the listener will publish
              const inMs = Math.round(Number(options.delay) * 60000);
              if (next > Number(options.maxRetry)) {
                log(
                  'pushed',
                  `retryCount ${next} > maxRetry ${options.maxRetry}: retries exhausted, ` +
                    `the listener dead-letters it in ${inMs} ms`,
                );
              } else {
                log(
                  'pushed',
                  `for retry ${next}/${options.maxRetry}, due in ${inMs} ms (delay '${options.delay}' min)`,
                );
              }
            }
          }
        }
      },
    });
  }

  async disconnect() {
    if (!this.connected) return;
    this.connected = false;
    await this.consumer.disconnect();
  }
}

module.exports = new KafkaConsumer();
