// @ts-check
// The upload service's browser client: an ES module, no build step, no dependency.
//
//   import { UploadClient } from './upload-client.js'
//   const client = new UploadClient({ apiUrl: 'https://api.example.com/v1/projects/p1', token })
//   const file = await client.upload(input.files[0], {
//     metadata: { album: 'summer' },
//     onProgress: ({ loaded, total }) => console.log(loaded, total),
//   })
//   console.log(file.file_id, file.status)   // 'uploaded'; the service verifies it next
//   const settled = await client.waitForSettled(file.file_id)   // 'verified', or 'rejected' and why
//
// What it takes care of, so that callers cannot get it wrong: the SHA-256 is declared (WebCrypto,
// files up to SHA256_MAX_BYTES), every PUT carries exactly the headers the service signed, parts
// go up in parallel with progress, part URLs are asked for in batches as they are needed and
// again when they expire, an upload interrupted by a reload resumes from the parts storage has
// (GET …/parts), and complete needs no ETags. Every failure is an UploadError carrying the
// contract's error code.
//
// Calls survive what the service tells them: every call that changes something carries an
// Idempotency-Key, one per operation and the same on each of its retries, so a retried create
// whose first answer was lost gets that answer instead of making a second file (the key of a
// create is remembered with the file, so this holds across a reload too). 503, 429, a key still
// in use and network failures are retried with jittered exponential backoff, waiting what
// Retry-After says when it says, within `retry` (attempts, and the longest wait). The caller's
// `signal` stops every request and every wait.

/** Files up to this size are declared with their SHA-256, which the service then checks. WebCrypto
 * has no streaming digest: it holds the whole file in memory, and 120 MiB took the upload to
 * 0.64× of curl's pace on loopback (bench 12a). A larger file is declared by size and type,
 * which verify checks, its parts each signed for their exact length. */
export const SHA256_MAX_BYTES = 64 * 1024 * 1024

/** Part URLs asked for at once: the service hands out at most 100 per call. */
const PART_URL_BATCH = 100
/** A URL this close to its expiry is not used: a part may take a while to send. */
const EXPIRY_MARGIN_MS = 60_000
const RESUME_PREFIX = 'upload-service:'

/** The most a direct upload may carry in any deployment (docs/API.md, direct upload). */
export const DIRECT_UPLOAD_MAX_BYTES = 4 * 1024 * 1024

/**
 * How calls to the API are retried: `attempts` in all, waiting `baseDelayMs` doubled after each
 * (with jitter), or what Retry-After says; a wait above `maxDelayMs` is not made, and the error
 * is the answer.
 * @typedef {{ attempts: number, baseDelayMs: number, maxDelayMs: number }} RetryPolicy
 */

/** @type {RetryPolicy} */
export const DEFAULT_RETRY = { attempts: 5, baseDelayMs: 250, maxDelayMs: 20_000 }

/**
 * One entry of an error's `details` (docs/API.md, Errors).
 * @typedef {{ field?: string, reason?: string, message: string, part_numbers?: number[] }} ErrorDetail
 */

/**
 * The upload plan of a created or reuploaded file (docs/API.md, create): one URL, or the first
 * batch of part URLs and the part layout.
 * @typedef {{
 *   file_id: string, status: string, s3_key: string, upload_id: string | null,
 *   part_size: number, part_count: number, urls?: string[], headers: Record<string, string>,
 *   expires_at: string, deduplicated?: boolean
 * }} UploadPlan
 */

/**
 * The file resource (docs/API.md, the file resource); `upload` is its upload in progress.
 * @typedef {{
 *   file_id: string, status: 'pending_upload' | 'uploaded' | 'verified' | 'rejected',
 *   file_name: string, file_size: number, content_type: string,
 *   metadata: Record<string, string>, rejection_reason?: string | null,
 *   upload?: UploadPlan | null, deduplicated?: boolean
 * }} FileResource
 */

/**
 * A file's parts that storage has.
 * @typedef {{ part_number: number, size: number, etag: string }} StoredPart
 */

/** A failed call: `code` is the contract's (`validation_error`, `forbidden`, …), or
 * `network_error`, `storage_error`, `aborted` or `timeout` for failures outside the API. */
