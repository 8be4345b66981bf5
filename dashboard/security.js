'use strict'
// What keeps the dashboard safe to open: the access token, the CSRF token every POST carries,
// the response headers (a Content-Security-Policy without inline scripts or styles), and a
// bounded reading of form bodies.

const crypto = require('crypto')

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ')

const MAX_BODY_BYTES = 64 * 1024

function sha256(text) {
  return crypto.createHash('sha256').update(String(text)).digest()
}

/** Compares secrets in constant time (by their hashes, so lengths do not leak either). */
function sameSecret(a, b) {
  return crypto.timingSafeEqual(sha256(a), sha256(b))
}

function parseCookies(header) {
  const cookies = {}
  for (const part of String(header || '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    if (!(name in cookies)) cookies[name] = part.slice(eq + 1).trim()
  }
  return cookies
}

/** The port of a Host header ('' without one): cookies ignore ports, the names must not. */
function portOf(host) {
  const m = /:(\d+)$/.exec(String(host || ''))
  return m ? m[1] : ''
}

/**
 * Per handler: the cookie names (distinct per port and base path, so two dashboards on one host
 * do not share them), the access check and the CSRF check.
 */
class Guard {
  /** `tokens`: [{ name, secret }] (see tokensOf); none: no token needed. */
  constructor({ tokens, basePath }) {
    this.tokens = tokens || []
    this.cookiePath = basePath || '/'
    // The cookie proves the browser was given the token once; it holds a hash of the token
    // keyed by this process's secret, never the token itself.
    this.secret = crypto.randomBytes(32)
  }

  /**
   * The cookie names for a request's port: a browser sends a host's cookies to each of its
   * ports, so two dashboards on one host with the same names would overwrite each other's.
   */
  cookieNames(req) {
    const suffix = sha256(`${portOf(req.headers.host)}\n${this.cookiePath}`).toString('hex').slice(0, 8)
    return { auth: `krr_auth_${suffix}`, csrf: `krr_csrf_${suffix}` }
  }

  /**
   * The auth cookie is SameSite=Lax: a logged-in browser following a link from another site (a
   * chat, a ticket) sends it on that top-level GET, and on nothing else from another site (no
   * POST, image or fetch). Changes need the CSRF cookie, which stays Strict.
   */
  authCookie(req, name) {
    return `${this.cookieNames(req).auth}=${this.authValue(this.tokens.find((t) => t.name === name))}; Path=${this.cookiePath}; HttpOnly; SameSite=Lax`
  }

  csrfCookie(req, value) {
    return `${this.cookieNames(req).csrf}=${value}; Path=${this.cookiePath}; HttpOnly; SameSite=Strict`
  }

  /** The cookie's value for `token`: its name, and a keyed hash of name and secret. */
  authValue(token) {
    return `${token.name}.${crypto.createHmac('sha256', this.secret).update(`${token.name}\n${token.secret}`).digest('hex')}`
  }

  /** The token whose secret `given` is, or undefined (every one compared, in constant time). */
  tokenOf(given) {
    let found
    for (const token of this.tokens) if (sameSecret(given, token.secret) && !found) found = token
    return found
  }

  /**
   * { status, actor }: status 'ok' when the request may go on, 'login' when it carries a token
   * in its query (the caller sets the cookie and redirects to the address without it), 'refused'
   * otherwise; actor the name of the token it showed (the audit log's actor of its actions),
   * `dashboard` when no token is needed.
   */
  access(req, url) {
    if (!this.tokens.length) return { status: 'ok', actor: 'dashboard' }
    const refused = { status: 'refused', actor: null }
    const given = url.searchParams.get('token')
    if (given !== null) {
      const token = this.tokenOf(given)
      return token ? { status: 'login', actor: token.name } : refused
    }
    const bearer = this.bearer(req)
    if (bearer.status !== 'none') return bearer
    const cookie = parseCookies(req.headers.cookie)[this.cookieNames(req).auth]
    const token = cookie && this.tokens.find((t) => cookie.startsWith(`${t.name}.`))
    return token && sameSecret(cookie, this.authValue(token)) ? { status: 'ok', actor: token.name } : refused
  }

  /**
   * { status, actor } from the request's `Authorization: Bearer` header: status 'ok' when it
   * carries a token (or no token is set; actor the token's name), 'refused' when it carries
   * another, 'none' without one.
   */
  bearer(req) {
    if (!this.tokens.length) return { status: 'ok', actor: 'dashboard' }
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization || '')
    if (!m) return { status: 'none', actor: null }
    const token = this.tokenOf(m[1].trim())
    return token ? { status: 'ok', actor: token.name } : { status: 'refused', actor: null }
  }

  /**
   * Whether a GET comes from the dashboard's own pages or the address bar rather than from
   * another site (a link, an image, a form). Browsers say so in Sec-Fetch-Site; one without it
   * sends the Strict CSRF cookie only same-site; a client that is no browser shows a bearer token
   * (another site cannot make a browser send one).
   */
  fromHere(req) {
    const site = req.headers['sec-fetch-site']
    if (site) return site === 'same-origin' || site === 'none'
    return Boolean(this.csrfToken(req)) || /^Bearer\s/i.test(req.headers.authorization || '')
  }

  /** The CSRF token the browser's Strict cookie holds, or null. */
  csrfToken(req) {
    const existing = parseCookies(req.headers.cookie)[this.cookieNames(req).csrf]
    return existing && /^[0-9a-f]{64}$/.test(existing) ? existing : null
  }

  /**
   * The browser's CSRF token, and a Set-Cookie for a new one when it has none. null (and no
   * cookie) for a request that says it comes from another site and has no cookie: a Strict cookie is not sent
   * there though the browser may well have one, and replacing it would break the forms of the
   * dashboard's pages open in its other tabs.
   */
  csrf(req) {
    const existing = this.csrfToken(req)
    if (existing) return { token: existing, setCookie: null }
    const site = req.headers['sec-fetch-site']
    if (site && site !== 'same-origin' && site !== 'none') return { token: null, setCookie: null }
    const token = crypto.randomBytes(32).toString('hex')
    return { token, setCookie: this.csrfCookie(req, token) }
  }

  /**
   * Whether a POST may change state: its form's CSRF token equals the browser's cookie (which
   * another site can neither read nor set), and it does not come from another site.
   */
  postAllowed(req, form) {
    const site = req.headers['sec-fetch-site']
    if (site && site !== 'same-origin' && site !== 'none') return false
    const origin = req.headers.origin
    if (origin && origin !== 'null') {
      try {
        if (new URL(origin).host !== req.headers.host) return false
      } catch {
        return false
      }
    }
    const cookie = this.csrfToken(req)
    const field = form.get('csrf')
    return Boolean(cookie && field && sameSecret(cookie, field))
  }
}

