'use strict'
// GET /prometheus: the Prometheus text of the dashboard's schedules, for a scrape. The same names,
// labels and values as `registerMetrics` gives (prometheus.js writes both), read from Redis on each
// scrape. A scrape shows its token as `Authorization: Bearer <token>` (Prometheus's `authorization`
// scrape config) and never needs a cookie or a CSRF form; `metricsWithoutToken` leaves this one
// route open when the rest of the dashboard needs a token.

const { scrapeText, CONTENT_TYPE } = require('../prometheus')
const { baseHeaders } = require('./security')

const ROUTE = '/prometheus'

/** The scrape's sources: each schedule with each of its dead letter queues (their dead letters are summed). */
function sourcesOf(schedules) {
  return schedules.flatMap((s) => s.dlqNames.map((dlqName) => ({ retry: s.retry, dlqName })))
}

function sendText(res, status, type, body, headers = {}) {
  res.writeHead(status, { ...baseHeaders(type), ...headers })
  res.end(body)
}

/**
 * Answers the request when it is for /prometheus (true), else leaves it (false). A Redis that
 * does not answer still gives 200, with `kafka_retry_redis_up` 0 for its schedule.
 */
async function serveMetrics(state, req, res, route, guard) {
  if (route !== ROUTE) return false
  if (!state.metricsWithoutToken && guard.bearer(req).status !== 'ok') {
    sendText(res, 401, 'text/plain; charset=utf-8', 'this endpoint needs the dashboard\'s token as Authorization: Bearer <token>\n', {
      'WWW-Authenticate': 'Bearer realm="kafka-redis-retry dashboard"',
    })
    return true
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendText(res, 405, 'text/plain; charset=utf-8', `${req.method} is not allowed\n`, { Allow: 'GET, HEAD' })
    return true
  }
  const text = await scrapeText(sourcesOf(state.schedules))
  sendText(res, 200, CONTENT_TYPE, req.method === 'HEAD' ? undefined : text, { 'Content-Length': String(Buffer.byteLength(text)) })
  return true
}

module.exports = { serveMetrics, ROUTE }