export class UploadError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ status?: number, details?: ErrorDetail[], requestId?: string | null }} [more]
   */
  constructor(code, message, { status = 0, details = [], requestId = null } = {}) {
    super(message)
    this.name = 'UploadError'
    this.code = code
    this.status = status
    this.details = details
    this.requestId = requestId
  }
}

export class UploadClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.apiUrl   the project's base URL: `…/v1/projects/{project_id}`
   * @param {string | (() => Promise<string>)} options.token  an upload token (`upt_…`), or a
   *   function that fetches one from the application's backend; never an API key in a browser
   * @param {number} [options.concurrency]  parts in flight at once
   * @param {Storage | null} [options.resumeStore]  where interrupted uploads are remembered
   * @param {Partial<RetryPolicy>} [options.retry]  how calls are retried ({@link DEFAULT_RETRY})
   * @param {typeof fetch} [options.fetch]  the `fetch` to call the API with (tests pass a fake)
   */
  constructor({
    apiUrl,
    token,
    concurrency = 4,
    resumeStore = globalThis.localStorage ?? null,
    retry = {},
    fetch = globalThis.fetch.bind(globalThis),
  }) {
    super()
    this.apiUrl = apiUrl.replace(/\/+$/, '')
    this.token = token
    this.concurrency = concurrency
    this.resumeStore = resumeStore
    /** @type {RetryPolicy} */
    this.retry = { ...DEFAULT_RETRY, ...retry }
    this.fetch = fetch
  }

  // --- the API --------------------------------------------------------------------------

  /**
   * One call of the API, retried as `retry` says when the answer or its absence is worth it. A
   * call is retried only if a repeat cannot apply twice: a GET, a call with an
   * `idempotencyKey` (sent as Idempotency-Key, the same on every attempt), or one marked
   * `safe` (signing part URLs changes nothing).
   * @param {string} method
   * @param {string} path  below the project's URL
   * @param {{ json?: unknown, form?: FormData, idempotencyKey?: string, safe?: boolean,
   *   signal?: AbortSignal }} [options]
   * @returns {Promise<any>}  the answer's JSON (`null` for 204)
   */
  async call(method, path, { json, form, idempotencyKey, safe = false, signal } = {}) {
    const mayRetry = method === 'GET' || idempotencyKey !== undefined || safe
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal)
      const token = typeof this.token === 'function' ? await this.token() : this.token
      /** @type {Record<string, string>} */
      const headers = { authorization: `Bearer ${token}` }
      if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey
      let body
      if (json !== undefined) {
        headers['content-type'] = 'application/json'
        body = JSON.stringify(json)
      } else if (form !== undefined) {
        body = form
      }
      /** @type {UploadError} */
      let failure
      /** @type {number | null} */
      let retryAfterMs = null
      try {
        const response = await this.fetch(`${this.apiUrl}${path}`, { method, headers, body, signal })
        const answer = await readAnswer(response)
        if (response.ok) return answer
        const error = answer?.error ?? {}
        failure = new UploadError(error.code ?? 'http_error', error.message ?? `${method} ${path}: ${response.status}`, {
          status: response.status,
          details: error.details ?? [],
          requestId: answer?.request_id ?? response.headers.get('x-request-id'),
        })
        retryAfterMs = parseRetryAfter(response.headers.get('retry-after'))
      } catch (err) {
        throwIfAborted(signal)
        failure = new UploadError('network_error', `${method} ${path}: ${err instanceof Error ? err.message : err}`)
      }
      const delay = retryAfterMs ?? backoff(this.retry, attempt)
      if (!mayRetry || !worthRetrying(failure) || attempt >= this.retry.attempts || delay > this.retry.maxDelayMs) {
        throw failure
      }
      this.dispatchEvent(new CustomEvent('retry', { detail: { method, path, attempt, delayMs: delay, error: failure } }))
      await sleep(delay, signal)
    }
  }

  /**
   * Declares `file`: its upload plan (201), or the verified file with the same content.
   * @param {Blob & { name?: string }} file
   * @param {{ metadata?: Record<string, string>, fileName?: string, idempotencyKey?: string,
   *   signal?: AbortSignal }} [options]  `idempotencyKey` defaults to a fresh one
   * @returns {Promise<UploadPlan | FileResource>}
   */
  async create(file, { metadata = {}, fileName = file.name ?? 'file', idempotencyKey = newKey(), signal } = {}) {
    /** @type {Record<string, unknown>} */
    const declaration = {
      file_name: fileName,
      file_size: file.size,
      content_type: file.type || 'application/octet-stream',
      metadata,
    }
    if (file.size <= SHA256_MAX_BYTES) declaration.sha256 = await sha256Base64(file)
    return this.call('POST', '/files', { json: declaration, idempotencyKey, signal })
  }

  /**
   * @param {string} fileId
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<FileResource>}
   */
  getFile(fileId, { signal } = {}) {
    return this.call('GET', `/files/${fileId}`, { signal })
  }

  /**
   * The file once the service has settled it (`verified`, or `rejected` with its
   * `rejection_reason`): read at once, then again after `intervalMs`, the wait doubling up to
   * `maxIntervalMs`; each read is retried as `retry` says. Fails with `timeout` when the file is
   * not settled within `timeoutMs` (10 minutes by default: a large file is verified in steps, and
   * one of more than 100 parts is first assembled, which storage may take minutes over), and with
   * `aborted` when `signal` aborts.
   * @param {string} fileId
   * @param {{ signal?: AbortSignal, timeoutMs?: number, intervalMs?: number,
   *   maxIntervalMs?: number }} [options]
   * @returns {Promise<FileResource>}
   */
  async waitForSettled(fileId, { signal, timeoutMs = 600_000, intervalMs = 250, maxIntervalMs = 4000 } = {}) {
    const deadline = Date.now() + timeoutMs
    for (let wait = intervalMs; ; wait = Math.min(wait * 2, maxIntervalMs)) {
      const file = await this.getFile(fileId, { signal })
      if (isSettled(file)) return file
      const left = deadline - Date.now()
      if (left <= 0) throw new UploadError('timeout', `file ${fileId} is still ${file.status} after ${timeoutMs} ms`)
      await sleep(Math.min(wait, left), signal)
    }
  }

  /**
   * Marks the upload done; the service lists (and for multipart assembles) the parts itself.
   * @param {string} fileId
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<FileResource>}
   */
  complete(fileId, { signal } = {}) {
    return this.call('POST', `/files/${fileId}/complete`, { idempotencyKey: newKey(), signal })
  }

  /**
   * Aborts the upload in progress and forgets it here.
   * @param {string} fileId
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<FileResource>}
   */
  async abort(fileId, { signal } = {}) {
    this.#forget(fileId)
    return this.call('DELETE', `/files/${fileId}/upload`, { idempotencyKey: newKey(), signal })
  }

  /**
   * The parts storage already has.
   * @param {string} fileId
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<StoredPart[]>}
   */
  async storedParts(fileId, { signal } = {}) {
    return (await this.call('GET', `/files/${fileId}/parts`, { signal })).parts
  }

  /**
   * Fresh URLs for `partNumbers` (at most 100).
   * @param {string} fileId
   * @param {number[]} partNumbers
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {Promise<{ urls: Record<string, string>, expires_at: string }>}
   */
  signParts(fileId, partNumbers, { signal } = {}) {
    return this.call('POST', `/files/${fileId}/parts`, { json: { part_numbers: partNumbers }, safe: true, signal })
  }

  /**
   * Small files (at most 4 MiB in all) in one form: `{files: [file resource, …]}`. Larger forms
   * are refused here, before sending: between about 4.6 and 10 MB API Gateway answers with a
   * bodiless error of its own (the base64 body passes Lambda's 6 MB payload), not the service's
   * 413.
   */
  /**
   * @param {(Blob & { name: string })[]} files
   * @param {{ name?: string, metadata?: Record<string, string>, signal?: AbortSignal }} [options]
   * @returns {Promise<{ files: FileResource[] }>}
   */
  directUpload(files, { name, metadata, signal } = {}) {
    const total = files.reduce((sum, file) => sum + file.size, 0)
    if (total > DIRECT_UPLOAD_MAX_BYTES) {
      return Promise.reject(new UploadError('payload_too_large',
        `the files come to ${total} bytes; a direct upload takes at most ${DIRECT_UPLOAD_MAX_BYTES}: use create and a presigned PUT`,
        { status: 413, details: [{ field: 'body', message: `must be at most ${DIRECT_UPLOAD_MAX_BYTES} bytes` }] }))
    }
    const form = new FormData()
    for (const file of files) form.append('file', file, file.name)
    if (name !== undefined) form.append('name', name)
    if (metadata !== undefined) form.append('meta', JSON.stringify(metadata))
    return this.call('POST', '/uploads', { form, idempotencyKey: newKey(), signal })
  }

  // --- uploading ------------------------------------------------------------------------

  /**
   * Uploads `file` and completes it: the file resource (`uploaded`, or already settled). An
   * upload of the same file interrupted earlier (a reload, a lost connection) is resumed: only
   * the parts storage does not have are sent. A create sent before the interruption is sent
   * again with its Idempotency-Key, so its file is found rather than made twice.
   * @param {File} file
   * @param {{ metadata?: Record<string, string>, signal?: AbortSignal,
   *   onProgress?: (progress: { fileId: string, loaded: number, total: number }) => void }} [options]
   * @returns {Promise<FileResource | UploadPlan>}
   */
  async upload(file, { metadata = {}, signal, onProgress } = {}) {
    const resumed = await this.#resumable(file, signal)
    let fileId
    let plan
    if (resumed?.plan) {
      ;({ fileId, plan } = resumed)
    } else {
      const idempotencyKey = resumed?.createKey ?? newKey()
      this.#remember(file, { createKey: idempotencyKey })
      const created = await this.create(file, { metadata, idempotencyKey, signal })
      if (created.deduplicated) {
        this.#forgetFile(file)
        return created
      }
      fileId = created.file_id
      plan = /** @type {UploadPlan} */ (created)
      this.#remember(file, { fileId })
    }
    this.dispatchEvent(new CustomEvent('started', { detail: { fileId, file, resumed: Boolean(resumed) } }))
    const progress = new Progress(this, fileId, file.size, onProgress)
    if (plan.upload_id == null) {
      await this.#putWhole(fileId, plan, file, progress, signal)
    } else {
      await this.uploadParts(fileId, plan, file, { progress, signal })
    }
    const done = await this.complete(fileId, { signal })
    this.#forget(fileId)
    return done
  }

  /**
   * Sends the parts of `plan` storage does not have yet, `concurrency` at a time.
   * @param {string} fileId
   * @param {UploadPlan} plan
   * @param {Blob} file
   * @param {{ progress?: Progress, signal?: AbortSignal, stored?: StoredPart[] | null }} [options]
   */
  async uploadParts(fileId, plan, file, { progress = new Progress(this, fileId, file.size), signal, stored = null } = {}) {
    const have = new Map()
    for (const part of stored ?? (await this.storedParts(fileId, { signal }))) have.set(part.part_number, part.size)
    const size = (n) => Math.min(plan.part_size, file.size - (n - 1) * plan.part_size)
    const missing = []
    for (let n = 1; n <= plan.part_count; n++) {
      if (have.get(n) === size(n)) progress.add(n, size(n))
      else missing.push(n)
    }
    const urls = new PartUrls(this, fileId, missing, plan, signal)
    let next = 0
    const worker = async () => {
      while (next < missing.length) {
        const n = missing[next++]
        const start = (n - 1) * plan.part_size
        await this.#putPart(urls, n, file.slice(start, start + size(n)), progress, signal)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, missing.length) }, worker))
  }

  async #putWhole(fileId, plan, file, progress, signal) {
    // A resumed upload's plan (the file's `upload`) carries no URL: a fresh one is signed.
    let url = plan.urls?.[0] ?? (await this.signParts(fileId, [1], { signal })).urls['1']
    for (let attempt = 1; ; attempt++) {
      try {
        return await put(url, file, plan.headers, (loaded) => progress.set(1, loaded), signal)
      } catch (err) {
        if (attempt >= 3 || !retryable(err)) throw err
        // An expired URL, or a lost connection: a fresh URL signed for the same content.
        url = (await this.signParts(fileId, [1], { signal })).urls['1']
      }
    }
  }

  async #putPart(urls, n, blob, progress, signal) {
    for (let attempt = 1; ; attempt++) {
      const url = await urls.get(n)
      try {
        await put(url, blob, {}, (loaded) => progress.set(n, loaded), signal)
        return
      } catch (err) {
        if (attempt >= 3 || !retryable(err)) throw err
        urls.discard(n)
      }
    }
  }

  // --- resuming after a reload ------------------------------------------------------------

  /** @param {File} file */
  #key(file) {
    return `${RESUME_PREFIX}${file.name}:${file.size}:${file.lastModified}`
  }

  /**
   * What is known of `file`'s upload: the key of its create, sent or about to be, and then
   * its file's id.
   * @param {File} file
   * @param {{ createKey?: string, fileId?: string }} state
   */
  #remember(file, state) {
    this.resumeStore?.setItem(this.#key(file), JSON.stringify(state))
  }

  /** @param {File} file */
  #forgetFile(file) {
    this.resumeStore?.removeItem(this.#key(file))
  }

  /** @param {string} fileId */
  #forget(fileId) {
    const store = this.resumeStore
    if (!store) return
    for (let i = store.length - 1; i >= 0; i--) {
      const key = store.key(i)
      if (key?.startsWith(RESUME_PREFIX) && readState(store.getItem(key)).fileId === fileId) store.removeItem(key)
    }
  }

  /**
   * The upload of `file` started earlier: its file and plan when still in progress, or the key
   * of a create whose answer never came.
   * @param {File} file
   * @param {AbortSignal} [signal]
   * @returns {Promise<{ fileId?: string, plan?: UploadPlan, createKey?: string } | null>}
   */
  async #resumable(file, signal) {
    const { fileId, createKey } = readState(this.resumeStore?.getItem(this.#key(file)) ?? null)
    if (createKey && !fileId) return { createKey }
    if (!fileId) return null
    try {
      const found = await this.getFile(fileId, { signal })
      if (found.status === 'pending_upload' && found.upload) return { fileId, plan: found.upload }
    } catch (err) {
      if (!(err instanceof UploadError) || err.status >= 500 || err.code === 'network_error' || err.code === 'aborted') throw err
    }
    this.#forget(fileId)
    return null
  }
}

