// @ts-check
// The upload service as Uppy's uploader (`@uppy/core` 6), over the browser client:
//
//   import { UploadClient } from './upload-client.js'
//   import { UploadService } from './uppy.js'
//   uppy.use(UploadService, { client: new UploadClient({ apiUrl, token }) })
//
// Each file is declared (with its SHA-256), uploaded in the shape the service planned and
// completed, and then waits for the service's verdict: a verified file is Uppy's success, a
// rejected one an `upload-error` whose message names the reason ("rejected:
// content_type_mismatch"), so that the Dashboard shows it failed. The service's file resource is
// in the response's body (`response.body.file`), its id in the file's meta
// (`uploadServiceFileId`). Removing a file or cancelling all stops its upload and aborts it at
// the service. Pausing stops the requests in flight; resuming sends only what storage does not
// have, as after a reload (the client's resume store: without one, Uppy offers no pause). A
// retried file whose bytes the service already has is not sent again: its verdict is read
// again. `uninstall()` removes the uploader and every listener, and fails the files it was still
// uploading (their uploads at the service stay resumable).
import { BasePlugin, EventManager } from '@uppy/core'
import { TaskQueue } from '@uppy/core/utils'

import { UploadError, isSettled } from './upload-client.js'

/**
 * @typedef {import('@uppy/core').Meta} Meta
 * @typedef {import('@uppy/core').Body} Body
 * @typedef {import('./upload-client.js').UploadClient} UploadClient
 * @typedef {import('./upload-client.js').FileResource} FileResource
 * @typedef {import('./upload-client.js').UploadPlan} UploadPlan
 */

/**
 * @template {Meta} M
 * @template {Body} B
 * @typedef {import('@uppy/core').PluginOpts & {
 *   client: UploadClient,
 *   metadata?: (file: import('@uppy/core').UppyFile<M, B>) => Record<string, string>,
 *   limit?: number,
 *   waitForVerdict?: boolean,
 * }} UploadServiceOptions
 *   `client` uploads; `metadata` of each file (none by default); `limit` files uploading at
 *   once (2); `waitForVerdict` (true): a file succeeds once verified, not once its bytes are sent
 */

const DEFAULTS = { metadata: () => ({}), limit: 2, waitForVerdict: true }

/**
 * @template {Meta} M
 * @template {Body} B
 * @extends {BasePlugin<import('@uppy/core').DefinePluginOpts<UploadServiceOptions<M, B>, keyof typeof DEFAULTS>, M, B>}
 */
export class UploadService extends BasePlugin {
  /** Files sending their bytes, `limit` at a time; waiting for a verdict takes no place in it.
   * @type {TaskQueue} */
  #sending
  /** The files being uploaded, which uninstall stops. @type {Set<Transfer>} */
  #transfers = new Set()
  /** The files whose bytes the service has, by Uppy's id: the service's id, whose verdict a retry
   * reads again rather than sending the bytes twice. @type {Map<string, string>} */
  #sent = new Map()

  /**
   * @param {import('@uppy/core').Uppy<M, B>} uppy
   * @param {UploadServiceOptions<M, B>} opts
   */
  constructor(uppy, opts) {
    super(uppy, { ...DEFAULTS, ...opts })
    this.id = this.opts.id ?? 'UploadService'
    this.type = 'uploader'
    this.#sending = new TaskQueue({ concurrency: this.opts.limit })
  }

