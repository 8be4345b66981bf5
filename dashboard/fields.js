'use strict'
// The numbers the dashboard's forms and addresses take, read at the boundary. Each is checked
// here (not a number, zero or negative zero where a positive number is meant, a subnormal like
// 1e-300, huge, NaN, Infinity, a fraction where a whole number is meant) and refused with a
// message the page shows (400): no value reaches the addon unchecked.

class FieldError extends Error {
  constructor(message) {
    super(message)
    this.status = 400
  }
}

// Decimal notation only: Number() would also read '0x10', '0b1', ' ', 'Infinity'.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i

function show(n) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 6 })
}

/**
 * The number in field `name` of `form` (URLSearchParams), or null when it is empty. Refused
 * unless within `min`..`max` (and whole, with `whole`); 0 (and -0, read as 0) is accepted only
 * with `zero`. `label` and `unit` make the message.
 */
function numberField(form, name, { label = name, min, max, whole = false, zero = false, unit = '' }) {
  const text = form.get(name)
  if (text === null || text.trim() === '') return null
  const trimmed = text.trim()
  const n = DECIMAL.test(trimmed) ? Number(trimmed) : NaN
  const range = `${zero ? '0 or ' : ''}a ${whole ? 'whole ' : ''}number from ${show(min)} to ${show(max)}${unit ? ` ${unit}` : ''}`
  const refuse = () => new FieldError(`${label} must be ${range}, got '${text.length > 40 ? `${text.slice(0, 40)}…` : text}'`)
  if (!Number.isFinite(n)) throw refuse()
  if (n === 0) {
    if (zero) return 0
    throw refuse()
  }
  if (n < min || n > max || (whole && !Number.isInteger(n))) throw refuse()
  return n
}

/** The pace of a bulk requeue when its form leaves the rate empty: a downstream that has just
 * recovered gets its backlog back at this rate, not all at once. */
const DEFAULT_RATE = 100
/** A bulk action on more dead letters than this needs their count typed back on its confirmation. */
const CONFIRM_ABOVE = 1000
const MAX_RATE = 10_000
/** A year: the longest delay the addon takes for a requeue (requeueDeadLetter's delayMs). */
const MAX_MINUTES = 365 * 24 * 60

/** A bulk requeue's pace, per second: the field's, or DEFAULT_RATE when it is empty. */
function rateField(form) {
  const rate = numberField(form, 'rate', { label: 'rate', min: 0.1, max: MAX_RATE, unit: 'per second' })
  return rate === null ? DEFAULT_RATE : rate
}

/** A requeue's delay in minutes (0 or empty: due now), at most a year; as ms. */
function delayField(form, name = 'delayMinutes') {
  const minutes = numberField(form, name, { label: 'the delay', min: 0.01, max: MAX_MINUTES, zero: true, unit: 'minutes' })
  return minutes ? Math.round(minutes * 60_000) : 0
}

/** A pause's length in whole minutes (empty: until resumed), at most a year. */
function pauseMinutesField(form, name = 'minutes') {
  return numberField(form, name, { label: 'the pause', min: 1, max: MAX_MINUTES, whole: true, unit: 'minutes' })
}

/** A page size: empty is `fallback`. */
function limitField(params, fallback, max) {
  const limit = numberField(params, 'limit', { label: 'limit', min: 1, max, whole: true })
  return limit === null ? fallback : limit
}

/** A whole number in the address (a job id): null when it is not one a job can have. */
function idPart(text) {
  const n = Number(text)
  return /^[0-9]{1,16}$/.test(text) && Number.isSafeInteger(n) && n > 0 ? n : null
}

module.exports = { FieldError, numberField, rateField, delayField, pauseMinutesField, limitField, idPart, DEFAULT_RATE, CONFIRM_ABOVE, MAX_RATE, MAX_MINUTES }