/**
 * Whether the service has decided on `file`: `verified` or `rejected`, which only a new upload of
 * the file changes.
 * @param {{ status: string }} file
 */
export function isSettled(file) {
  return file.status === 'verified' || file.status === 'rejected'
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB']

/**
 * A size for people, in binary units with at most one decimal: `12 B`, `1.5 KiB`, `120 MiB`.
 * @param {number} bytes
 */
export function formatBytes(bytes) {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  const rounded = Math.round(value * 10) / 10
  // 1023.96 KiB rounds to the next unit.
  if (rounded >= 1024 && unit < BINARY_UNITS.length - 1) return `1 ${BINARY_UNITS[unit + 1]}`
  return `${rounded} ${BINARY_UNITS[unit]}`
}

/**
 * A remembered upload's state; an entry of an older client (the file id alone) reads as one.
 * @param {string | null} text
 * @returns {{ createKey?: string, fileId?: string }}
 */
function readState(text) {
  if (!text) return {}
  try {
    const state = JSON.parse(text)
    if (state && typeof state === 'object') return state
  } catch {
    // The file id alone.
  }
  return { fileId: text }
}

/** A fresh Idempotency-Key: one per operation, reused on its retries. */
function newKey() {
  return crypto.randomUUID()
}

/**
 * The answer's JSON, or `null` (204, or not the service's answer: a proxy's error page).
 * @param {Response} response
 */
async function readAnswer(response) {
  if (response.status === 204) return null
  const text = await response.text()
  try {
    return text ? JSON.parse(text) : null
  } catch {
    return null
  }
}

/**
 * Whether a call that failed so may be answered otherwise if sent again: the service or a
 * dependency unavailable (503), throttled (429), the same key's first attempt still running
 * (409 `idempotency_key_in_use`), or no answer at all.
 * @param {UploadError} error
 */
function worthRetrying(error) {
  return (
    error.code === 'network_error' ||
    error.status === 503 ||
    error.status === 429 ||
    error.code === 'idempotency_key_in_use'
  )
}

/**
 * Retry-After as milliseconds: seconds, or an HTTP date.
 * @param {string | null} value
 * @returns {number | null}
 */
export function parseRetryAfter(value) {
  if (value == null || value.trim() === '') return null
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now())
}

