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
export function useUploadService(uppy: any, client: import("./upload-client.js").UploadClient, { metadata, limit }?: {
    metadata?: (file: any) => Record<string, string>;
    limit?: number;
}): void;
