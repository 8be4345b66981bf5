// JavaScript lives in the package's .js modules (lib/), never in the native module (issue 28,
// item 8; issue 32, item 2): scripts/check-js-in-rust.js, which `npm run lint` runs, finds every
// `run_script` in the Rust sources, whatever it evaluates, and every `include_str!` of a .js file.
// Needs no server.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { offences, check } = require('../../scripts/check-js-in-rust.js')

describe('no JavaScript evaluated or held in the native module', () => {
  test('no Rust file of src/ or crates/ calls run_script or includes a .js file', () => {
    expect(check(path.join(__dirname, '..', '..'))).toEqual([])
  })

  test('the check finds run_script of anything (an included .js file too) and any included .js file', () => {
    const rust = [
      'const OK: &str = include_str!("ok.js");',
      'const HELD: &str = "(x) => x";',
      'const TYPES: &str = include_str!("header.d.ts");',
      'fn f(env: &Env) {',
      '    env.run_script(OK)?;',
      '    env.run_script("(x) => x")?;',
      '    env.run_script(r#"(x) => "y""#)?;',
      '    env.run_script(HELD)?;',
      '    env.run_script::<Unknown>(&format!("{}", 1))?;',
      '    // env.run_script("in a comment")',
      '    /// include_str!("in.js") in a doc comment',
      '    /* env.run_script(HELD) */',
      '    let url = "redis://host"; env.run_script(HELD)?;',
      '    let s = include_str!(r#"raw.mjs"#);',
      '}',
    ].join('\n')
    expect(offences(rust).map(({ line }) => line)).toEqual([1, 5, 6, 7, 8, 9, 13, 14])
  })

  test('check() reads the Rust files under src/ and crates/, and reports each offence with its file and line', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'js-in-rust-'))
    try {
      fs.mkdirSync(path.join(root, 'src', 'deep'), { recursive: true })
      fs.mkdirSync(path.join(root, 'crates', 'engine', 'src'), { recursive: true })
      fs.writeFileSync(path.join(root, 'src', 'clean.rs'), 'fn f() {}\n')
      fs.writeFileSync(path.join(root, 'src', 'deep', 'eval.rs'), '\nfn f(env: &Env) { env.run_script("1")?; }\n')
      fs.writeFileSync(path.join(root, 'crates', 'engine', 'src', 'held.rs'), 'const S: &str = include_str!("s.js");\n')
      expect(check(root).map(({ file, line }) => [file, line]).sort()).toEqual([
        [path.join('crates', 'engine', 'src', 'held.rs'), 1],
        [path.join('src', 'deep', 'eval.rs'), 2],
      ])
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
