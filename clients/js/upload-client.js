// The upload service's browser client: an ES module, no build step, no dependency.
//
//   import { UploadClient } from './upload-client.js'
//   const client = new UploadClient({ apiUrl: 'https://api.example.com/v1/projects/p1', token })
//   const file = await client.upload(input.files[0], {
//     metadata: { album: 'summer' },
//     onProgress: ({ loaded, total }) => console.log(loaded, total),
//   })
//   console.log(file.file_id, file.status)   // 'uploaded'; the service verifies it next
//
// What it takes care of, so that callers cannot get it wrong: the SHA-256 is declared (WebCrypto,
// files up to SHA256_MAX_BYTES), every PUT carries exactly the headers the service signed, parts
// go up in parallel with progress, part URLs are asked for in batches as they are needed and
// again when they expire, an upload interrupted by a reload resumes from the parts storage has
// (GET …/parts), and complete needs no ETags. Every failure is an UploadError carrying the
// contract's error code.

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

/** A failed call: `code` is the contract's (`validation_error`, `forbidden`, …), or
 * `network_error` / `storage_error` for failures outside the API. */
/** The most a direct upload may carry in any deployment (docs/API.md, direct upload). */
export const DIRECT_UPLOAD_MAX_BYTES = 4 * 1024 * 1024

export class UploadError extends Error {
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
   */
  constructor({ apiUrl, token, concurrency = 4, resumeStore = globalThis.localStorage ?? null }) {
    super()
    this.apiUrl = apiUrl.replace(/\/+$/, '')
    this.token = token
    this.concurrency = concurrency
    this.resumeStore = resumeStore
  }

  // --- the API --------------------------------------------------------------------------

  async call(method, path, { json, form } = {}) {
    const token = typeof this.token === 'function' ? await this.token() : this.token
    const headers = { authorization: `Bearer ${token}` }
    let body
    if (json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(json)
    } else if (form !== undefined) {
      body = form
    }
    let response
    try {
      response = await fetch(`${this.apiUrl}${path}`, { method, headers, body })
    } catch (err) {
      throw new UploadError('network_error', `${method} ${path}: ${err.message}`)
    }
    if (response.status === 204) return null
    const text = await response.text()
    let answer = null
    try {
      answer = text ? JSON.parse(text) : null
    } catch {
      // Not the service's answer (a proxy's error page, say).
    }
    if (!response.ok) {
      const error = answer?.error ?? {}
      throw new UploadError(error.code ?? 'http_error', error.message ?? `${method} ${path}: ${response.status}`, {
        status: response.status,
        details: error.details ?? [],
        requestId: answer?.request_id ?? response.headers.get('x-request-id'),
      })
    }
    return answer
  }

  /** Declares `file`: its upload plan (201), or the verified file with the same content. */
  async create(file, { metadata = {}, fileName = file.name } = {}) {
    const declaration = {
      file_name: fileName,
      file_size: file.size,
      content_type: file.type || 'application/octet-stream',
      metadata,
    }
    if (file.size <= SHA256_MAX_BYTES) declaration.sha256 = await sha256Base64(file)
    return this.call('POST', '/files', { json: declaration })
  }

  getFile(fileId) {
    return this.call('GET', `/files/${fileId}`)
  }

  /** Marks the upload done; the service lists (and for multipart assembles) the parts itself. */
  complete(fileId) {
    return this.call('POST', `/files/${fileId}/complete`)
  }

  /** Aborts the upload in progress and forgets it here. */
  async abort(fileId) {
    this.#forget(fileId)
    return this.call('DELETE', `/files/${fileId}/upload`)
  }

  /** The parts storage already has: `[{part_number, size, etag}]`. */
  async storedParts(fileId) {
    return (await this.call('GET', `/files/${fileId}/parts`)).parts
  }

  /** Fresh URLs for `partNumbers` (at most 100): `{urls: {"7": "…"}, expires_at}`. */
  signParts(fileId, partNumbers) {
    return this.call('POST', `/files/${fileId}/parts`, { json: { part_numbers: partNumbers } })
  }

  /**
   * Small files (at most 4 MiB in all) in one form: `{files: [file resource, …]}`. Larger forms
   * are refused here, before sending: between about 4.6 and 10 MB API Gateway answers with a
   * bodiless error of its own (the base64 body passes Lambda's 6 MB payload), not the service's
   * 413.
   */
  directUpload(files, { name, metadata } = {}) {
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
    return this.call('POST', '/uploads', { form })
  }

