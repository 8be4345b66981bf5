// What the dashboard suites share: a handler served on a free loopback port, and a browser page
// that records what a test asserts never happens (a dialog: an XSS would alert; a
// Content-Security-Policy violation).
'use strict'

const http = require('http')

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

module.exports = { listen, watchedPage }
