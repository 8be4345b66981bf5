'use strict';
// One line per step, stamped with the time since the example started.

const t0 = Date.now();

function stamp() {
  return `[+${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s]`;
}

function log(step, text = '') {
  console.log(`${stamp()} ${step.padEnd(12)} ${text}`.trimEnd());
}

function warn(text) {
  console.error(`${stamp()} WARNING      ${text}`);
}

const short = (id) => (typeof id === 'string' ? id.slice(0, 8) : String(id));

module.exports = { log, warn, short, t0 };
