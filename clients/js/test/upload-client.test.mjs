// Unit tests of the client's calls, against a fake `fetch` (and a fake XMLHttpRequest for the
// PUTs to storage): retries, Idempotency-Keys, resume and abort. Run by scripts/test with
// `node --test clients/js/test`; the browser tests drive the real thing in Chromium.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mock, test } from 'node:test'

import { SHA256_MAX_BYTES, UploadClient, UploadError, formatBytes, parseRetryAfter } from '../upload-client.js'

const API = 'https://api.example.com/v1/projects/p1'
const PLAN = {
  file_id: 'f-1',
  status: 'pending_upload',
  s3_key: 'uploads/f-1/j-1',
  upload_id: null,
  part_size: 5,
  part_count: 1,
  urls: ['https://storage.example.com/put'],
  headers: { 'content-type': 'text/plain' },
  expires_at: new Date(Date.now() + 3600_000).toISOString(),
}

/** A fake fetch answering each request with the next of `answers` (a status and body, or an
 * Error to throw); it records each request, and when it came. */
function fakeFetch(answers) {
  const requests = []
  const fetch = async (url, init) => {
    requests.push({ url, ...init, headers: { ...init.headers }, at: Date.now() })
    const next = answers.shift()
    if (!next) throw new Error(`unexpected request ${init.method} ${url}`)
    if (next instanceof Error) throw next
    const { status, body = null, headers = {} } = typeof next === 'function' ? next(init) : next
    return new Response(body === null ? null : JSON.stringify(body), { status, headers })
  }
  return { fetch, requests }
}

const unavailable = (headers = {}) => ({
  status: 503,
  body: { error: { code: 'unavailable', message: 'retry later with the same Idempotency-Key', details: [] } },
  headers,
})

