'use strict';
// The seed's producer wrapper: one shared instance with connect() and
// produce(topic, key, value, headers = {}).
//
// KafkaRetry's listener publishes through it too: queueListener(KafkaProducer,
// ...) calls KafkaProducer.produce(topic, key, value, headers) for every due
// retry, with headers { delay, maxRetry, retryCount, executeAt } (strings).

const { Partitioners } = require('kafkajs');
const kafka = require('./kafka');
const { log, short } = require('./log');

class KafkaProducer {
  constructor() {
    this.producer = kafka.producer({
      // the explicit partitioner also silences kafkajs' v2 partitioner notice
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
    });
    this.connected = false;
  }

  async connect() {
    await this.producer.connect();
    this.connected = true;
  }

  // Topics are created up front (one partition): not every broker auto-creates
  // them, and a consumer subscribing to a missing topic fails.
  async createTopic(topic) {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const created = await admin.createTopics({
        topics: [{ topic, numPartitions: 1 }],
        waitForLeaders: true,
      });
      log('topic', `${topic} ${created ? 'created' : 'already exists'}`);
    } finally {
      await admin.disconnect();
    }
  }

  async produce(topic, key, value, headers = {}) {
    await this.producer.send({
      topic: topic,
      messages: [{ key: key, value: value, headers: headers }],
    });
    describe(topic, key, value, headers);
  }

  async disconnect() {
    if (!this.connected) return;
    this.connected = false;
    await this.producer.disconnect();
  }
}

// Logs what was just produced: the example's first message, or a retry the
// KafkaRetry listener re-published (it always sets executeAt).
function describe(topic, key, value, headers) {
  let msgId;
  try {
    msgId = JSON.parse(value).msgId;
  } catch {
    msgId = '?';
  }
  const h = Object.entries(headers)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  if (headers.executeAt !== undefined) {
    const late = Date.now() - Number(headers.executeAt);
    log(
      're-published',
      `by the listener: retry ${headers.retryCount}, key=${key} msgId=${short(msgId)}… ` +
        `[${h}] (${late} ms after it fell due)`,
    );
  } else {
    log('produced', `${topic} key=${key} msgId=${short(msgId)}… [${h || 'no headers'}]`);
  }
}

module.exports = new KafkaProducer();
