// The command line tool's usage errors: reported (exit 2) before any connection is tried, so no
// Redis is needed. bin/kafka-redis-retry.js runs as a child process.
const h = require('../helpers')

const { run, UNREACHABLE } = require('../helpers/cli')

describe('usage', () => {
  test('--help prints the usage on stdout and exits 0', async () => {
    for (const args of [['--help'], ['-h'], ['dlq', 'list', '--help'], ['nonsense', '--help']]) {
      const { code, stdout, stderr } = await run(args)
      expect(code).toBe(0)
      expect(stderr).toBe('')
      for (const text of [
        'stats',
        'dlq list',
        'dlq requeue',
        'dlq remove',
        '--dlq',
        '--metrics',
        '--limit',
        '--cursor',
        '--all',
        '--redis',
        '--prefix',
        '--cluster',
        '--json',
        '--version',
      ]) {
        expect(stdout).toContain(text)
      }
    }
  })

  test('--version prints the package version', async () => {
    const { code, stdout } = await run(['--version'])
    expect(code).toBe(0)
    expect(stdout.trim()).toBe(require('../../package.json').version)
  })

  test.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['stats', '--frob'], /unknown option --frob/],
    [['dlq', 'frob', 'x'], /unknown dlq subcommand 'frob'/],
    [['stats', '--limit', '5'], /--limit is not valid for stats/],
    [['stats', 'extra'], /unexpected argument 'extra'/],
    [['--json', 'stats', '--metrics'], /cannot be combined/],
    [['dlq', 'remove', 'q', 'id', '--all'], /--all is not valid for dlq remove/],
    // util.parseArgs: a repeated option is refused, not last-one-wins; a flag takes no value.
    [['stats', '--json', '--json'], /option --json was given more than once/],
    [['--prefix', 'a', 'stats', '--prefix', 'b'], /option --prefix was given more than once/],
    [['dlq', 'list', 'q', '--limit', '5', '--limit=6'], /option --limit was given more than once/],
    [['stats', '--json=yes'], /option --json takes no value/],
    [['stats', '-x'], /unknown option -x/],
    [['stats', '--redis='], /option --redis needs a non-empty value/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const { code, stdout, stderr } = await run(args, { REDIS_URL: UNREACHABLE })
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toMatch(message)
    expect(stderr).toMatch(/^error: /)
    expect(stderr).toContain('--help')
  })

  test.each([
    [[], /missing command/],
    [['dlq'], /needs a subcommand/],
    [['dlq', 'list'], /needs the name/],
    [['dlq', 'requeue'], /needs the name/],
    [['dlq', 'requeue', 'q'], /needs the id/],
    [['dlq', 'requeue', 'q', 'id', '--all'], /either an id or --all/],
    [['dlq', 'remove', 'q'], /needs the id/],
    [['dlq', 'list', 'q', '--limit'], /--limit needs a value/],
    [['dlq', 'list', 'q', '--limit', '0'], /--limit must be a whole number from 1 to 10000/],
    [['dlq', 'list', 'q', '--limit', 'ten'], /--limit must be a whole number from 1 to 10000/],
    [['stats', '--redis'], /--redis needs a value/],
    [['stats', '--prefix', '--json'], /--prefix needs a value/],
    [['stats', '--shards', '0'], /--shards must be a whole number from 1 to 1024/],
  ])('missing or bad argument %j exits 2 without touching Redis', async (args, message) => {
    // REDIS_URL points nowhere: a usage error must be reported before any connection attempt.
    const { code, stdout, stderr } = await run(args, { REDIS_URL: UNREACHABLE })
    expect(code).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toMatch(message)
    expect(stderr).toContain('--help')
  })

  test('bad --redis / --prefix values and a bad --cursor are usage errors', async () => {
    let r = await run(['stats', '--redis', 'not-a-url'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^error: ERR_INVALID_ARG: .*not a Redis URL/)
    r = await run(['stats', '--prefix', '{tagged}'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^error: ERR_INVALID_ARG: .*keyPrefix/)
    r = await run(['dlq', 'list', h.unique('cli-nothing'), '--cursor', 'abc'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^error: ERR_INVALID_ARG: .*cursor/)
  })
})