  // --- uploading ------------------------------------------------------------------------

  /**
   * Uploads `file` and completes it: the file resource (`uploaded`, or already settled). An
   * upload of the same file interrupted earlier (a reload, a lost connection) is resumed: only
   * the parts storage does not have are sent.
   */
  async upload(file, { metadata = {}, signal, onProgress } = {}) {
    const resumed = await this.#resumable(file)
    let fileId
    let plan
    if (resumed) {
      ;({ fileId, plan } = resumed)
    } else {
      const created = await this.create(file, { metadata })
      if (created.deduplicated) return created
      fileId = created.file_id
      plan = created
      this.#remember(file, fileId)
    }
    this.dispatchEvent(new CustomEvent('started', { detail: { fileId, file, resumed: Boolean(resumed) } }))
    const progress = new Progress(this, fileId, file.size, onProgress)
    if (plan.upload_id == null) {
      await this.#putWhole(fileId, plan, file, progress, signal)
    } else {
      await this.uploadParts(fileId, plan, file, { progress, signal })
    }
    const done = await this.complete(fileId)
    this.#forget(fileId)
    return done
  }

  /** Sends the parts of `plan` storage does not have yet, `concurrency` at a time. */
  async uploadParts(fileId, plan, file, { progress = new Progress(this, fileId, file.size), signal, stored = null } = {}) {
    const have = new Map()
    for (const part of stored ?? (await this.storedParts(fileId))) have.set(part.part_number, part.size)
    const size = (n) => Math.min(plan.part_size, file.size - (n - 1) * plan.part_size)
    const missing = []
    for (let n = 1; n <= plan.part_count; n++) {
      if (have.get(n) === size(n)) progress.add(n, size(n))
      else missing.push(n)
    }
    const urls = new PartUrls(this, fileId, missing, plan)
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
    let url = plan.urls?.[0] ?? (await this.signParts(fileId, [1])).urls['1']
    for (let attempt = 1; ; attempt++) {
      try {
        return await put(url, file, plan.headers, (loaded) => progress.set(1, loaded), signal)
      } catch (err) {
        if (attempt >= 3 || !retryable(err)) throw err
        // An expired URL, or a lost connection: a fresh URL signed for the same content.
        url = (await this.signParts(fileId, [1])).urls['1']
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

  #key(file) {
    return `${RESUME_PREFIX}${file.name}:${file.size}:${file.lastModified}`
  }

  #remember(file, fileId) {
    this.resumeStore?.setItem(this.#key(file), fileId)
  }

  #forget(fileId) {
    const store = this.resumeStore
    if (!store) return
    for (let i = store.length - 1; i >= 0; i--) {
      const key = store.key(i)
      if (key?.startsWith(RESUME_PREFIX) && store.getItem(key) === fileId) store.removeItem(key)
    }
  }

  /** The upload of `file` started earlier and still in progress, if any. */
  async #resumable(file) {
    const fileId = this.resumeStore?.getItem(this.#key(file))
    if (!fileId) return null
    try {
      const found = await this.getFile(fileId)
      if (found.status === 'pending_upload' && found.upload) return { fileId, plan: found.upload }
    } catch (err) {
      if (!(err instanceof UploadError) || err.status >= 500 || err.code === 'network_error') throw err
    }
    this.#forget(fileId)
    return null
  }
}

/** Part URLs, asked for in batches of up to 100 as the parts need them, and again near expiry. */
class PartUrls {
  constructor(client, fileId, wanted, plan) {
    this.client = client
    this.fileId = fileId
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
      const signing = this.client.signParts(this.fileId, batch).then(({ urls, expires_at }) => {
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
 * fetch reports no upload progress. */
function put(url, body, headers, onProgress, signal) {
  return new Promise((resolve, reject) => {
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
        reject(new UploadError('storage_error', `storage refused the PUT: ${xhr.status} ${code}`, { status: xhr.status, details: [{ reason: code }] }))
      }
    }
    xhr.onerror = () => reject(new UploadError('network_error', 'the PUT to storage failed'))
    xhr.onabort = () => reject(new UploadError('aborted', 'the upload was aborted'))
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
