'use strict'
// Bulk jobs: a dashboard's bulk requeues and removals, run in this process and recorded in Redis
// beside the schedule (the addon's startJob/reportJob/stopJob/continueJob/jobs), so every
// dashboard on the schedule lists them, a Stop in one reaches the runner in another, a job whose
// process died shows as interrupted (its lease ran out), and a stopped or interrupted job can be
// continued: the same filter and pace again, over what still matches (a requeue or removal of
// the remaining matches moves nothing twice).

const os = require('os')
const op = require('./operator')

const DEFAULT_LEASE_MS = 15_000

/**
 * The jobs of this dashboard process: the runners it holds (per schedule and job id), and the
 * lease their reports keep.
 */
class Jobs {
  constructor({ leaseMs = DEFAULT_LEASE_MS } = {}) {
    this.leaseMs = leaseMs
    // A runner reports its count and renews its lease this often: a few times per lease, so one
    // late report does not make a running job look interrupted.
    this.beatMs = Math.max(200, Math.min(2000, Math.floor(leaseMs / 4)))
    this.runners = new Map()
  }

  /** Starts a job of `spec` on `schedule` and runs it; resolves to its record. */
  async start(schedule, spec) {
    const retry = op.need(schedule.retry, 'startJob')
    const job = await retry.startJob(spec, { leaseMs: this.leaseMs })
    this.run(schedule, job)
    return job
  }

  /**
   * Takes over a stopped, failed or interrupted job and runs it again, as `actor` (the audit
   * log's); null when it cannot.
   */
  async continue(schedule, id, actor) {
    const job = await op.need(schedule.retry, 'continueJob').continueJob(id, { leaseMs: this.leaseMs, actor })
    if (job) this.run(schedule, job, actor)
    return job
  }

  /** Asks job `id` to stop (for `actor`): at once when this process runs it, through Redis otherwise. */
  async stop(schedule, id, actor) {
    const asked = await op.need(schedule.retry, 'stopJob').stopJob(id, { actor })
    const runner = this.runners.get(key(schedule, id))
    if (runner) runner.controller.abort()
    return asked
  }

  /**
   * Runs `job` (its spec, from its count so far), reporting until it ends; its requeue or removal
   * is recorded in the audit log as done by `actor` (default: who started it).
   */
  run(schedule, job, actor = job.spec.actor) {
    const retry = schedule.retry
    const spec = job.spec
    const controller = new AbortController()
    const runner = { controller, done: job.done, lost: false }
    this.runners.set(key(schedule, job.id), runner)
    const base = job.done
    const report = (extra = {}) => retry.reportJob(job.id, job.run, { done: runner.done, leaseMs: this.leaseMs, ...extra })
    const beat = setInterval(() => {
      report().then(
        (answer) => {
          // Asked to stop (from another dashboard), or the job was taken over: stop moving.
          if (answer === 'lost') runner.lost = true
          if (answer !== 'running') controller.abort()
        },
        // Redis unreachable for a moment: the next report renews the lease (or finds it lost).
        () => {},
      )
    }, this.beatMs)
    beat.unref()
    const options = { signal: controller.signal, onProgress: (n) => { runner.done = Math.max(runner.done, base + n) } }
    // At most the confirmed count, over every run of the job.
    if (spec.maxCount !== undefined) options.maxCount = Math.max(0, spec.maxCount - base)
    if (typeof actor === 'string') options.actor = actor
    let work
    if (spec.kind === 'remove') {
      work = retry.removeDeadLetters(spec.dlq, spec.filter, options)
    } else {
      if (spec.ratePerSec) options.ratePerSec = spec.ratePerSec
      if (spec.delayMs) options.delayMs = spec.delayMs
      work = retry.requeueDeadLetters(spec.dlq, spec.filter, options)
    }
    const finished = work.then(
      (n) => {
        runner.done = Math.max(runner.done, base + n)
        return { state: controller.signal.aborted ? 'stopped' : 'done' }
      },
      (err) => ({ state: 'failed', error: err.code ? `${err.code}: ${err.message}` : String(err.message || err) }),
    )
    runner.finished = finished.then(async (end) => {
      clearInterval(beat)
      if (!runner.lost) await report(end).catch(() => {})
      this.runners.delete(key(schedule, job.id))
    })
    return runner
  }

  /** Every kept job of the schedules, newest first, each with its schedule. */
  async list(schedules) {
    const lists = await Promise.all(
      schedules.map(async (schedule) => {
        if (typeof schedule.retry.jobs !== 'function') return []
        try {
          return (await schedule.retry.jobs()).map((job) => ({ ...job, schedule }))
        } catch {
          return []
        }
      }),
    )
    return lists.flat().sort((a, b) => b.startedAt - a.startedAt)
  }

  /** Waits for the runners of this process to end (after stopping them, with `stop`). */
  async settle({ stop = false } = {}) {
    const runners = [...this.runners.values()]
    if (stop) for (const runner of runners) runner.controller.abort()
    await Promise.all(runners.map((r) => r.finished))
  }
}

function key(schedule, id) {
  return `${schedule.index}:${id}`
}

/** Who started a job: the browser's address and this dashboard process. */
function startedBy(req) {
  const address = (req.socket && req.socket.remoteAddress) || 'unknown address'
  return `${address} via the dashboard on ${os.hostname()} (pid ${process.pid})`
}

module.exports = { Jobs, startedBy, DEFAULT_LEASE_MS }
