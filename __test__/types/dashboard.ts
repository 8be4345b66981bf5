// Type-checked usage of dashboard/index.d.ts (npm run typecheck).
import * as http from 'http'
import { KafkaRetry } from '../../index'
import { handler, serve, DashboardHandler } from '../../dashboard'

const retry = new KafkaRetry({ keyPrefix: 'orders-retry' })
const one: DashboardHandler = handler({ retry, dlqName: 'DEAD_LETTER_QUEUE', basePath: '/ops/retries', readOnly: true })
http.createServer((req, res) => one(req, res))

const several = handler({
  schedules: [
    { retry, dlqName: ['DEAD_LETTER_QUEUE', 'DLQ_2'], name: 'orders' },
    { retry: new KafkaRetry({ keyPrefix: 'payments-retry' }) },
  ],
  token: process.env.DASHBOARD_TOKEN,
  tokens: { alice: 'alice-secret-1', oncall: 'oncall-secret-1' },
  refreshSeconds: 10,
  jobLeaseMs: 15000,
  metricsWithoutToken: false,
})
several({} as http.IncomingMessage, {} as http.ServerResponse, () => undefined)

async function main(): Promise<void> {
  const { server, url }: { server: http.Server; url: string } = await serve({ retry, host: '127.0.0.1', port: 0 })
  console.log(url)
  server.close()
}
void main
