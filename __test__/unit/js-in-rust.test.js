// JavaScript lives in .js files, never in Rust strings (issue 28, item 8): scripts/check-js-in-rust.js,
// which `npm run lint` runs, finds every `run_script` of anything but an `include_str!` of a .js
// file. Needs no server.
'use strict'

const path = require('path')
const { offences, check } = require('../../scripts/check-js-in-rust.js')

describe('no JavaScript evaluated from a Rust string', () => {
  test('every run_script in src/ evaluates a .js file', () => {
    expect(check(path.join(__dirname, '..', '..'))).toEqual([])
  })

  test('the check finds a literal, a raw string, a const string, and text built at run time', () => {
    const rust = [
      'const OK: &str = include_str!("ok.js");',
      'const HELD: &str = "(x) => x";',
      'fn f(env: &Env) {',
      '    env.run_script(OK)?;',
      '    env.run_script("(x) => x")?;',
      '    env.run_script(r#"(x) => "y""#)?;',
      '    env.run_script(HELD)?;',
      '    env.run_script::<Unknown>(&format!("{}", 1))?;',
      '    // env.run_script("in a comment")',
      '}',
    ].join('\n')
    expect(offences(rust).map(({ line }) => line)).toEqual([5, 6, 7, 8])
  })
})