  install() {
    this.uppy.addUploader(this.#upload)
    this.uppy.on('file-removed', this.#forget)
    this.#offerPause(this.opts.client.resumeStore != null)
  }

  uninstall() {
    this.uppy.removeUploader(this.#upload)
    this.uppy.off('file-removed', this.#forget)
    this.#offerPause(false)
    for (const transfer of this.#transfers) transfer.end('uninstalled')
    this.#sent.clear()
  }

  /**
   * Whether the Dashboard offers pause and resume: only where an upload resumes.
   * @param {boolean} resumable
   */
  #offerPause(resumable) {
    const { capabilities } = this.uppy.getState()
    this.uppy.setState({ capabilities: { ...capabilities, resumableUploads: resumable } })
  }

  /** @param {import('@uppy/core').UppyFile<M, B>} file */
  #forget = (file) => {
    this.#sent.delete(file.id)
  }

  /** @param {string[]} fileIDs */
  #upload = async (fileIDs) => {
    this.uppy.emit('upload-start', this.uppy.getFilesByIds(fileIDs))
    await Promise.all(fileIDs.map((id) => this.#uploadFile(id)))
  }

  /**
   * Uploads one file and tells Uppy how it ended; never fails.
   * @param {string} id
   */
  async #uploadFile(id) {
    const file = this.uppy.getFile(id)
    const transfer = new Transfer()
    if (file.isPaused) transfer.pause()
    const events = new EventManager(this.uppy)
    events.onFileRemove(id, () => transfer.end('removed'))
    events.onCancelAll(id, () => transfer.end('removed'))
    events.onFilePause(id, (paused) => (paused ? transfer.pause() : transfer.resume()))
    events.onPauseAll(id, () => transfer.pause())
    events.onResumeAll(id, () => transfer.resume())
    this.#transfers.add(transfer)
    /** The service's id of the file while its bytes are being sent: its upload is aborted at the
     * service if the file is removed meanwhile. @type {string | null} */
    let unfinished = null
    /** @param {Event} event */
    const onStarted = (event) => {
      const { detail } = /** @type {CustomEvent} */ (event)
      if (detail.file !== file.data) return
      unfinished = detail.fileId
      // setFileMeta merges what it is given into the meta, though its type asks for all of it.
      this.uppy.setFileMeta(id, /** @type {M} */ (/** @type {unknown} */ ({ uploadServiceFileId: detail.fileId })))
    }
    const { client, waitForVerdict } = this.opts
    client.addEventListener('started', onStarted)
    try {
      /** @type {FileResource | UploadPlan | null} */
      let result = null
      let fileId = this.#sent.get(id)
      if (fileId === undefined) {
        result = await this.#sending.add(() => transfer.run((signal) => this.#send(file, signal)))
        unfinished = null
        fileId = result.file_id
        if (waitForVerdict) this.#sent.set(id, fileId)
      }
      if (waitForVerdict && !(result && isSettled(result))) {
        const settling = fileId
        result = await transfer.run((signal) => client.waitForSettled(settling, { signal }))
      }
      const response = { status: 200, body: /** @type {B} */ (/** @type {unknown} */ ({ file: result })) }
      if (result?.status === 'rejected') {
        this.uppy.emit('upload-error', this.uppy.getFile(id), rejected(/** @type {FileResource} */ (result)), response)
      } else {
        this.uppy.emit('upload-success', this.uppy.getFile(id), { ...response, uploadURL: undefined })
      }
    } catch (err) {
      if (transfer.ended === 'removed') {
        if (unfinished) client.abort(unfinished).catch((error) => this.uppy.log(`aborting ${unfinished}: ${error.message}`, 'warning'))
      } else {
        this.uppy.emit('upload-error', this.uppy.getFile(id), transfer.ended === 'uninstalled' ? uninstalled() : shown(err))
      }
    } finally {
      client.removeEventListener('started', onStarted)
      events.remove()
      this.#transfers.delete(transfer)
    }
  }

  /**
   * Sends `file`'s bytes and completes it, its progress shown as Uppy's.
   * @param {import('@uppy/core').UppyFile<M, B>} file
   * @param {AbortSignal} signal
   */
  #send(file, signal) {
    const uploadStarted = Date.now()
    return this.opts.client.upload(/** @type {File} */ (file.data), {
      metadata: this.opts.metadata(file),
      signal,
      onProgress: ({ loaded, total }) =>
        this.uppy.emit('upload-progress', this.uppy.getFile(file.id), { uploadStarted, bytesUploaded: loaded, bytesTotal: total }),
    })
  }
}

/**
 * One file's upload under Uppy's controls: a pause aborts the step in flight and resuming runs
 * it again; the end (the file removed, all cancelled, the plugin uninstalled) aborts it for good.
 */
class Transfer {
  #controller = new AbortController()
  /** While paused: settles on resume. @type {Promise<void> | null} */
  #paused = null
  #resume = () => {}
  /** Why it ended, once it has. @type {'removed' | 'uninstalled' | null} */
  ended = null

  pause() {
    if (this.#paused || this.ended) return
    this.#paused = new Promise((resolve) => {
      this.#resume = resolve
    })
    this.#controller.abort()
  }

  resume() {
    this.#paused = null
    this.#resume()
  }

  /** @param {'removed' | 'uninstalled'} why */
  end(why) {
    this.ended ??= why
    this.#controller.abort()
    this.resume()
  }

  /**
   * What `step` comes to, run again after each pause.
   * @template T
   * @param {(signal: AbortSignal) => Promise<T>} step
   * @returns {Promise<T>}
   */
  async run(step) {
    for (;;) {
      // Paused again before this went on: wait again.
      while (this.#paused) await this.#paused
      if (this.ended) throw new UploadError('aborted', `the upload was ${this.ended}`)
      const controller = new AbortController()
      this.#controller = controller
      try {
        return await step(controller.signal)
      } catch (err) {
        if (!controller.signal.aborted || this.ended) throw err
        // Paused: run again once resumed.
      }
    }
  }
}

/**
 * The error of a file the service rejected: its message names the reason, which the Dashboard
 * shows on the failed file.
 * @param {FileResource} file
 */
function rejected(file) {
  return Object.assign(new Error(`rejected: ${file.rejection_reason}`), { code: 'rejected' })
}

function uninstalled() {
  return Object.assign(new Error('the UploadService plugin was uninstalled'), { code: 'uninstalled' })
}

/**
 * `error` as Uppy shows a failed file: Uppy appends `details` to the message and takes them for
 * text, where an UploadError's are the contract's list; here they are the text of their messages.
 * `code` stays, and `cause` is the error itself.
 * @param {any} error
 * @returns {Error & { code?: string, details?: string }}
 */
function shown(error) {
  const details = Array.isArray(error?.details) ? error.details.map((detail) => detail.message).join('; ') : error?.details
  return Object.assign(new Error(error?.message ?? String(error), { cause: error }), { code: error?.code, details: details || undefined })
}
