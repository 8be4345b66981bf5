// Types of `require('kafka-redis-retry/dashboard')`.
import type { IncomingMessage, ServerResponse, Server } from 'http'
import type { KafkaRetry } from '../index'

/** One schedule (a `keyPrefix`) and the dead letter queues shown with it. */
export interface DashboardSchedule {
  /** The instance the dashboard reads and acts through (its `keyPrefix` is the schedule). */
  retry: KafkaRetry
  /**
   * The dead letter hash(es) of this schedule. Default: the instance's `dlqName` when the handler
   * is made (its listener's, else `<keyPrefix>:dead-letters`, where a listener started without a
   * name writes).
   */
  dlqName?: string | string[]
  /** The schedule's name on the pages. Default `'schedule'` (`'schedule 2'`, ... with several). */
  name?: string
}

export interface DashboardOptions {
  /** One schedule: its instance (or give `schedules`). */
  retry?: KafkaRetry
  /** One schedule: its dead letter hash(es). Default: `retry.dlqName` (see `DashboardSchedule`). */
  dlqName?: string | string[]
  /** One schedule: its name on the pages. */
  name?: string
  /** Several schedules (prefixes) and their dead letter queues in one dashboard. */
  schedules?: DashboardSchedule[]
  /**
   * Where the dashboard is mounted, e.g. `'/ops/retries'`: its links start with it and requests
   * outside it are answered 404 (or passed to Express's `next`). Default: Express's mount path
   * (`req.baseUrl`), else the root.
   */
  basePath?: string
  /** Shows no actions and refuses every POST with 403. Default `false`. */
  readOnly?: boolean
  /**
   * When set (8 characters or more), every page needs it: `?token=` once (the browser then keeps
   * a cookie) or `Authorization: Bearer <token>`; otherwise 401. `GET /prometheus` takes only the
   * bearer header (a Prometheus scrape's `authorization`), unless `metricsWithoutToken`. Its
   * actions are recorded in the audit log with the actor `token`.
   */
  token?: string
  /**
   * Named tokens, `{ name: secret }` (names of 1 to 64 letters, digits, `.`, `_`, `@`, `-`;
   * secrets of 8 characters or more, all different), beside or instead of `token`: each works as
   * `token` does, and the actions made with it are recorded in the audit log with its name as
   * the actor.
   */
  tokens?: Record<string, string>
  /**
   * `GET /prometheus` (the schedules' metrics in Prometheus text, for a scrape) without the token.
   * Default `false`: with a token, a scrape shows it as `Authorization: Bearer <token>` (no cookie or
   * `?token=` there). The route tells counts and topic names, never a payload.
   */
  metricsWithoutToken?: boolean
  /** How often the overview reloads itself, in seconds (0: never). Default 5. */
  refreshSeconds?: number
  /**
   * How long a bulk job this dashboard runs counts as running without a report of its runner
   * (it reports a few times per lease), in ms: a job whose dashboard process died shows as
   * interrupted this long after. Default 15000.
   */
  jobLeaseMs?: number
}

/** A Node request handler; under Express, requests outside `basePath` go on to `next`. */
export type DashboardHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void

/**
 * The dashboard as a Node `(req, res)` handler, for `http.createServer`, Express
 * (`app.use('/retries', handler(...))`) or Fastify (a route that calls `reply.hijack()` and
 * hands over `request.raw`, `reply.raw`). Throws `ERR_INVALID_ARG` for bad options.
 */
export function handler(options: DashboardOptions): DashboardHandler

export interface ServeOptions extends DashboardOptions {
  /** Default `'127.0.0.1'`. Any other than loopback needs `token`, or `readOnly` with `dataVisible`. */
  host?: string
  /** Default 3000; 0 picks a free port. */
  port?: number
  /** Acknowledges that, read-only without a token, anyone reaching the address reads every dead letter. */
  dataVisible?: boolean
}

/** Starts the dashboard's own HTTP server (what the CLI's `dashboard` command runs). */
export function serve(options: ServeOptions): Promise<{ server: Server; url: string }>
