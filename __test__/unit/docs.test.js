// The README's reference tables held to the code they describe (no server needed): every config
// key the types accept has a row in the Config table, every error code the engine raises a row in
// the Errors table, and every Redis key the store names a row in "What is stored in Redis".
const fs = require('fs')
const path = require('path')

const ROOT = path.join(__dirname, '..', '..')
const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8')
const README = read('README.md')

/** The lines of the README section under `heading`, up to the next heading of any level. */
function section(heading) {
  const lines = README.split('\n')
  const start = lines.findIndex((l) => l.trim() === heading)
  if (start < 0) throw new Error(`README has no heading ${heading}`)
  const rest = lines.slice(start + 1)
  const end = rest.findIndex((l) => /^#{1,6} /.test(l))
  return end < 0 ? rest : rest.slice(0, end)
}

/** The backticked names in the first cell of each table row of a section. */
function firstCells(heading) {
  const names = new Set()
  for (const line of section(heading)) {
    const cell = /^\| ([^|]+) \|/.exec(line)
    if (!cell) continue
    for (const m of cell[1].matchAll(/`([^`]+)`/g)) names.add(m[1])
  }
  return names
}

test('the Config table has a row for every key of KafkaRetryConfig, and no other', () => {
  const types = read('index.d.ts')
  const body = /export interface KafkaRetryConfig \{([\s\S]*?)\n\}/.exec(types)[1]
  const keys = [...body.matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]).sort()
  expect(keys.length).toBeGreaterThan(20)
  expect([...firstCells('### Config')].sort()).toEqual(keys)
})

test('the Errors table has a row for every error code the engine raises, and no other', () => {
  const codes = [...read('crates/engine/src/error.rs').matchAll(/=> "(ERR_[A-Z_]+)"/g)].map((m) => m[1]).sort()
  expect(codes).toContain('ERR_INTERNAL')
  expect([...firstCells('### Errors')].filter((c) => c.startsWith('ERR_')).sort()).toEqual(codes)
})

test('"What is stored in Redis" has a row for every key the store names', () => {
  const rows = [...firstCells('## What is stored in Redis')]
  // A key in crates/engine/src/store/keys.rs is a format! of the hash tag or the dead letter hash's name and a suffix.
  const suffixes = [...read('crates/engine/src/store/keys.rs').matchAll(/format!\("(?:\{\{\{(?:tag|prefix)\}\}\}|\{tag\}|\{dlq_name\})(:[a-z:]+)"\)/g)].map((m) => m[1])
  expect(suffixes).toEqual(expect.arrayContaining([':due', ':paused', ':index', ':index:scan']))
  for (const suffix of suffixes) {
    expect({ suffix, documented: rows.some((r) => r === `{keyPrefix}${suffix}` || r === `<dlqName>${suffix}` || r.startsWith(`{keyPrefix}${suffix}:`)) }).toEqual({ suffix, documented: true })
  }
})