/** A Storage kept in memory. */
class MemoryStorage {
  #items = new Map()
  get length() { return this.#items.size }
  key(i) { return [...this.#items.keys()][i] ?? null }
  getItem(key) { return this.#items.get(key) ?? null }
  setItem(key, value) { this.#items.set(key, String(value)) }
  removeItem(key) { this.#items.delete(key) }
}

/** Storage's side of a PUT: every XMLHttpRequest answers 200. */
class OkXhr {
  upload = {}
  open(method, url) { this.url = url }
  setRequestHeader() {}
  abort() { this.onabort?.() }
  send(body) { queueMicrotask(() => { this.status = 200; this.onload() }) ; this.body = body }
}

function client(fetch, options = {}) {
  return new UploadClient({ apiUrl: API, token: 'upt_test', fetch, resumeStore: new MemoryStorage(), retry: { baseDelayMs: 1, ...options.retry }, ...options })
}

const file = () => new File(['hello'], 'notes.txt', { type: 'text/plain', lastModified: 1 })

test('a create carries an Idempotency-Key, and its retries after a 503 carry the same one', async () => {
  const { fetch, requests } = fakeFetch([unavailable(), unavailable(), { status: 201, body: PLAN }])
  const plan = await client(fetch).create(file())
  assert.equal(plan.file_id, 'f-1')
  assert.equal(requests.length, 3)
  const keys = requests.map((request) => request.headers['idempotency-key'])
  assert.match(keys[0], /^[0-9a-f-]{36}$/)
  assert.deepEqual(keys, [keys[0], keys[0], keys[0]])
})

test('a network failure is retried with the same key; two operations have two keys', async () => {
  const { fetch, requests } = fakeFetch([new TypeError('fetch failed'), { status: 201, body: PLAN }, { status: 201, body: PLAN }])
  const uploads = client(fetch)
  await uploads.create(file())
  await uploads.create(file())
  const keys = requests.map((request) => request.headers['idempotency-key'])
  assert.equal(keys[0], keys[1])
  assert.notEqual(keys[1], keys[2])
})

test('the wait before a retry is what Retry-After says', async () => {
  const { fetch } = fakeFetch([unavailable({ 'retry-after': '1' }), { status: 200, body: { ...PLAN, status: 'uploaded' } }])
  const uploads = client(fetch)
  const waits = []
  uploads.addEventListener('retry', (e) => waits.push(e.detail.delayMs))
  const started = Date.now()
  await uploads.complete('f-1')
  assert.deepEqual(waits, [1000])
  assert.ok(Date.now() - started >= 950)
})

test('a wait longer than the caller allows is not made: the 503 is the answer', async () => {
  const { fetch, requests } = fakeFetch([unavailable({ 'retry-after': '120' })])
  const error = await client(fetch, { retry: { maxDelayMs: 10_000 } }).complete('f-1').catch((err) => err)
  assert.ok(error instanceof UploadError)
  assert.equal(error.code, 'unavailable')
  assert.equal(requests.length, 1)
})

test('retries stop after the attempts allowed', async () => {
  const { fetch, requests } = fakeFetch(Array.from({ length: 3 }, () => unavailable()))
  const error = await client(fetch, { retry: { attempts: 3 } }).complete('f-1').catch((err) => err)
  assert.equal(error.status, 503)
  assert.equal(requests.length, 3)
})

test('final answers are not retried: 500, 422, 409 other than a key in use', async () => {
  for (const [status, code] of [[500, 'internal'], [422, 'validation_error'], [409, 'already_settled']]) {
    const { fetch, requests } = fakeFetch([{ status, body: { error: { code, message: code, details: [] } } }])
    const error = await client(fetch).complete('f-1').catch((err) => err)
    assert.equal(error.code, code)
    assert.equal(requests.length, 1, code)
  }
})

test('a key still in use and a 429 are retried', async () => {
  const inUse = { status: 409, body: { error: { code: 'idempotency_key_in_use', message: 'still running', details: [] } }, headers: { 'retry-after': '0' } }
  const { fetch, requests } = fakeFetch([inUse, { status: 429, body: { message: 'Too Many Requests' } }, { status: 200, body: PLAN }])
  await client(fetch).complete('f-1')
  assert.equal(requests.length, 3)
  assert.equal(new Set(requests.map((r) => r.headers['idempotency-key'])).size, 1)
})

test('signing part URLs is retried without a key; a POST neither keyed nor safe is not', async () => {
  const { fetch, requests } = fakeFetch([unavailable(), { status: 200, body: { urls: { 1: 'u' }, expires_at: PLAN.expires_at } }])
  await client(fetch).signParts('f-1', [1])
  assert.equal(requests.length, 2)
  assert.equal(requests[0].headers['idempotency-key'], undefined)

  const once = fakeFetch([unavailable()])
  const error = await client(once.fetch).call('POST', '/files/f-1/other').catch((err) => err)
  assert.equal(error.status, 503)
  assert.equal(once.requests.length, 1)
})

test('the caller\'s signal reaches every fetch and stops a wait at once', async () => {
  const controller = new AbortController()
  const { fetch, requests } = fakeFetch([unavailable({ 'retry-after': '10' })])
  const uploads = client(fetch, { retry: { maxDelayMs: 60_000 } })
  uploads.addEventListener('retry', () => controller.abort())
  const started = Date.now()
  const error = await uploads.complete('f-1', { signal: controller.signal }).catch((err) => err)
  assert.equal(error.code, 'aborted')
  assert.ok(Date.now() - started < 1000, 'the 10 s wait was cut short')
  assert.equal(requests[0].signal, controller.signal)

  const before = fakeFetch([])
  const aborted = AbortSignal.abort()
  const early = await client(before.fetch).getFile('f-1', { signal: aborted }).catch((err) => err)
  assert.equal(early.code, 'aborted')
  assert.equal(before.requests.length, 0)
})

test('a create whose answer never came is sent again with its key after a reload, and the upload completes', async () => {
  globalThis.XMLHttpRequest = OkXhr
  const store = new MemoryStorage()
  // GIVEN a create whose every attempt lost its answer (the service may have applied it)
  const lost = fakeFetch(Array.from({ length: 2 }, () => new TypeError('fetch failed')))
  const first = new UploadClient({ apiUrl: API, token: 't', fetch: lost.fetch, resumeStore: store, retry: { attempts: 2, baseDelayMs: 1 } })
  const error = await first.upload(file()).catch((err) => err)
  assert.equal(error.code, 'network_error')
  const key = lost.requests[0].headers['idempotency-key']

  // WHEN the page reloads and the same file is uploaded again
  const answered = fakeFetch([{ status: 201, body: PLAN }, { status: 200, body: { ...PLAN, status: 'uploaded' } }])
  const second = new UploadClient({ apiUrl: API, token: 't', fetch: answered.fetch, resumeStore: store })
  const done = await second.upload(file())

  // THEN the create carries the first key (the service answers it with the same file), and
  // nothing is left to resume
  assert.equal(done.status, 'uploaded')
  const [create, complete] = answered.requests
  assert.equal(create.url, `${API}/files`)
  assert.equal(create.headers['idempotency-key'], key)
  assert.equal(complete.url, `${API}/files/f-1/complete`)
  assert.notEqual(complete.headers['idempotency-key'], key)
  assert.equal(store.length, 0)
})

test('an upload interrupted after its create resumes from its file', async () => {
  globalThis.XMLHttpRequest = OkXhr
  const store = new MemoryStorage()
  store.setItem('upload-service:notes.txt:5:1', JSON.stringify({ fileId: 'f-1' }))
  const { fetch, requests } = fakeFetch([
    { status: 200, body: { ...PLAN, status: 'pending_upload', upload: { ...PLAN, urls: undefined } } },
    { status: 200, body: { urls: { 1: 'https://storage.example.com/put' }, expires_at: PLAN.expires_at } },
    { status: 200, body: { ...PLAN, status: 'uploaded' } },
  ])
  const done = await new UploadClient({ apiUrl: API, token: 't', fetch, resumeStore: store }).upload(file())
  assert.equal(done.status, 'uploaded')
  assert.deepEqual(requests.map((r) => `${r.method} ${r.url.slice(API.length)}`), ['GET /files/f-1', 'POST /files/f-1/parts', 'POST /files/f-1/complete'])
})

test('no part is sent once the upload is aborted, though its URL is at hand', async () => {
  const controller = new AbortController()
  const sent = []
  // Storage takes part 1, and the caller aborts as it does: between two parts.
  globalThis.XMLHttpRequest = class extends OkXhr {
    send(body) {
      sent.push(this.url)
      queueMicrotask(() => {
        this.status = 200
        this.onload()
        controller.abort()
      })
    }
  }
  const parts = { ...PLAN, upload_id: 'u-1', part_size: 2, part_count: 3, urls: ['https://storage.example.com/1', 'https://storage.example.com/2', 'https://storage.example.com/3'] }
  const { fetch } = fakeFetch([{ status: 201, body: parts }, { status: 200, body: { parts: [] } }])
  const error = await client(fetch, { concurrency: 1 }).upload(file(), { signal: controller.signal }).catch((err) => err)
  assert.equal(error.code, 'aborted')
  assert.deepEqual(sent, ['https://storage.example.com/1'])
})

/** What `run()` comes to, with setTimeout and Date faked: the clock moves on `step` ms at a time
 * while it waits (at most `limit` ms). */
async function onFakeClock(run, { step = 50, limit = 60_000 } = {}) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] })
  try {
    let outcome = null
    run().then((value) => (outcome = { value }), (error) => (outcome = { error }))
    for (let now = 0; !outcome && now <= limit; now += step) {
      // Lets the fake fetch answer and the client read it before time moves on.
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
      if (!outcome) mock.timers.tick(step)
    }
    if (!outcome) throw new Error(`not done after ${limit} ms`)
    if (outcome.error) throw outcome.error
    return outcome.value
  } finally {
    mock.timers.reset()
  }
}

const inState = (status, more = {}) => ({ status: 200, body: { ...PLAN, status, upload: null, rejection_reason: null, ...more } })

test('waitForSettled reads the file until it is verified, waiting twice as long each time up to the most', async () => {
  const { fetch, requests } = fakeFetch([...Array.from({ length: 6 }, () => inState('uploaded')), inState('verified')])
  const settled = await onFakeClock(() => client(fetch).waitForSettled('f-1'))
  assert.equal(settled.status, 'verified')
  assert.ok(requests.every((r) => r.method === 'GET' && r.url === `${API}/files/f-1`))
  const times = requests.map((r) => r.at - requests[0].at)
  // 250 ms doubled after each read, to at most 4 s
  assert.deepEqual(times, [0, 250, 750, 1750, 3750, 7750, 11750])
})

test('waitForSettled answers a rejected file with its reason, at once when it is settled', async () => {
  const { fetch, requests } = fakeFetch([inState('rejected', { rejection_reason: 'content_type_mismatch' })])
  const settled = await client(fetch).waitForSettled('f-1')
  assert.equal(settled.status, 'rejected')
  assert.equal(settled.rejection_reason, 'content_type_mismatch')
  assert.equal(requests.length, 1)
})

test('waitForSettled gives up after its timeout', async () => {
  const { fetch, requests } = fakeFetch(Array.from({ length: 10 }, () => inState('uploaded')))
  const error = await onFakeClock(() => client(fetch).waitForSettled('f-1', { timeoutMs: 1000 })).catch((err) => err)
  assert.ok(error instanceof UploadError)
  assert.equal(error.code, 'timeout')
  // the last wait is cut to the deadline, where the file is read once more
  assert.deepEqual(requests.map((r) => r.at - requests[0].at), [0, 250, 750, 1000])
})

test('waitForSettled stops at once when its signal aborts, and its reads are retried as any GET', async () => {
  const controller = new AbortController()
  const { fetch, requests } = fakeFetch([
    unavailable(),
    () => {
      setTimeout(() => controller.abort(), 10)
      return inState('uploaded')
    },
  ])
  const started = Date.now()
  const error = await client(fetch).waitForSettled('f-1', { signal: controller.signal, intervalMs: 10_000 }).catch((err) => err)
  assert.equal(error.code, 'aborted')
  assert.ok(Date.now() - started < 1000, 'the 10 s wait was cut short')
  assert.equal(requests.length, 2)
})

test('sizes read in binary units', () => {
  assert.equal(formatBytes(0), '0 B')
  assert.equal(formatBytes(12), '12 B')
  assert.equal(formatBytes(1023), '1023 B')
  assert.equal(formatBytes(1024), '1 KiB')
  assert.equal(formatBytes(1536), '1.5 KiB')
  assert.equal(formatBytes(1024 * 1024 - 50), '1 MiB')
  assert.equal(formatBytes(125829120), '120 MiB')
  assert.equal(formatBytes(5.25 * 2 ** 30), '5.3 GiB')
  assert.equal(formatBytes(2 ** 50), '1024 TiB')
})

test('Retry-After reads seconds and HTTP dates', () => {
  assert.equal(parseRetryAfter('3'), 3000)
  assert.equal(parseRetryAfter(null), null)
  assert.equal(parseRetryAfter('soon'), null)
  const inTwo = new Date(Date.now() + 2000).toUTCString()
  assert.ok(Math.abs(parseRetryAfter(inTwo) - 2000) <= 1000)
})

// --- part checksums (API v1.2) -----------------------------------------------------------

const sha256 = async (blob) => createHash('sha256').update(Buffer.from(await blob.arrayBuffer())).digest('base64')
const text = async (blob) => Buffer.from(await blob.arrayBuffer()).toString()

/** A multipart plan with part checksums: no URL, each part's is asked for with its SHA-256. */
const CHECKED = {
  ...PLAN,
  upload_id: 'u-1',
  part_size: 8,
  part_count: 3,
  urls: [],
  headers: { 'x-plan-header': 'sent with every part' },
  part_checksums: 'sha256',
}
const parts = () => new File(['part one', 'part two', 'three'], 'parts.txt', { type: 'text/plain', lastModified: 1 })

/** A fake service: `route(method, path, body)` answers each request ({status, body}); every
 * request is recorded with its JSON body. `POST …/parts` is answered as the service does, a URL
 * per part and, for each checksum given, the header to send it with. */
function service(route) {
  const requests = []
  const fetch = async (url, init) => {
    const path = url.slice(API.length)
    const body = init.body === undefined ? undefined : JSON.parse(init.body)
    requests.push({ method: init.method, path, body })
    let answer = route(init.method, path, body)
    if (!answer && init.method === 'POST' && /^\/files\/[^/]+\/parts$/.test(path)) {
      const numbers = body.checksums ? Object.keys(body.checksums) : body.part_numbers.map(String)
      answer = {
        status: 200,
        body: {
          urls: Object.fromEntries(numbers.map((n) => [n, `https://storage.example.com/put?partNumber=${n}`])),
          headers: Object.fromEntries(Object.entries(body.checksums ?? {}).map(([n, sum]) => [n, { 'x-amz-checksum-sha256': sum }])),
          expires_at: PLAN.expires_at,
        },
      }
    }
    if (!answer) throw new Error(`unexpected request ${init.method} ${path}`)
    return new Response(JSON.stringify(answer.body), { status: answer.status })
  }
  return { fetch, requests, signed: () => requests.filter((r) => r.path.endsWith('/parts') && r.method === 'POST') }
}

const BAD_DIGEST = '<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>'

/** Storage's side of the PUTs: each is recorded (its part number, headers and body) and answered
 * with the status `answer` gives it (200 by default; a 400 is S3's BadDigest). */
function storage(answer = () => 200) {
  const puts = []
  globalThis.XMLHttpRequest = class {
    upload = {}
    headers = {}
    open(method, url) { this.url = url }
    setRequestHeader(name, value) { this.headers[name] = value }
    abort() { this.onabort?.() }
    send(body) {
      const put = { url: this.url, part: new URL(this.url).searchParams.get('partNumber'), headers: this.headers, body }
      puts.push(put)
      queueMicrotask(() => {
        this.status = answer(put, puts)
        this.responseText = this.status === 400 ? BAD_DIGEST : ''
        this.onload()
      })
    }
  }
  return puts
}

const completeRequests = (requests) => requests.filter((r) => r.path.endsWith('/complete'))

test('every part is signed for its SHA-256 and sent with the plan\'s headers and its own', async () => {
  const puts = storage()
  const { fetch, requests, signed } = service((method, path) => {
    if (path === '/files') return { status: 201, body: CHECKED }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...CHECKED, status: 'uploaded' } }
  })
  const file = parts()
  const done = await client(fetch, { hasher: () => assert.fail('a small file is hashed before create') }).upload(file)
  assert.equal(done.status, 'uploaded')
  assert.deepEqual(requests.filter((r) => r.method === 'GET'), [], 'a plan just created has no stored part to ask for')

  const [create] = requests
  assert.equal(create.body.part_checksums, 'sha256')
  assert.equal(create.body.sha256, await sha256(file))
  const sums = Object.assign({}, ...signed().map((r) => r.body.checksums))
  const expected = {}
  for (const n of [1, 2, 3]) expected[n] = await sha256(file.slice((n - 1) * 8, n * 8))
  assert.deepEqual(sums, expected)
  assert.ok(signed().every((r) => r.body.part_numbers === undefined))
  assert.equal(puts.length, 3)
  for (const put of puts) {
    assert.deepEqual(put.headers, { 'x-plan-header': 'sent with every part', 'x-amz-checksum-sha256': expected[put.part] })
    assert.equal(await text(put.body), ['part one', 'part two', 'three'][put.part - 1])
  }
  // Declared at create: complete carries no digest.
  assert.deepEqual(completeRequests(requests).map((r) => r.body), [undefined])
})

