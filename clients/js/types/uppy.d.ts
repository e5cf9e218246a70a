/**
 * @template {Meta} M
 * @template {Body} B
 * @extends {BasePlugin<import('@uppy/core').DefinePluginOpts<UploadServiceOptions<M, B>, keyof typeof DEFAULTS>, M, B>}
 */
export class UploadService<M extends Meta, B extends Body> extends BasePlugin<import("@uppy/core").DefinePluginOpts<UploadServiceOptions<M, B>, "metadata" | "limit" | "waitForVerdict">, M, B, Record<string, unknown>> {
    /**
     * @param {import('@uppy/core').Uppy<M, B>} uppy
     * @param {UploadServiceOptions<M, B>} opts
     */
    constructor(uppy: import("@uppy/core").Uppy<M, B>, opts: UploadServiceOptions<M, B>);
    #private;
}
export type Meta = import("@uppy/core").Meta;
export type Body = import("@uppy/core").Body;
export type UploadClient = import("./upload-client.js").UploadClient;
export type FileResource = import("./upload-client.js").FileResource;
export type UploadPlan = import("./upload-client.js").UploadPlan;
/**
 * `client` uploads; `metadata` of each file (none by default); `limit` files uploading at
 * once (2); `waitForVerdict` (true): a file succeeds once verified, not once its bytes are sent
 */
export type UploadServiceOptions<M extends Meta, B extends Body> = import("@uppy/core").PluginOpts & {
    client: UploadClient;
    metadata?: (file: import("@uppy/core").UppyFile<M, B>) => Record<string, string>;
    limit?: number;
    waitForVerdict?: boolean;
};
import { BasePlugin } from '@uppy/core';