/**
 * The wait before attempt `attempt + 1`: `baseDelayMs` doubled per attempt, up to `maxDelayMs`,
 * with full jitter so that clients failed together do not come back together.
 * @param {RetryPolicy} retry
 * @param {number} attempt
 */
function backoff(retry, attempt) {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1))
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2)
}

/**
 * Waits `ms`, or until `signal` aborts (then fails with `aborted`).
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', aborted)
      resolve()
    }
    function aborted() {
      clearTimeout(timer)
      reject(abortError())
    }
    signal?.addEventListener('abort', aborted, { once: true })
    if (signal?.aborted) aborted()
  })
}

/** @param {AbortSignal} [signal] */
function throwIfAborted(signal) {
  if (signal?.aborted) throw abortError()
}

function abortError() {
  return new UploadError('aborted', 'the upload was aborted')
}

/** Part URLs, asked for in batches of up to 100 as the parts need them, and again near expiry. */
class PartUrls {
  /**
   * @param {UploadClient} client
   * @param {string} fileId
   * @param {number[]} wanted
   * @param {UploadPlan} plan
   * @param {AbortSignal} [signal]
   */
  constructor(client, fileId, wanted, plan, signal) {
    this.client = client
    this.fileId = fileId
    this.signal = signal
    this.wanted = wanted
    this.urls = new Map()
    this.pending = new Map()
    const expiresAt = Date.parse(plan.expires_at)
    plan.urls?.forEach((url, i) => this.urls.set(i + 1, { url, expiresAt }))
  }