test('a part storage refuses for its checksum is read again from the file and resent to its URL', async () => {
  const puts = storage((put, all) => (put.part === '2' && all.filter((p) => p.part === '2').length === 1 ? 400 : 200))
  const { fetch, signed } = service((method, path) => {
    if (path === '/files') return { status: 201, body: CHECKED }
    if (method === 'GET') return { status: 200, body: { parts: [] } }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...CHECKED, status: 'uploaded' } }
  })
  const file = parts()
  const done = await client(fetch).upload(file)
  assert.equal(done.status, 'uploaded')
  const second = puts.filter((p) => p.part === '2')
  assert.equal(second.length, 2, 'part 2 sent again')
  assert.equal(second[1].url, second[0].url, 'to the URL signed for its SHA-256')
  assert.notEqual(second[1].body, second[0].body, 'read again from the file')
  assert.equal(await text(second[1].body), 'part two')
  assert.equal(signed().flatMap((r) => Object.keys(r.body.checksums)).length, 3, 'each part signed once')

  // Refused on every attempt (the file changed since it was hashed): the error, after three.
  const refused = storage((put) => (put.part === '3' ? 400 : 200))
  const error = await client(service((method, path) => {
    if (path === '/files') return { status: 201, body: CHECKED }
    if (method === 'GET') return { status: 200, body: { parts: [] } }
  }).fetch).upload(parts()).catch((err) => err)
  assert.equal(error.code, 'storage_error')
  assert.match(error.message, /400 BadDigest/)
  assert.equal(refused.filter((p) => p.part === '3').length, 3)
})

