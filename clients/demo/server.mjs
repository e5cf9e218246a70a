// The demo's backend, as an application's own server would be: it serves the page, mints upload
// tokens for it with the project's API key (which never reaches the browser), and lists the
// project's files for it. Node's standard library only.
//
//   node clients/demo/server.mjs --port 9001 --api http://127.0.0.1:9000/v1/projects/dev \
//     --key upk_… --bundle /path/demo.bundle.js --worker /path/sha256-worker.bundle.js --css /path/uppy.css
import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    api: { type: 'string' },
    key: { type: 'string' },
    bundle: { type: 'string' },
    worker: { type: 'string' },
    css: { type: 'string' },
  },
})
const here = new URL('.', import.meta.url)

/** The token each page load gets: one hour, up to 100 files of up to 1 GiB. */
const TOKEN_REQUEST = { expires_in: 3600, max_files: 100, max_file_size: 1 << 30, metadata: { app: 'demo' } }

async function api(method, path, body) {
  const response = await fetch(`${args.api}${path}`, {
    method,
    headers: { authorization: `Bearer ${args.key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, body: await response.text() }
}

const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/demo.js': [args.bundle, 'text/javascript; charset=utf-8'],
  // Where the client, bundled into /demo.js, finds its hashing worker.
  '/sha256-worker.js': [args.worker, 'text/javascript; charset=utf-8'],
  '/uppy.css': [args.css, 'text/css; charset=utf-8'],
}

createServer(async (request, response) => {
  const path = new URL(request.url, 'http://localhost').pathname
  const send = (status, body, type = 'application/json') => {
    response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
    response.end(body)
  }
  try {
    if (request.method === 'GET' && files[path]) {
      const [file, type] = files[path]
      return send(200, await readFile(file.startsWith('/') ? file : new URL(file, here)), type)
    }
    if (request.method === 'GET' && path === '/config') return send(200, JSON.stringify({ apiUrl: args.api }))
    if (request.method === 'POST' && path === '/token') {
      const minted = await api('POST', '/upload-tokens', TOKEN_REQUEST)
      return send(minted.status, minted.body)
    }
    if (request.method === 'GET' && path === '/files') {
      const listed = await api('GET', '/files?limit=100')
      return send(listed.status, listed.body)
    }
    send(404, JSON.stringify({ error: 'not found' }))
  } catch (err) {
    send(502, JSON.stringify({ error: String(err) }))
  }
}).listen(Number(args.port), '127.0.0.1')