/** Headers on every response. */
function baseHeaders(contentType) {
  return {
    'Content-Type': contentType,
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  }
}

/**
 * The form of a POST as URLSearchParams. A body a framework already read is used as it is
 * (Express's `express.urlencoded()` gives an object, a Fastify parser a string); otherwise the
 * stream is read, at most MAX_BODY_BYTES.
 */
function readForm(req) {
  if (req.body !== undefined && req.body !== null) {
    if (typeof req.body === 'string' || Buffer.isBuffer(req.body)) return Promise.resolve(new URLSearchParams(String(req.body)))
    if (typeof req.body === 'object') {
      const form = new URLSearchParams()
      for (const [key, value] of Object.entries(req.body)) form.set(key, String(value))
      return Promise.resolve(form)
    }
  }
  if (req.readableEnded) return Promise.resolve(new URLSearchParams())
  return new Promise((resolve, reject) => {
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('form too large'), { status: 413 }))
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))))
    req.on('error', reject)
  })
}

/** A token's name: what the audit log records as the actor of its actions. */
const TOKEN_NAME = /^[A-Za-z0-9._@-]{1,64}$/

/**
 * The tokens of handler()'s options as [{ name, secret }]: `token` (a secret, named `token`),
 * and `tokens` ({ name: secret }); each secret 8 characters or more, every secret different.
 * Throws a message for a bad one.
 */
function tokensOf({ token, tokens }) {
  const list = []
  if (token !== undefined) list.push({ name: 'token', secret: token, label: 'token' })
  if (tokens !== undefined) {
    if (!tokens || typeof tokens !== 'object' || Array.isArray(tokens)) throw new Error('tokens must be an object { name: secret }')
    for (const [name, secret] of Object.entries(tokens)) list.push({ name, secret, label: `tokens.${name}` })
  }
  const names = new Set()
  for (const { name, secret, label } of list) {
    if (typeof secret !== 'string' || secret.length < 8) throw new Error(`${label} must be a string of at least 8 characters`)
    if (!TOKEN_NAME.test(name)) throw new Error(`a token's name must be 1 to 64 letters, digits, '.', '_', '@' or '-', got ${JSON.stringify(name)}`)
    if (names.has(name)) throw new Error(`two tokens are named ${JSON.stringify(name)}`)
    names.add(name)
  }
  const secrets = new Set(list.map((t) => t.secret))
  if (secrets.size !== list.length) throw new Error('two tokens have the same secret: each name needs its own')
  return list.map(({ name, secret }) => ({ name, secret }))
}

/**
 * A `--token` of the command line: `NAME=SECRET` names it when NAME is a token name and SECRET
 * 8 characters or more; anything else is a plain secret (named `token`), so a secret that
 * itself holds '=' (base64) keeps working.
 */
function parseTokenArg(text) {
  const eq = text.indexOf('=')
  if (eq > 0 && TOKEN_NAME.test(text.slice(0, eq)) && text.length - eq - 1 >= 8) return { name: text.slice(0, eq), secret: text.slice(eq + 1) }
  return { name: 'token', secret: text }
}

module.exports = { Guard, baseHeaders, readForm, sameSecret, tokensOf, parseTokenArg, CSP }