test('a file too large to hash before create declares the hasher\'s SHA-256 at complete', async () => {
  storage()
  const big = new File([new Uint8Array(SHA256_MAX_BYTES + 1)], 'big.bin', { lastModified: 1 })
  const plan = { ...CHECKED, part_size: 32 * 1024 * 1024, part_count: 3 }
  const { fetch, requests, signed } = service((method, path) => {
    if (path === '/files') return { status: 201, body: plan }
    if (method === 'GET') return { status: 200, body: { parts: [] } }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...plan, status: 'uploaded' } }
  })
  const hashed = []
  const hasher = async (file, { signal }) => {
    hashed.push(file)
    assert.equal(signal.aborted, false)
    return 'd2hvbGUgZmlsZQ=='
  }
  await client(fetch, { hasher }).upload(big)
  assert.deepEqual(hashed, [big], 'the whole file, hashed once')
  assert.equal(requests[0].body.sha256, undefined)
  assert.equal(requests[0].body.part_checksums, 'sha256')
  assert.deepEqual(signed().flatMap((r) => Object.keys(r.body.checksums)).sort(), ['1', '2', '3'])
  assert.deepEqual(completeRequests(requests).map((r) => r.body), [{ sha256: 'd2hvbGUgZmlsZQ==' }])
})

