'use strict';
// A tiny Redis client (RESP2 over `net`), just enough to read the dead letter
// hash back: no npm dependency. Supports redis://[user:password@]host[:port][/db];
// for TLS (rediss://) use redis-cli or a real client instead.

const net = require('net');

// Parses one reply at buf[pos..]: [value, nextPos], or null if incomplete.
function parseReply(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [Object.assign(new Error(line), { redisError: true }), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return null;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return null;
        items.push(r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

class MiniRedis {
  static async connect(url) {
    const u = new URL(url);
    if (u.protocol !== 'redis:') throw new Error(`examples/redis.js speaks redis:// only, not ${u.protocol}`);
    const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(u.port) || 6379;
    const client = new MiniRedis();
    await new Promise((resolve, reject) => {
      client.socket = net.createConnection({ host, port }, resolve);
      client.socket.once('error', reject);
    });
    client.socket.on('error', (err) => client.failAll(err));
    client.socket.on('close', () => client.failAll(new Error('redis connection closed')));
    client.socket.on('data', (chunk) => client.onData(chunk));
    const password = decodeURIComponent(u.password);
    const user = decodeURIComponent(u.username);
    if (password) await client.command(...(user ? ['AUTH', user, password] : ['AUTH', password]));
    const db = u.pathname.replace(/^\//, '');
    if (db && db !== '0') await client.command('SELECT', db);
    return client;
  }

  constructor() {
    this.buf = Buffer.alloc(0);
    this.pending = [];
  }

  onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let parsed;
    while (this.pending.length && (parsed = parseReply(this.buf, 0))) {
      this.buf = this.buf.subarray(parsed[1]);
      const { resolve, reject } = this.pending.shift();
      if (parsed[0] instanceof Error) reject(parsed[0]);
      else resolve(parsed[0]);
    }
  }

  failAll(err) {
    for (const { reject } of this.pending.splice(0)) reject(err);
  }

  command(...args) {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encode(args));
    });
  }

  // HGETALL as an object { field: value }
  async hgetall(key) {
    const flat = (await this.command('HGETALL', key)) || [];
    const out = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1];
    return out;
  }

  async quit() {
    try {
      await this.command('QUIT');
    } catch {
      // already closed
    }
    this.socket.destroy();
  }
}

module.exports = { MiniRedis };
