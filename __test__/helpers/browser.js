// What the dashboard suites share: a handler served on a free loopback port, and a browser page
// that records what a test asserts never happens (a dialog: an XSS would alert; a
// Content-Security-Policy violation).
'use strict'

const http = require('http')
const { chromium } = require('playwright-core')
const h = require('./index')

/** A server for `handle` on a free loopback port; resolves to its base URL and a stop(). */
async function listen(handle) {
  const server = http.createServer(handle)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => server.close(r)) }
}

/** A page in a fresh context of `browser`, its dialogs (dismissed) and CSP errors recorded. */
async function watchedPage(browser) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const dialogs = []
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message())
    dialog.dismiss().catch(() => {})
  })
  const cspErrors = []
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspErrors.push(msg.text())
  })
  return { page, context, dialogs, cspErrors }
}

/**
 * Debian's chromium for this test file: launched before its tests (once the servers answer) and
 * closed after them. Returns `open()`, a `watchedPage` in a fresh context of it.
 */
function chromiumForFile() {
  let browser
  beforeAll(async () => {
    await h.requireServers()
    browser = await chromium.launch({ executablePath: h.chromiumPath(), args: ['--no-sandbox'] })
  })
  afterAll(async () => {
    if (browser) await browser.close()
  })
  return () => watchedPage(browser)
}

module.exports = { listen, watchedPage, chromiumForFile }
