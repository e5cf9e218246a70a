// The whole file's SHA-256 for UploadClient's default hasher (workerHasher in upload-client.js):
// a module Worker that is sent a File (or Blob), reads it in chunks and hashes them with
// hash-wasm, answering {sha256} (base64) or {error}. WebCrypto has no streaming digest, so it
// would hold the whole file in memory; this holds a chunk being hashed and the next being read.
// It imports hash-wasm by name: a page serves it bundled (scripts/dev bundles it for the demo).
import { createSHA256 } from 'hash-wasm'

const CHUNK_BYTES = 8 * 1024 * 1024

self.onmessage = async ({ data: file }) => {
  try {
    const hasher = await createSHA256()
    hasher.init()
    const read = (offset) => file.slice(offset, offset + CHUNK_BYTES).arrayBuffer()
    // The next chunk is read while this one is hashed.
    let next = read(0)
    for (let offset = 0; offset < file.size; offset += CHUNK_BYTES) {
      const chunk = await next
      if (offset + CHUNK_BYTES < file.size) next = read(offset + CHUNK_BYTES)
      hasher.update(new Uint8Array(chunk))
    }
    let binary = ''
    for (const byte of hasher.digest('binary')) binary += String.fromCharCode(byte)
    self.postMessage({ sha256: btoa(binary) })
  } catch (err) {
    self.postMessage({ error: err instanceof Error ? err.message : String(err) })
  }
}
