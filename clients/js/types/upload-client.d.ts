/**
 * Whether the service has decided on `file`: `verified` or `rejected`, which only a new upload of
 * the file changes.
 * @param {{ status: string }} file
 */
export function isSettled(file: {
    status: string;
}): boolean;
/**
 * A size for people, in binary units with at most one decimal: `12 B`, `1.5 KiB`, `120 MiB`.
 * @param {number} bytes
 */
export function formatBytes(bytes: number): string;
/**
 * Retry-After as milliseconds: seconds, or an HTTP date.
 * @param {string | null} value
 * @returns {number | null}
 */
export function parseRetryAfter(value: string | null): number | null;
/**
 * The client's default hasher: a module Worker loaded from `url` reads the file in chunks and
 * hashes them with hash-wasm, so that memory holds a chunk or two whatever the file's size
 * (WebCrypto has no streaming digest), off the page's thread. `url` is `sha256-worker.js`, which
 * imports `hash-wasm` by name: a page serves it bundled (the demo with esbuild, see scripts/dev),
 * or passes this client `hasher: workerHasher(urlOfItsBundle)`.
 * @param {string | URL} url
 * @returns {Hasher}
 */
export function workerHasher(url: string | URL): Hasher;
/** Files up to this size are declared with their SHA-256 at create. WebCrypto has no streaming
 * digest: it holds the whole file in memory, and hashing 120 MiB before create took the upload to
 * 0.64× of curl's pace on loopback (bench 12a). A larger file's SHA-256 is computed by the
 * client's `hasher` (a worker reading the file in chunks) while its parts go up, and declared at
 * complete. */
export const SHA256_MAX_BYTES: number;
/** The most a direct upload may carry in any deployment (docs/API.md, direct upload). */
export const DIRECT_UPLOAD_MAX_BYTES: number;
/**
 * How calls to the API are retried: `attempts` in all, waiting `baseDelayMs` doubled after each
 * (with jitter), or what Retry-After says; a wait above `maxDelayMs` is not made, and the error
 * is the answer.
 * @typedef {{ attempts: number, baseDelayMs: number, maxDelayMs: number }} RetryPolicy
 */