test('a single PUT with part checksums is signed for the whole file\'s SHA-256', async () => {
  const single = { ...PLAN, urls: [], part_checksums: 'sha256' }
  const route = (method, path) => {
    if (path === '/files') return { status: 201, body: single }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...single, status: 'uploaded' } }
  }
  // Declared at create (WebCrypto)
  let puts = storage()
  let { fetch, requests, signed } = service(route)
  const small = file()
  await client(fetch).upload(small)
  const digest = await sha256(small)
  assert.deepEqual(signed().map((r) => r.body), [{ checksums: { 1: digest } }])
  assert.deepEqual(puts[0].headers, { 'content-type': 'text/plain', 'x-amz-checksum-sha256': digest })
  assert.equal(puts[0].body, small)
  assert.deepEqual(completeRequests(requests).map((r) => r.body), [undefined])

  // Too large for that: the hasher's, and storage checked it, so complete carries none.
  puts = storage()
  ;({ fetch, requests, signed } = service(route))
  const big = new File([new Uint8Array(SHA256_MAX_BYTES + 1)], 'big.bin', { lastModified: 1 })
  await client(fetch, { hasher: async () => 'd2hvbGUgZmlsZQ==' }).upload(big)
  assert.deepEqual(signed().map((r) => r.body), [{ checksums: { 1: 'd2hvbGUgZmlsZQ==' } }])
  assert.equal(puts[0].headers['x-amz-checksum-sha256'], 'd2hvbGUgZmlsZQ==')
  assert.deepEqual(completeRequests(requests).map((r) => r.body), [undefined])
})

