// The demo page: Uppy's Dashboard uploading through the service's client, a form for the direct
// upload, and the project's files with their live status. Bundled by esbuild when scripts/dev
// starts (Uppy comes from npm); the client itself needs no build.
import Uppy from '@uppy/core'
import Dashboard from '@uppy/dashboard'
import { UploadClient, formatBytes } from '../js/upload-client.js'
import { UploadService } from '../js/uppy.js'

const config = await (await fetch('/config')).json()

// A fresh upload token whenever the last one is about to expire: the backend mints it with the
// API key, which never reaches this page. It is kept for the tab's session: a token finishes
// only the uploads it started, so an upload interrupted by a reload resumes with the same one.
let token = JSON.parse(sessionStorage.getItem('upload-token') ?? 'null')
async function currentToken() {
  if (!token || Date.parse(token.expires_at) - Date.now() < 60_000) {
    const response = await fetch('/token', { method: 'POST' })
    if (!response.ok) throw new Error(`the demo backend gave no token: ${response.status}`)
    token = await response.json()
    sessionStorage.setItem('upload-token', JSON.stringify(token))
  }
  return token.token
}

const client = new UploadClient({ apiUrl: config.apiUrl, token: currentToken })
// A file succeeds once the service has verified it; one it rejected fails, with the reason.
const uppy = new Uppy({ autoProceed: true, debug: false })
  .use(Dashboard, { inline: true, target: '#uppy', height: 320, proudlyDisplayPoweredByUppy: false })
  .use(UploadService, { client, metadata: () => ({ source: 'demo' }) })
uppy.on('upload-error', (file, err) => show(`${file.name}: ${err.message}`))
window.uppy = uppy
window.uploadClient = client // for the benchmarks, which time it directly

document.querySelector('#direct-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const input = document.querySelector('#direct-files')
  const result = document.querySelector('#direct-result')
  try {
    const { files } = await client.directUpload([...input.files], { metadata: { source: 'demo-form' } })
    result.textContent = `${files.length} stored`
    input.value = ''
  } catch (err) {
    show(`direct upload: ${err.code} ${err.message}`)
  }
})

function show(message) {
  document.querySelector('#error').textContent = message
}

// The project's files, newest first, as the backend lists them (a token may not list).
async function refresh() {
  try {
    const { files } = await (await fetch('/files')).json()
    const rows = files.map((file) => {
      const row = document.createElement('tr')
      row.dataset.fileId = file.file_id
      row.dataset.status = file.status
      const link = file.download_url ? `<a href="${file.download_url}" download>download</a>` : ''
      row.innerHTML = `<td class="name"></td><td class="size">${formatBytes(file.file_size)}</td>
        <td class="status status-${file.status}">${file.status}</td>
        <td class="reason">${file.rejection_reason ?? ''}</td><td>${link}</td>`
      row.querySelector('.name').textContent = file.file_name
      return row
    })
    document.querySelector('#files').replaceChildren(...rows)
  } catch (err) {
    show(`listing: ${err.message}`)
  }
}
// One listing at a time, a second after the last: a slow answer (a hundred download URLs to
// sign) never has the next request pile up behind it.
async function poll() {
  await refresh()
  setTimeout(poll, 1000)
}
poll()
