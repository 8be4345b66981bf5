// docker-compose.yml against the Compose Specification's JSON schema (scripts/check-compose.js, part
// of `npm run lint`): the repository's file passes, a broken one fails. And the file offers what the
// README and scripts say of it: Redis on 127.0.0.1:6379 with AOF and noeviction, Apache Kafka on
// localhost:9092 at the version scripts/services/kafka.sh runs, no secured listener (the secured
// suite needs the script's broker, as docs/contributing.md and the file's header say).
const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawnSync } = require('child_process')

const ROOT = path.join(__dirname, '..', '..')
const CHECK = path.join(ROOT, 'scripts', 'check-compose.js')
const COMPOSE = fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')

/** Runs the check on `text` written to a temporary file: `{ status, stderr }`. */
function check(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-'))
  const file = path.join(dir, 'docker-compose.yml')
  fs.writeFileSync(file, text)
  try {
    const { status, stderr } = spawnSync(process.execPath, [CHECK, file], { encoding: 'utf8' })
    return { status, stderr }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe('docker-compose.yml against the Compose Specification', () => {
  test("the repository's file passes", () => {
    expect(check(COMPOSE)).toEqual({ status: 0, stderr: '' })
    const { status } = spawnSync(process.execPath, [CHECK], { encoding: 'utf8' })
    expect(status).toBe(0)
  })

  test.each([
    ['a key Compose does not know', COMPOSE.replace('    healthcheck:\n      test: ["CMD", "redis-cli"', '    healthcheck:\n      tset: ["CMD", "redis-cli"'), /invalid-schema.*redis\/healthcheck.*additional properties/],
    ['a wrong type', COMPOSE.replace('      retries: 10', '      retries: [10]'), /invalid-schema.*healthcheck\/retries/],
    ['a service key misspelt', COMPOSE.replace('  redis:\n    image: redis:7', '  redis:\n    images: redis:7'), /invalid-schema.*\/services\/redis.*additional properties/],
    ['text that is not YAML', COMPOSE.replace('services:', 'services: [\n'), /invalid-yaml/],
  ])('%s fails', (_, text, reason) => {
    expect(text).not.toBe(COMPOSE) // the replacement found its place
    const { status, stderr } = check(text)
    expect(status).toBe(1)
    expect(stderr).toMatch(reason)
  })
})

describe('docker-compose.yml offers what the README says', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const kafkaSh = fs.readFileSync(path.join(ROOT, 'scripts', 'services', 'kafka.sh'), 'utf8')

  test('Redis on 127.0.0.1:6379 with persistence and noeviction, Kafka on localhost:9092', () => {
    expect(readme).toContain('Redis on 127.0.0.1:6379 with persistence and\n`noeviction`')
    expect(COMPOSE).toContain('"127.0.0.1:6379:6379"')
    expect(COMPOSE).toMatch(/--appendonly\n\s+- "yes"/)
    expect(COMPOSE).toMatch(/--maxmemory-policy\n\s+- noeviction/)
    expect(readme).toContain('one Apache Kafka node on localhost:9092')
    expect(COMPOSE).toContain('PLAINTEXT://localhost:9092')
    expect(COMPOSE).toContain('"9092:9092"')
  })

  test('the Kafka version is the one scripts/services/kafka.sh runs', () => {
    const version = /APACHE_KAFKA_VERSION="\$\{APACHE_KAFKA_VERSION:-([0-9.]+)\}"/.exec(kafkaSh)[1]
    expect(COMPOSE).toContain(`image: apache/kafka:${version}\n`)
  })

  test('no secured listener, and the file says which suites need the scripts instead', () => {
    const protocols = /KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: (.*)/.exec(COMPOSE)[1].split(',').map((l) => l.split(':')[1])
    expect(new Set(protocols)).toEqual(new Set(['PLAINTEXT']))
    expect(COMPOSE).toMatch(/secured suite/)
    expect(readme).toMatch(/`secured` suite[\s\S]{0,200}scripts\/services\.sh/)
  })
})