test('an upload with part checksums resumed after a reload hashes what is left, and the whole file again', async () => {
  const puts = storage()
  const store = new MemoryStorage()
  const big = new File([new Uint8Array(SHA256_MAX_BYTES + 1)], 'big.bin', { lastModified: 1 })
  store.setItem(`upload-service:big.bin:${big.size}:1`, JSON.stringify({ fileId: 'f-1' }))
  const half = 32 * 1024 * 1024
  const plan = { ...CHECKED, part_size: half, part_count: 3 }
  const { fetch, requests, signed } = service((method, path) => {
    if (method === 'GET' && path === '/files/f-1') return { status: 200, body: { ...plan, status: 'pending_upload', upload: plan } }
    if (method === 'GET' && path === '/files/f-1/parts') {
      return { status: 200, body: { parts: [1, 2].map((n) => ({ part_number: n, size: half, etag: `"${n}"` })) } }
    }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...plan, status: 'uploaded' } }
  })
  const hashed = []
  const uploads = new UploadClient({ apiUrl: API, token: 't', fetch, resumeStore: store, hasher: async (file) => hashed.push(file) && 'YWdhaW4=' })
  await uploads.upload(big)
  assert.deepEqual(signed().map((r) => r.body), [{ checksums: { 3: await sha256(big.slice(2 * half)) } }])
  assert.deepEqual(puts.map((p) => p.part), ['3'])
  assert.deepEqual(hashed, [big])
  assert.deepEqual(completeRequests(requests).map((r) => r.body), [{ sha256: 'YWdhaW4=' }])
})

