'use strict';
// The kafkajs client the producer and the consumer share.

const { Kafka, logLevel } = require('kafkajs');
const { KAFKA_BROKERS } = require('./constants');

module.exports = new Kafka({
  clientId: 'kafka-redis-retry-demo',
  brokers: KAFKA_BROKERS,
  // kafkajs is chatty at INFO (group joins, ...); keep the example's own
  // lines readable and still show real problems.
  logLevel: logLevel.WARN,
  retry: { retries: 5 },
});
