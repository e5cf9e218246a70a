// @ts-check
// The upload service's browser client: an ES module, no build step. Its one dependency,
// hash-wasm, is imported by the worker that hashes large files (sha256-worker.js), which a page
// serves bundled (see workerHasher).
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
// What it takes care of, so that callers cannot get it wrong: every byte is checked at any size
// (each part's URL is signed for the part's SHA-256, so storage refuses a part corrupted on the
// way and only that part is sent again; the whole file's SHA-256 is declared at create, WebCrypto,
// up to SHA256_MAX_BYTES, or else computed in a worker while the parts go up and declared at
// complete, for verify to check), every PUT carries exactly the headers the service signed, parts
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

/** Files up to this size are declared with their SHA-256 at create. WebCrypto has no streaming
 * digest: it holds the whole file in memory, and hashing 120 MiB before create took the upload to
 * 0.64× of curl's pace on loopback (bench 12a). A larger file's SHA-256 is computed by the
 * client's `hasher` (a worker reading the file in chunks) while its parts go up, and declared at
 * complete. */
export const SHA256_MAX_BYTES = 64 * 1024 * 1024

/** Attempts at one PUT: a lost connection, an expired URL or bytes refused for their checksum
 * are worth another, more of them are not. */
const PUT_ATTEMPTS = 3

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
 * batch of part URLs and the part layout. With `part_checksums` it carries no URL: each part's is
 * signed for the part's SHA-256 (docs/API.md, checksums at any size).
 * @typedef {{
 *   file_id: string, status: string, s3_key: string, upload_id: string | null,
 *   part_size: number, part_count: number, urls?: string[], headers: Record<string, string>,
 *   expires_at: string, part_checksums?: 'sha256' | null, deduplicated?: boolean
 * }} UploadPlan
 */