test('without a worker to hash a large file, the upload fails with hash_error and is not completed', async () => {
  storage()
  const big = new File([new Uint8Array(SHA256_MAX_BYTES + 1)], 'big.bin', { lastModified: 1 })
  const plan = { ...CHECKED, part_size: 32 * 1024 * 1024, part_count: 3 }
  const { fetch, requests } = service((method, path) => {
    if (path === '/files') return { status: 201, body: plan }
  })
  // Node has no Worker: the default hasher cannot start one.
  assert.equal(globalThis.Worker, undefined)
  const error = await client(fetch).upload(big).catch((err) => err)
  assert.ok(error instanceof UploadError)
  assert.equal(error.code, 'hash_error')
  assert.deepEqual(completeRequests(requests), [], 'not completed without its digest')
})

test('a hasher that fails stops the upload at once: no part is sent for nothing', async () => {
  const puts = storage()
  const big = new File([new Uint8Array(SHA256_MAX_BYTES + 1)], 'big.bin', { lastModified: 1 })
  const plan = { ...CHECKED, part_size: 32 * 1024 * 1024, part_count: 3 }
  const { fetch, requests } = service((method, path) => {
    if (path === '/files') return { status: 201, body: plan }
    if (path === '/files/f-1/complete') return { status: 200, body: { ...plan, status: 'uploaded' } }
  })
  const hasher = async () => {
    throw new UploadError('hash_error', 'the worker could not read the file')
  }
  const error = await client(fetch, { hasher }).upload(big).catch((err) => err)
  assert.ok(error instanceof UploadError)
  assert.equal(error.code, 'hash_error', error.message)
  assert.deepEqual(puts, [], 'no part was sent')
  assert.deepEqual(completeRequests(requests), [])
})