/** @type {RetryPolicy} */
export const DEFAULT_RETRY: RetryPolicy;
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
    constructor(code: string, message: string, { status, details, requestId }?: {
        status?: number;
        details?: ErrorDetail[];
        requestId?: string | null;
    });
    code: string;
    status: number;
    details: ErrorDetail[];
    requestId: string;
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
    constructor({ apiUrl, token, concurrency, resumeStore, retry, fetch, hasher, }: {
        apiUrl: string;
        token: string | (() => Promise<string>);
        concurrency?: number;
        resumeStore?: Storage | null;
        retry?: Partial<RetryPolicy>;
        fetch?: typeof globalThis.fetch;
        hasher?: Hasher;
    });
    apiUrl: string;
    token: string | (() => Promise<string>);
    concurrency: number;
    resumeStore: Storage;
    /** @type {RetryPolicy} */
    retry: RetryPolicy;
    fetch: typeof fetch;
    hasher: Hasher;
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
    call(method: string, path: string, { json, form, idempotencyKey, safe, signal }?: {
        json?: unknown;
        form?: FormData;
        idempotencyKey?: string;
        safe?: boolean;
        signal?: AbortSignal;
    }): Promise<any>;
    /**
     * Declares `file`: its upload plan (201), or the verified file with the same content. The plan
     * has part checksums: each part's URL is signed for the part's SHA-256 (`uploadParts` does it).
     * @param {Blob & { name?: string }} file
     * @param {{ metadata?: Record<string, string>, fileName?: string, idempotencyKey?: string,
     *   sha256?: string, signal?: AbortSignal }} [options]  `idempotencyKey` defaults to a fresh
     *   one; `sha256` (base64) is the file's, when already computed
     * @returns {Promise<UploadPlan | FileResource>}
     */
    create(file: Blob & {
        name?: string;
    }, { metadata, fileName, idempotencyKey, sha256, signal }?: {
        metadata?: Record<string, string>;
        fileName?: string;
        idempotencyKey?: string;
        sha256?: string;
        signal?: AbortSignal;
    }): Promise<UploadPlan | FileResource>;
    /**
     * @param {string} fileId
     * @param {{ signal?: AbortSignal }} [options]
     * @returns {Promise<FileResource>}
     */
    getFile(fileId: string, { signal }?: {
        signal?: AbortSignal;
    }): Promise<FileResource>;
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
    waitForSettled(fileId: string, { signal, timeoutMs, intervalMs, maxIntervalMs }?: {
        signal?: AbortSignal;
        timeoutMs?: number;
        intervalMs?: number;
        maxIntervalMs?: number;
    }): Promise<FileResource>;
    /**
     * Marks the upload done; the service lists (and for multipart assembles) the parts itself.
     * `sha256` (base64) is the whole file's, for a file not declared with it: verify checks it.
     * @param {string} fileId
     * @param {{ sha256?: string, signal?: AbortSignal }} [options]
     * @returns {Promise<FileResource>}
     */
    complete(fileId: string, { sha256, signal }?: {
        sha256?: string;
        signal?: AbortSignal;
    }): Promise<FileResource>;
    /**
     * Aborts the upload in progress and forgets it here.
     * @param {string} fileId
     * @param {{ signal?: AbortSignal }} [options]
     * @returns {Promise<FileResource>}
     */
    abort(fileId: string, { signal }?: {
        signal?: AbortSignal;
    }): Promise<FileResource>;
    /**
     * The parts storage already has.
     * @param {string} fileId
     * @param {{ signal?: AbortSignal }} [options]
     * @returns {Promise<StoredPart[]>}
     */
    storedParts(fileId: string, { signal }?: {
        signal?: AbortSignal;
    }): Promise<StoredPart[]>;
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
    signParts(fileId: string, partNumbers: number[], { checksums, signal }?: {
        checksums?: Record<string, string>;
        signal?: AbortSignal;
    }): Promise<{
        urls: Record<string, string>;
        headers?: Record<string, Record<string, string>>;
        expires_at: string;
    }>;
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
    directUpload(files: (Blob & {
        name: string;
    })[], { name, metadata, signal }?: {
        name?: string;
        metadata?: Record<string, string>;
        signal?: AbortSignal;
    }): Promise<{
        files: FileResource[];
    }>;
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
    upload(file: File, { metadata, signal: callerSignal, onProgress }?: {
        metadata?: Record<string, string>;
        signal?: AbortSignal;
        onProgress?: (progress: {
            fileId: string;
            loaded: number;
            total: number;
        }) => void;
    }): Promise<FileResource | UploadPlan>;
    /**
     * Sends the parts of `plan` storage does not have yet, `concurrency` at a time.
     * @param {string} fileId
     * @param {UploadPlan} plan
     * @param {Blob} file
     * @param {{ progress?: Progress, signal?: AbortSignal, stored?: StoredPart[] | null }} [options]
     */
    uploadParts(fileId: string, plan: UploadPlan, file: Blob, { progress, signal, stored }?: {
        progress?: Progress;
        signal?: AbortSignal;
        stored?: StoredPart[] | null;
    }): Promise<void>;
    #private;
}
/**
 * How calls to the API are retried: `attempts` in all, waiting `baseDelayMs` doubled after each
 * (with jitter), or what Retry-After says; a wait above `maxDelayMs` is not made, and the error
 * is the answer.
 */
export type RetryPolicy = {
    attempts: number;
    baseDelayMs: number;
    maxDelayMs: number;
};
/**
 * One entry of an error's `details` (docs/API.md, Errors).
 */
export type ErrorDetail = {
    field?: string;
    reason?: string;
    message: string;
    part_numbers?: number[];
};
/**
 * The upload plan of a created or reuploaded file (docs/API.md, create): one URL, or the first
 * batch of part URLs and the part layout. With `part_checksums` it carries no URL: each part's is
 * signed for the part's SHA-256 (docs/API.md, checksums at any size).
 */
export type UploadPlan = {
    file_id: string;
    status: string;
    s3_key: string;
    upload_id: string | null;
    part_size: number;
    part_count: number;
    urls?: string[];
    headers: Record<string, string>;
    expires_at: string;
    part_checksums?: "sha256" | null;
    deduplicated?: boolean;
};
/**
 * Computes a file's SHA-256 (base64), for an upload too large to hash before create; `signal`
 * aborts when the upload ends without needing it.
 */
export type Hasher = (file: Blob, options: {
    signal: AbortSignal;
}) => Promise<string>;
/**
 * The file resource (docs/API.md, the file resource); `upload` is its upload in progress.
 */
export type FileResource = {
    file_id: string;
    status: "pending_upload" | "uploaded" | "verified" | "rejected";
    file_name: string;
    file_size: number;
    content_type: string;
    metadata: Record<string, string>;
    rejection_reason?: string | null;
    upload?: UploadPlan | null;
    deduplicated?: boolean;
};
/**
 * A file's parts that storage has.
 */
export type StoredPart = {
    part_number: number;
    size: number;
    etag: string;
};
/** Bytes sent per part, summed into `progress` events on the client. */
declare class Progress {
    constructor(client: any, fileId: any, total: any, onProgress: any);
    client: any;
    fileId: any;
    total: any;
    onProgress: any;
    parts: Map<any, any>;
    add(n: any, bytes: any): void;
    set(n: any, loaded: any): void;
}
export {};