/**
 * Computes a file's SHA-256 (base64), for an upload too large to hash before create; `signal`
 * aborts when the upload ends without needing it.
 * @typedef {(file: Blob, options: { signal: AbortSignal }) => Promise<string>} Hasher
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
 * `network_error`, `storage_error`, `hash_error`, `aborted` or `timeout` for failures outside the
 * API. */
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
   * @param {Hasher} [options.hasher]  computes the SHA-256 of a file above SHA256_MAX_BYTES: by
   *   default a worker (sha256-worker.js beside this module, see {@link workerHasher})
   */
  constructor({
    apiUrl,
    token,
    concurrency = 4,
    resumeStore = globalThis.localStorage ?? null,
    retry = {},
    fetch = globalThis.fetch.bind(globalThis),
    hasher = workerHasher(new URL('./sha256-worker.js', import.meta.url)),
  }) {
    super()
    this.apiUrl = apiUrl.replace(/\/+$/, '')
    this.token = token
    this.concurrency = concurrency
    this.resumeStore = resumeStore
    /** @type {RetryPolicy} */
    this.retry = { ...DEFAULT_RETRY, ...retry }
    this.fetch = fetch
    this.hasher = hasher
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
   * Declares `file`: its upload plan (201), or the verified file with the same content. The plan
   * has part checksums: each part's URL is signed for the part's SHA-256 (`uploadParts` does it).
   * @param {Blob & { name?: string }} file
   * @param {{ metadata?: Record<string, string>, fileName?: string, idempotencyKey?: string,
   *   sha256?: string, signal?: AbortSignal }} [options]  `idempotencyKey` defaults to a fresh
   *   one; `sha256` (base64) is the file's, when already computed
   * @returns {Promise<UploadPlan | FileResource>}
   */
  async create(file, { metadata = {}, fileName = file.name ?? 'file', idempotencyKey = newKey(), sha256, signal } = {}) {
    /** @type {Record<string, unknown>} */
    const declaration = {
      file_name: fileName,
      file_size: file.size,
      content_type: file.type || 'application/octet-stream',
      metadata,
      part_checksums: 'sha256',
    }
    if (declaresSha256(file)) declaration.sha256 = sha256 ?? (await sha256Base64(file))
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
   * `sha256` (base64) is the whole file's, for a file not declared with it: verify checks it.
   * @param {string} fileId
   * @param {{ sha256?: string, signal?: AbortSignal }} [options]
   * @returns {Promise<FileResource>}
   */
  complete(fileId, { sha256, signal } = {}) {
    const json = sha256 === undefined ? undefined : { sha256 }
    return this.call('POST', `/files/${fileId}/complete`, { json, idempotencyKey: newKey(), signal })
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
   * Fresh URLs for `partNumbers` (at most 100). In an upload with part checksums, `checksums`
   * gives each part's SHA-256 (base64) by part number instead, and each URL is sent with the
   * plan's headers and its part's `headers`.
   * @param {string} fileId
   * @param {number[]} partNumbers
   * @param {{ checksums?: Record<string, string>, signal?: AbortSignal }} [options]
   * @returns {Promise<{ urls: Record<string, string>, headers?: Record<string, Record<string, string>>,
   *   expires_at: string }>}
   */
  signParts(fileId, partNumbers, { checksums, signal } = {}) {
    const json = checksums ? { checksums } : { part_numbers: partNumbers }
    return this.call('POST', `/files/${fileId}/parts`, { json, safe: true, signal })
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
   *
   * The whole file's SHA-256 is declared at create up to SHA256_MAX_BYTES. A larger file's is
   * computed by `hasher` from the first moment, alongside the parts, and declared at complete;
   * for a resumed upload it is computed again from the start (the part of the file already
   * hashed before the reload is not known).
   * @param {File} file
   * @param {{ metadata?: Record<string, string>, signal?: AbortSignal,
   *   onProgress?: (progress: { fileId: string, loaded: number, total: number }) => void }} [options]
   * @returns {Promise<FileResource | UploadPlan>}
   */
  async upload(file, { metadata = {}, signal: callerSignal, onProgress } = {}) {
    // Stops the hasher when the upload ends, however it ends.
    const hashing = new AbortController()
    const stopHashing = () => hashing.abort()
    callerSignal?.addEventListener('abort', stopHashing, { once: true })
    // A hasher that fails stops the upload at once, not after every part was sent for nothing.
    const failing = new AbortController()
    const signal = callerSignal ? AbortSignal.any([callerSignal, failing.signal]) : failing.signal
    /** @type {Promise<string> | undefined} */
    let digest
    const fileSha256 = () =>
      (digest ??= declaresSha256(file) ? sha256Base64(file) : this.hasher(file, { signal: hashing.signal }))
    // Not awaited until complete; a failure before then ends the upload with the hasher's error.
    if (!declaresSha256(file)) {
      fileSha256().catch((err) => {
        if (!hashing.signal.aborted) failing.abort(err)
      })
    }
    try {
      const resumed = await this.#resumable(file, signal)
      let fileId
      let plan
      if (resumed?.plan) {
        ;({ fileId, plan } = resumed)
      } else {
        const idempotencyKey = resumed?.createKey ?? newKey()
        this.#remember(file, { createKey: idempotencyKey })
        const sha256 = declaresSha256(file) ? await fileSha256() : undefined
        const created = await this.create(file, { metadata, idempotencyKey, sha256, signal })
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
        await this.#putWhole(fileId, plan, file, progress, signal, fileSha256)
      } else {
        // A plan just created has no part in storage yet: nothing to ask.
        await this.uploadParts(fileId, plan, file, { progress, signal, stored: resumed?.plan ? null : [] })
      }
      // A multipart upload of a file not declared with its SHA-256 declares it now, for verify to
      // check, when the service takes part checksums (API v1.2, which takes digests at complete).
      // A single PUT's URL was signed for it, and storage checked it.
      const declareNow = plan.part_checksums === 'sha256' && plan.upload_id != null && !declaresSha256(file)
      const done = await this.complete(fileId, { sha256: declareNow ? await fileSha256() : undefined, signal })
      this.#forget(fileId)
      return done
    } catch (err) {
      throw failing.signal.aborted ? failing.signal.reason : err
    } finally {
      hashing.abort()
      callerSignal?.removeEventListener('abort', stopHashing)
    }
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
    // Read from the file again for each attempt: a part refused for its bytes is not resent from
    // a copy that may be the corrupted one.
    const part = (n) => file.slice((n - 1) * plan.part_size, (n - 1) * plan.part_size + size(n))
    const hashes = plan.part_checksums === 'sha256' ? new PartHashes(missing, part, urls, this.concurrency, signal) : null
    let next = 0
    const worker = async () => {
      while (next < missing.length) {
        const i = next++
        await hashes?.ready(i)
        await this.#putPart(urls, missing[i], () => part(missing[i]), progress, signal)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, missing.length) }, worker))
  }

  /**
   * @param {string} fileId
   * @param {UploadPlan} plan
   * @param {Blob} file
   * @param {Progress} progress
   * @param {AbortSignal | undefined} signal
   * @param {() => Promise<string>} fileSha256
   */
  async #putWhole(fileId, plan, file, progress, signal, fileSha256) {
    // With part checksums the one part is the whole file, its URL signed for the file's SHA-256.
    const checksums = plan.part_checksums === 'sha256' ? { 1: await fileSha256() } : undefined
    const sign = async () => {
      const signed = await this.signParts(fileId, [1], { checksums, signal })
      return { url: signed.urls['1'], headers: { ...plan.headers, ...signed.headers?.['1'] } }
    }
    // A resumed upload's plan (the file's `upload`) carries no URL, nor does one with part
    // checksums: a fresh one is signed.
    let target = plan.urls?.[0] ? { url: plan.urls[0], headers: plan.headers } : await sign()
    for (let attempt = 1; ; attempt++) {
      try {
        return await put(target.url, file, target.headers, (loaded) => progress.set(1, loaded), signal)
      } catch (err) {
        if (attempt >= PUT_ATTEMPTS || !retryable(err)) throw err
        // An expired URL, or a lost connection: a fresh URL signed for the same content. Bytes
        // refused for their checksum go again to the same URL.
        if (!refusedChecksum(err)) target = await sign()
      }
    }
  }

  /**
   * @param {PartUrls} urls
   * @param {number} n
   * @param {() => Blob} part  the part's bytes, read anew for each attempt
   * @param {Progress} progress
   * @param {AbortSignal | undefined} signal
   */
  async #putPart(urls, n, part, progress, signal) {
    for (let attempt = 1; ; attempt++) {
      const { url, headers } = await urls.get(n)
      try {
        await put(url, part(), headers, (loaded) => progress.set(n, loaded), signal)
        return
      } catch (err) {
        if (attempt >= PUT_ATTEMPTS || !retryable(err)) throw err
        // Bytes refused for their checksum go again to the same URL, which is signed for the
        // part's true SHA-256; any other failure takes a fresh one.
        if (!refusedChecksum(err)) urls.discard(n)
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

/**
 * Part URLs, asked for in batches of up to 100 as the parts need them, and again near expiry.
 * With part checksums a part's URL is signed for its SHA-256, as soon as the part is hashed: a
 * batch is the parts hashed since the last one.
 */
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
    this.headers = plan.headers ?? {}
    /** @type {Map<number, { url: string, headers: Record<string, string>, expiresAt: number }>} */
    this.urls = new Map()
    /** @type {Map<number, Promise<void>>} */
    this.pending = new Map()
    /** With part checksums, each hashed part's SHA-256 (kept to sign it again near expiry). */
    this.checksums = plan.part_checksums === 'sha256' ? new Map() : null
    /** @type {Set<number>} parts hashed whose URL is not asked for yet */
    this.unsigned = new Set()
    const expiresAt = Date.parse(plan.expires_at)
    plan.urls?.forEach((url, i) => this.urls.set(i + 1, { url, headers: this.headers, expiresAt }))
  }

  /**
   * Part `n` was hashed: its URL is to be signed for `checksum`.
   * @param {number} n
   * @param {string} checksum
   */
  hashed(n, checksum) {
    this.checksums?.set(n, checksum)
    this.unsigned.add(n)
    // Signed before the part's turn comes, with the parts hashed meanwhile: one batch at a time.
    if (this.pending.size === 0) this.#sign([...this.unsigned].slice(0, PART_URL_BATCH))
  }

  /**
   * Part `n`'s URL and the headers to send it with (with part checksums, once it is hashed).
   * @param {number} n
   */
  async get(n) {
    const known = this.urls.get(n)
    if (known && known.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return known
    if (!this.pending.has(n)) this.#sign(this.#batch(n))
    await this.pending.get(n)
    return /** @type {{ url: string, headers: Record<string, string> }} */ (this.urls.get(n))
  }

  /**
   * Asks for the URLs of `batch`. A failure reaches the parts waiting for them; a part asked for
   * later is signed again.
   * @param {number[]} batch
   */
  #sign(batch) {
    for (const m of batch) this.unsigned.delete(m)
    const checksums = this.checksums ? Object.fromEntries(batch.map((m) => [m, this.checksums.get(m)])) : undefined
    const signing = this.client.signParts(this.fileId, batch, { checksums, signal: this.signal }).then(({ urls, headers = {}, expires_at }) => {
      const expiresAt = Date.parse(expires_at)
      for (const [m, url] of Object.entries(urls)) {
        this.urls.set(Number(m), { url, headers: { ...this.headers, ...headers[m] }, expiresAt })
      }
    })
    for (const m of batch) this.pending.set(m, signing)
    signing
      .finally(() => {
        for (const m of batch) this.pending.delete(m)
        if (this.unsigned.size > 0 && this.pending.size === 0) this.#sign([...this.unsigned].slice(0, PART_URL_BATCH))
      })
      .catch(() => {})
  }

  /**
   * The parts to sign with `n`: with part checksums, those hashed whose URL is not asked for
   * yet; without, the wanted ones from `n` on.
   * @param {number} n
   */
  #batch(n) {
    if (this.checksums) return [n, ...[...this.unsigned].filter((m) => m !== n)].slice(0, PART_URL_BATCH)
    const from = Math.max(0, this.wanted.indexOf(n))
    return this.wanted.slice(from, from + PART_URL_BATCH).filter((m) => !this.pending.has(m))
  }

  /** @param {number} n */
  discard(n) {
    this.urls.delete(n)
  }
}

/**
 * The parts' SHA-256s, for an upload with part checksums: hashed one part at a time, so that
 * memory holds one part's bytes for it, in the order the parts are sent and up to `ahead` parts
 * beyond the last one asked for, so that the next parts' hashes (and their URLs, asked for in one
 * batch) are ready when a PUT ends.
 */
class PartHashes {
  /**
   * @param {number[]} order  the part numbers, in the order they are sent
   * @param {(n: number) => Blob} part
   * @param {PartUrls} urls  told of each part hashed
   * @param {number} ahead
   * @param {AbortSignal} [signal]
   */
  constructor(order, part, urls, ahead, signal) {
    this.order = order
    this.part = part
    this.urls = urls
    this.ahead = ahead
    this.signal = signal
    /** @type {Promise<void>[]} by index in `order` */
    this.hashed = []
  }

  /**
   * Once the part at index `i` of `order` is hashed.
   * @param {number} i
   */
  ready(i) {
    for (let j = this.hashed.length; j <= Math.min(i + this.ahead, this.order.length - 1); j++) {
      const n = this.order[j]
      const hashed = (this.hashed[j - 1] ?? Promise.resolve()).then(async () => {
        throwIfAborted(this.signal)
        this.urls.hashed(n, await sha256Base64(this.part(n)))
      })
      // Awaited when its part's turn comes, if the upload gets that far.
      hashed.catch(() => {})
      this.hashed.push(hashed)
    }
    return this.hashed[i]
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

/** Worth another attempt: a lost connection, storage's 5xx, an expired URL (403), or bytes
 * refused for their checksum (corrupted on the way: read again from the file). */
function retryable(err) {
  return (
    err.code === 'network_error' ||
    err.status >= 500 ||
    (err.status === 403 && /expired|AccessDenied/i.test(err.message)) ||
    refusedChecksum(err)
  )
}

/** Storage refused the bytes for their checksum: 400 BadDigest (S3, and LocalStack alike). */
function refusedChecksum(err) {
  return err.status === 400 && err.details?.[0]?.reason === 'BadDigest'
}

/**
 * Whether `file` is declared with its SHA-256 at create: WebCrypto must hold it whole to hash it.
 * @param {Blob} file
 */
function declaresSha256(file) {
  return file.size <= SHA256_MAX_BYTES
}

/**
 * The base64 SHA-256 of `blob`, read whole into memory (WebCrypto).
 * @param {Blob} blob
 */
async function sha256Base64(blob) {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
  let binary = ''
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/**
 * The client's default hasher: a module Worker loaded from `url` reads the file in chunks and
 * hashes them with hash-wasm, so that memory holds a chunk or two whatever the file's size
 * (WebCrypto has no streaming digest), off the page's thread. `url` is `sha256-worker.js`, which
 * imports `hash-wasm` by name: a page serves it bundled (the demo with esbuild, see scripts/dev),
 * or passes this client `hasher: workerHasher(urlOfItsBundle)`.
 * @param {string | URL} url
 * @returns {Hasher}
 */
export function workerHasher(url) {
  return (file, { signal }) =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(abortError())
      /** @type {Worker} */
      let worker
      try {
        worker = new Worker(url, { type: 'module' })
      } catch (err) {
        // No module Worker here (an old browser, Node), or a URL it refuses.
        return reject(new UploadError('hash_error', `no worker to hash the file (${url}): ${err instanceof Error ? err.message : err}`))
      }
      const end = () => {
        worker.terminate()
        signal.removeEventListener('abort', aborted)
      }
      const aborted = () => {
        end()
        reject(abortError())
      }
      worker.onmessage = ({ data }) => {
        end()
        if (typeof data?.sha256 === 'string') resolve(data.sha256)
        else reject(new UploadError('hash_error', `hashing the file failed: ${data?.error}`))
      }
      worker.onerror = (event) => {
        end()
        reject(new UploadError('hash_error', `the hashing worker (${url}) failed: ${event.message || 'not loaded'}`))
      }
      signal.addEventListener('abort', aborted, { once: true })
      worker.postMessage(file)
    })
}