  async get(n) {
    const known = this.urls.get(n)
    if (known && known.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return known.url
    if (!this.pending.has(n)) {
      const from = Math.max(0, this.wanted.indexOf(n))
      const batch = this.wanted.slice(from, from + PART_URL_BATCH).filter((m) => !this.pending.has(m))
      const signing = this.client.signParts(this.fileId, batch, { signal: this.signal }).then(({ urls, expires_at }) => {
        const expiresAt = Date.parse(expires_at)
        for (const [m, url] of Object.entries(urls)) this.urls.set(Number(m), { url, expiresAt })
      })
      for (const m of batch) this.pending.set(m, signing)
      signing.finally(() => batch.forEach((m) => this.pending.delete(m))).catch(() => {})
    }
    await this.pending.get(n)
    return this.urls.get(n).url
  }

  discard(n) {
    this.urls.delete(n)
  }
}

/** Bytes sent per part, summed into `progress` events on the client. */
class Progress {
  constructor(client, fileId, total, onProgress) {
    this.client = client
    this.fileId = fileId
    this.total = total
    this.onProgress = onProgress
    this.parts = new Map()
  }

  add(n, bytes) {
    this.set(n, bytes)
  }

  set(n, loaded) {
    this.parts.set(n, loaded)
    let sum = 0
    for (const bytes of this.parts.values()) sum += bytes
    const detail = { fileId: this.fileId, loaded: Math.min(sum, this.total), total: this.total }
    this.onProgress?.(detail)
    this.client.dispatchEvent(new CustomEvent('progress', { detail }))
  }
}

const BROWSER_SET_HEADERS = new Set(['content-length', 'host'])

/** PUTs `body` to a presigned `url` with exactly `headers`, reporting bytes sent. XHR, because
 * fetch reports no upload progress. Once `signal` has aborted no PUT starts: the abort stops
 * the PUTs in flight, and a part whose turn comes after must not go out. */
function put(url, body, headers, onProgress, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError())
      return
    }
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', url)
    for (const [name, value] of Object.entries(headers ?? {})) {
      // The browser sets Content-Length itself (from the body), and refuses a script's.
      if (!BROWSER_SET_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value)
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded)
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size)
        resolve()
      } else {
        const code = /<Code>([^<]+)<\/Code>/.exec(xhr.responseText ?? '')?.[1] ?? 'storage_error'
        reject(new UploadError('storage_error', `storage refused the PUT: ${xhr.status} ${code}`, { status: xhr.status, details: [{ reason: code, message: `storage answered ${xhr.status}` }] }))
      }
    }
    xhr.onerror = () => reject(new UploadError('network_error', 'the PUT to storage failed'))
    xhr.onabort = () => reject(abortError())
    signal?.addEventListener('abort', () => xhr.abort(), { once: true })
    xhr.send(body)
  })
}

/** Worth another attempt: a lost connection, storage's 5xx, or an expired URL (403). */
function retryable(err) {
  return err.code === 'network_error' || err.status >= 500 || (err.status === 403 && /expired|AccessDenied/i.test(err.message))
}

async function sha256Base64(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
  let binary = ''
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte)
  return btoa(binary)
}
