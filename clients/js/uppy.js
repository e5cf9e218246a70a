// @ts-check
// Uppy's uploader for the upload service: Dashboard, progress bars, retries and the rest of Uppy,
// with the bytes going where the service's plan says (one PUT, or parts), through UploadClient.
//
//   import Uppy from '@uppy/core'
//   import Dashboard from '@uppy/dashboard'
//   import { UploadClient } from './upload-client.js'
//   import { useUploadService } from './uppy.js'
//   const uppy = new Uppy().use(Dashboard, { inline: true, target: '#uppy' })
//   useUploadService(uppy, new UploadClient({ apiUrl, token }))
//
// (@uppy/aws-s3 6 signs S3's own requests one at a time, CreateMultipartUpload and
// CompleteMultipartUpload included, with the ETags the browser collected: the service makes
// those two itself, so it is driven through Uppy's uploader interface instead.)

/**
 * Registers the upload service as `uppy`'s uploader. Each file is declared (with its SHA-256),
 * uploaded in the shape the service planned, and completed; a file whose upload was interrupted
 * (a reload) resumes from the parts storage has. The service's file resource is in the success
 * event's body (`response.body.file`), its id in the file's meta (`uploadServiceFileId`).
 */
/**
 * @param {any} uppy  an `@uppy/core` Uppy
 * @param {import('./upload-client.js').UploadClient} client
 * @param {{ metadata?: (file: any) => Record<string, string>, limit?: number }} [options]
 *   `metadata` of each Uppy file; `limit` files uploading at once
 */
export function useUploadService(uppy, client, { metadata = () => ({}), limit = 2 } = {}) {
  const upload = async (id) => {
    const file = uppy.getFile(id)
    if (!file) return
    const uploadStarted = Date.now()
    const onStarted = (e) => {
      if (e.detail.file === file.data) uppy.setFileMeta(id, { uploadServiceFileId: e.detail.fileId })
    }
    client.addEventListener('started', onStarted)
    try {
      const done = await client.upload(file.data, {
        metadata: metadata(file),
        onProgress: ({ loaded, total }) =>
          uppy.emit('upload-progress', uppy.getFile(id), { uploadStarted, bytesUploaded: loaded, bytesTotal: total }),
      })
      uppy.setFileMeta(id, { uploadServiceFileId: done.file_id })
      uppy.emit('upload-success', uppy.getFile(id), { status: 200, body: { file: done }, uploadURL: undefined })
    } catch (err) {
      uppy.emit('upload-error', uppy.getFile(id), err)
    } finally {
      client.removeEventListener('started', onStarted)
    }
  }
  uppy.addUploader(async (fileIDs) => {
    uppy.emit('upload-start', uppy.getFilesByIds(fileIDs))
    const queue = [...fileIDs]
    const worker = async () => {
      while (queue.length) await upload(queue.shift())
    }
    await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker))
  })
}
