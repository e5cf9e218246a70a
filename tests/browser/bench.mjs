// The browser rows of scripts/bench (issue 12), printed as rows of its table:
// - 12a: Chromium uploading a 120 MiB file through the client, every byte checked (each part's
//   URL signed for its SHA-256, the whole file's hashed in a worker alongside and declared at
//   complete), against curl PUTting the same parts to storage, as many at a time: once doing the
//   same checks (each part hashed before its URL is asked for and sent with its checksum header,
//   the whole file hashed by openssl alongside and declared at complete), once without checksums
//   (every URL signed up front). MiB/s, the median of 3 runs each, alternated.
// - 12b: direct uploads of 100 KiB files, 4 clients at once, against the same files through the
//   presigned path (create, PUT, complete) by the same clients: uploads per second.
// Run by scripts/bench with the env file of its scripts/dev (DEMO_URL, API, KEY) and DEMO_NPM.
import { createHash, randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { mkdtemp, open, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createRequire } from 'node:module'

const puppeteer = createRequire(join(process.env.DEMO_NPM, 'package.json'))('puppeteer-core')
const { DEMO_URL, API, KEY } = process.env
const MIB = 1 << 20
const RUNS = 3
const run = promisify(execFile)
const dir = await mkdtemp(join(tmpdir(), 'upload-bench-browser-'))
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const row = (...cells) => console.log(`| ${cells.join(' | ')} |`)

async function api(method, path, body) {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  return response.status === 204 ? null : response.json()
}

/** curl PUTting the parts of a fresh upload of `path`, `parallel` at a time, then complete.
 * With `checksums`, as the client does: each part hashed before its URL is asked for and sent
 * with its checksum header, the whole file hashed (openssl) alongside and declared at complete. */
async function curlParts(path, size, parallel, { checksums = false } = {}) {
  const started = performance.now()
  const declaration = { file_name: 'curl.bin', file_size: size, content_type: 'application/octet-stream' }
  const plan = await api('POST', '/files', checksums ? { ...declaration, part_checksums: 'sha256' } : declaration)
  const numbers = Array.from({ length: plan.part_count }, (_, i) => i + 1)
  const whole = checksums ? run('sh', ['-c', 'openssl dgst -sha256 -binary "$0" | base64', path]) : null
  const file = await open(path)
  let urls = checksums ? {} : (await api('POST', `/files/${plan.file_id}/parts`, { part_numbers: numbers })).urls
  let next = 0
  const worker = async () => {
    while (next < numbers.length) {
      const n = numbers[next++]
      const offset = (n - 1) * plan.part_size
      const length = Math.min(plan.part_size, size - offset)
      let header = ''
      if (checksums) {
        const bytes = Buffer.alloc(length)
        await file.read(bytes, 0, length, offset)
        const sum = createHash('sha256').update(bytes).digest('base64')
        urls = (await api('POST', `/files/${plan.file_id}/parts`, { checksums: { [n]: sum } })).urls
        header = `-H "x-amz-checksum-sha256: ${sum}"`
      }
      // The part's bytes from the file, as the browser slices them.
      await run('sh', ['-c', `tail -c +${offset + 1} "$0" | head -c ${length} | curl -sf -X PUT -H "Content-Length: ${length}" ${header} --data-binary @- "$1"`, path, urls[n]])
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  await file.close()
  const sha256 = whole ? (await whole).stdout.trim() : undefined
  await api('POST', `/files/${plan.file_id}/complete`, sha256 ? { sha256 } : undefined)
  return (performance.now() - started) / 1000
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
})
try {
  const page = await browser.newPage()
  await page.goto(DEMO_URL, { waitUntil: 'networkidle0' })
  const size = 120 * MIB
  const path = join(dir, 'large.bin')
  await writeFile(path, randomBytes(size))
  const input = await page.evaluateHandle(() => {
    const input = document.createElement('input')
    input.type = 'file'
    input.id = 'bench-file'
    document.body.append(input)
    return input
  })
  await input.uploadFile(path)
  const browserSeconds = []
  const checkedSeconds = []
  const plainSeconds = []
  for (let i = 0; i < RUNS; i++) {
    browserSeconds.push(
      await page.evaluate(async () => {
        const file = document.querySelector('#bench-file').files[0]
        const started = performance.now()
        // A fresh file each run: nothing to resume.
        localStorage.clear()
        const done = await window.uploadClient.upload(file)
        if (done.status !== 'uploaded') throw new Error(`the client's upload: ${done.status}`)
        return (performance.now() - started) / 1000
      }),
    )
    checkedSeconds.push(await curlParts(path, size, 4, { checksums: true }))
    plainSeconds.push(await curlParts(path, size, 4))
  }
  const rate = (seconds) => size / MIB / median(seconds)
  const client = '12a. Chromium uploads 120 MiB through the client, every byte checked (8 parts 4 at a time, complete)'
  row(
    client,
    `${rate(browserSeconds).toFixed(0)} MiB/s`,
    `curl PUTs the same parts 4 at a time with their checksums, the whole file hashed alongside, ${rate(checkedSeconds).toFixed(0)} MiB/s`,
    `${(rate(browserSeconds) / rate(checkedSeconds)).toFixed(2)}×`,
    '≥ 0.8×',
  )
  row(
    client,
    `${rate(browserSeconds).toFixed(0)} MiB/s`,
    `curl PUTs the same parts 4 at a time without checksums, ${rate(plainSeconds).toFixed(0)} MiB/s`,
    `${(rate(browserSeconds) / rate(plainSeconds)).toFixed(2)}×`,
    '≥ 0.8×',
  )

  // Direct uploads of 100 KiB files against the presigned path, 4 clients, 100 files each way.
  const token = (await api('POST', '/upload-tokens', { max_files: 100, expires_in: 600 })).token
  const small = randomBytes(100 * 1024)
  const clients = 4
  const files = 100
  const timed = async (one) => {
    let left = files
    const started = performance.now()
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (left-- > 0) await one()
      }),
    )
    return files / ((performance.now() - started) / 1000)
  }
  const direct = await timed(async () => {
    const form = new FormData()
    form.append('file', new Blob([small], { type: 'application/octet-stream' }), 'small.bin')
    const response = await fetch(`${API}/uploads`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form })
    if (response.status !== 201) throw new Error(`direct upload: ${response.status} ${await response.text()}`)
  })
  const presigned = await timed(async () => {
    const plan = await api('POST', '/files', { file_name: 'small.bin', file_size: small.length, content_type: 'application/octet-stream' })
    const put = await fetch(plan.urls[0], { method: 'PUT', headers: plan.headers, body: small })
    if (!put.ok) throw new Error(`PUT: ${put.status}`)
    await api('POST', `/files/${plan.file_id}/complete`)
  })
  row(
    '12b. direct uploads of 100 KiB files (one form each, 4 clients)',
    `${direct.toFixed(1)} uploads/s`,
    `create, PUT and complete: ${presigned.toFixed(1)} uploads/s`,
    `${(direct / presigned).toFixed(2)}×`,
    '—',
  )
} finally {
  await browser.close()
  await rm(dir, { recursive: true, force: true })
}
