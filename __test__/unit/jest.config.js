// The unit tier (`npm run test:unit`): the suites in this folder, which need no Redis and no broker.
// no-servers.js points REDIS_URL and KAFKA_BROKERS where nothing listens, so a suite that does need
// one fails here instead of passing against whatever runs on the default ports.
const path = require('path')

module.exports = {
  rootDir: path.join(__dirname, '..', '..'),
  testMatch: ['<rootDir>/__test__/unit/**/*.test.js'],
  setupFiles: ['<rootDir>/__test__/unit/no-servers.js'],
  testTimeout: 30000,
  maxWorkers: 1,
}
