// A dashboard process of its own, for the tests of bulk jobs across processes: serves the
// dashboard of one schedule on a free loopback port with a short job lease, and prints its
// address. argv: keyPrefix, dlqName, jobLeaseMs.
const { KafkaRetry } = require('../..')
const { serve } = require('../../dashboard')

const [prefix, dlqName, leaseMs] = process.argv.slice(2)
const retry = new KafkaRetry({ keyPrefix: prefix })
serve({ retry, dlqName, port: 0, jobLeaseMs: Number(leaseMs), refreshSeconds: 0 }).then(
  ({ url }) => console.log(`listening ${url}`),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
