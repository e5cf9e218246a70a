// The demo page in a real browser: Debian's Chromium, headless, driven by puppeteer-core (which
// downloads no browser), against scripts/dev. The page, the API and storage are three origins, so
// CORS is exercised as deployed. Through the page it uploads one small file with Uppy, two files
// in one form (the direct upload), a 120 MiB file in parts with Uppy, and a spoofed image; each
// must end as it should (verified and downloaded identical, or rejected and shown so). Then an
// upload in parts is interrupted by a reload and finished without sending again a part storage
// has. A screenshot of the finished page is kept.
//
// Run by scripts/browser-test, which starts scripts/dev and passes DEMO_URL, API, KEY,
// AWS_ENDPOINT_URL_S3, DEMO_NPM and ARTIFACTS.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

// From the cache where scripts/lib.sh installs clients/demo's pinned packages.
const puppeteer = createRequire(join(process.env.DEMO_NPM, 'package.json'))('puppeteer-core')

const { DEMO_URL, API, KEY, AWS_ENDPOINT_URL_S3: STORAGE, ARTIFACTS } = process.env
const MIB = 1 << 20
const dir = await mkdtemp(join(tmpdir(), 'upload-browser-'))

function log(message) {
  console.error(`browser: ${message}`)
}

async function file(name, bytes) {
  const path = join(dir, name)
  await writeFile(path, bytes)
  return { name, path, bytes }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

/** The API as the application's backend sees it (with the key), for what the page cannot show. */
async function api(path) {
  const response = await fetch(`${API}${path}`, { headers: { authorization: `Bearer ${KEY}` } })
  return response.json()
}

/** Waits until the page's list shows `name` in one of `statuses`; its row's data. */
async function row(page, name, statuses, timeout = 120_000) {
  const handle = await page.waitForFunction(
    (name, statuses) => {
      for (const tr of document.querySelectorAll('#files tr')) {
        if (tr.querySelector('.name')?.textContent === name && statuses.includes(tr.dataset.status)) {
          return {
            fileId: tr.dataset.fileId,
            status: tr.dataset.status,
            reason: tr.querySelector('.reason').textContent,
            download: tr.querySelector('a')?.href ?? null,
          }
        }
      }
      return null
    },
    { timeout, polling: 250 },
    name,
    statuses,
  )
  return handle.jsonValue()
}

/** Downloads through the link the page shows, from the page's origin (the bucket's CORS allows GET). */
async function downloaded(page, url) {
  const hex = await page.evaluate(async (url) => {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer())
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
    return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('')
  }, url)
  return hex
}

/** Adds files as a user does: the Dashboard's "browse files" (behind "Add more" once it lists files). */
async function addToDashboard(page, ...files) {
  if (!(await page.$('.uppy-Dashboard-browse'))) {
    await page.click('.uppy-DashboardContent-addMore')
  }
  const browse = await page.waitForSelector('.uppy-Dashboard-browse', { timeout: 30_000 })
  const [chooser] = await Promise.all([page.waitForFileChooser({ timeout: 30_000 }), browse.click()])
  await chooser.accept(files.map((f) => f.path))
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
})
let page
try {
  page = await browser.newPage()
  await page.setViewport({ width: 1200, height: 1400 })
  const problems = []
  // What the reload itself cuts short (requests in flight as the page unloads) is not a problem.
  let reloading = false
  page.on('pageerror', (err) => problems.push(String(err)))
  page.on('console', (message) => message.type() === 'error' && !reloading && problems.push(message.text()))
  // Every PUT to storage, by part number ('whole' for a single PUT): the resume check counts them.
  const puts = []
  page.on('request', (request) => {
    if (request.method() === 'PUT' && request.url().startsWith(STORAGE)) {
      const url = new URL(request.url())
      puts.push({ key: url.pathname, part: url.searchParams.get('partNumber') ?? 'whole' })
    }
  })
  await page.goto(DEMO_URL, { waitUntil: 'networkidle0' })

  // Every byte checked at any size (API v1.2): 120 MiB through Uppy, one part corrupted on its
  // way to storage on its first attempt (in the page: the PUT's body has a byte flipped). Storage
  // refuses that part for its checksum, the client reads it again from the file and resends it,
  // and the file is verified.
  const corrupted = await file('corrupted.bin', randomBytes(120 * MIB))
  const CORRUPTED_PART = '3'
  await page.evaluate((part) => {
    const { open, send } = XMLHttpRequest.prototype
    window.corruptedPuts = 0
    XMLHttpRequest.prototype.open = function (method, url, ...rest) {
      this.target = `${method} ${url}`
      return open.call(this, method, url, ...rest)
    }
    XMLHttpRequest.prototype.send = function (body) {
      const disarmed = window.corruptedPuts > 0
      if (disarmed || !this.target.startsWith('PUT ') || new URL(this.target.slice(4)).searchParams.get('partNumber') !== part) {
        return send.call(this, body)
      }
      window.corruptedPuts++
      body.slice(0, 1).arrayBuffer().then((first) => {
        send.call(this, new Blob([new Uint8Array([new Uint8Array(first)[0] ^ 0x01]), body.slice(1)]))
      })
    }
  }, CORRUPTED_PART)
  const storageAnswers = []
  const onResponse = (response) => {
    const request = response.request()
    if (request.method() === 'PUT' && request.url().startsWith(STORAGE)) {
      storageAnswers.push({ url: request.url(), part: new URL(request.url()).searchParams.get('partNumber'), status: response.status() })
    }
  }
  page.on('response', onResponse)
  const problemsBefore = problems.length
  await addToDashboard(page, corrupted)
  let checked = await row(page, corrupted.name, ['verified', 'rejected'], 300_000)
  page.off('response', onResponse)
  assert.equal(checked.status, 'verified', `${corrupted.name}: ${checked.reason}`)
  assert.equal(await page.evaluate(() => window.corruptedPuts), 1, 'one PUT corrupted')
  const ofFile = storageAnswers.filter((a) => a.url.includes(checked.fileId))
  const corruptedAnswers = ofFile.filter((a) => a.part === CORRUPTED_PART).map((a) => a.status)
  assert.deepEqual(corruptedAnswers, [400, 200], `storage refused the corrupted part, then took it resent: ${JSON.stringify(ofFile)}`)
  assert.deepEqual(ofFile.filter((a) => a.status !== 200).length, 1, 'no other part refused')
  assert.equal(new Set(ofFile.filter((a) => a.status === 200).map((a) => a.part)).size, 8, 'each of the 8 parts stored')
  // The refused PUT is the one error the page logs (Chromium's "Failed to load resource").
  assert.deepEqual(problems.slice(problemsBefore).map((p) => /status of 400/.test(p)), [true], `the page's errors: ${problems.slice(problemsBefore)}`)
  problems.length = problemsBefore
  assert.equal(await downloaded(page, checked.download), sha256(corrupted.bytes))
  log('120 MiB with a part corrupted on its way: storage refused it (400), the client resent it, verified, downloaded identical')

  // A whole-file SHA-256 at complete that is not the file's ends rejected: verify checks it. The
  // client is the page's, with a hasher that answers a wrong digest.
  const misdeclared = await file('misdeclared.bin', randomBytes(120 * MIB))
  const picked = await page.evaluateHandle(() => {
    const input = document.createElement('input')
    input.type = 'file'
    document.body.append(input)
    return input
  })
  await picked.uploadFile(misdeclared.path)
  const completed = await page.evaluate(async (input) => {
    const { constructor: Client, apiUrl, token } = window.uploadClient
    const zeros = btoa(String.fromCharCode(...new Uint8Array(32)))
    const client = new Client({ apiUrl, token, hasher: async () => zeros })
    const requests = []
    const fetch = (url, init) => {
      requests.push({ url: String(url), body: init?.body })
      return window.fetch(url, init)
    }
    client.fetch = fetch
    const done = await client.upload(input.files[0])
    input.remove()
    const complete = requests.find((r) => r.url.endsWith(`/files/${done.file_id}/complete`))
    return { fileId: done.file_id, status: done.status, completeBody: complete?.body ?? null, zeros }
  }, picked)
  assert.equal(completed.status, 'uploaded')
  assert.deepEqual(JSON.parse(completed.completeBody), { sha256: completed.zeros })
  checked = await row(page, misdeclared.name, ['verified', 'rejected'], 300_000)
  assert.equal(checked.fileId, completed.fileId)
  assert.deepEqual([checked.status, checked.reason], ['rejected', 'checksum_mismatch'])
  log('120 MiB declared at complete with a wrong SHA-256: rejected, checksum_mismatch')

  // One small file through Uppy: a single PUT
  const small = await file('small.txt', Buffer.from('hello from a real browser\n'))
  await addToDashboard(page, small)
  let shown = await row(page, small.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'verified', `${small.name}: ${shown.reason}`)
  assert.equal(await downloaded(page, shown.download), sha256(small.bytes))
  log('a small file through Uppy: verified, downloaded identical')

  // Two files in one form: the direct upload
  const first = await file('first.csv', Buffer.from('a,b\n1,2\n'))
  const second = await file('second.json', Buffer.from('{"direct": true}\n'))
  const picker = await page.$('#direct-files')
  await picker.uploadFile(first.path, second.path)
  await page.click('#direct-send')
  for (const sent of [first, second]) {
    shown = await row(page, sent.name, ['verified', 'rejected'])
    assert.equal(shown.status, 'verified', `${sent.name}: ${shown.reason}`)
    assert.equal(await downloaded(page, shown.download), sha256(sent.bytes))
  }
  log('two files in one form: both verified, downloaded identical')

  // A spoofed image: text named .png, declared image/png by the browser
  const spoofed = await file('spoofed.png', Buffer.from('this is not a PNG at all\n'.repeat(20)))
  await addToDashboard(page, spoofed)
  shown = await row(page, spoofed.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'rejected')
  assert.equal(shown.reason, 'content_type_mismatch')
  assert.equal(shown.download, null)
  log('a spoofed image: rejected, and shown so')

  // 120 MiB in parts through Uppy
  const large = await file('large.bin', randomBytes(120 * MIB))
  const started = Date.now()
  await addToDashboard(page, large)
  shown = await row(page, large.name, ['verified', 'rejected'], 300_000)
  const seconds = (Date.now() - started) / 1000
  assert.equal(shown.status, 'verified', `${large.name}: ${shown.reason}`)
  const largeParts = puts.filter((p) => p.part !== 'whole' && p.key.includes(shown.fileId))
  assert.ok(largeParts.length >= 8, `sent in parts: ${JSON.stringify(largeParts)}`)
  assert.equal(await downloaded(page, shown.download), sha256(large.bytes))
  log(`120 MiB in ${largeParts.length} parts through Uppy: verified in ${seconds.toFixed(1)} s, downloaded identical`)
  await mkdir(ARTIFACTS, { recursive: true })
  await writeFile(join(ARTIFACTS, 'browser-rates.json'), JSON.stringify({ large_seconds: seconds, bytes: large.bytes.length }))

  const screenshot = join(ARTIFACTS, 'demo-page.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  log(`screenshot of the finished page: ${screenshot}`)

  // A reload in the middle of an upload in parts: storage's parts are not sent again
  const resumed = await file('resumed.bin', randomBytes(120 * MIB))
  const cdp = await page.createCDPSession()
  await cdp.send('Network.enable')
  // Slowed down, so that the reload lands mid-upload.
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 24 * MIB })
  await addToDashboard(page, resumed)
  let fileId = null
  let stored = []
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    const listed = await api('/files?limit=20')
    fileId = listed.files.find((f) => f.file_name === resumed.name)?.file_id ?? null
    if (fileId) {
      stored = (await api(`/files/${fileId}/parts`)).parts ?? []
      if (stored.length >= 2) break
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.ok(stored.length >= 2 && stored.length < 8, `parts stored before the reload: ${stored.length}`)
  const before = new Set(stored.map((p) => String(p.part_number)))
  const sentBefore = puts.length
  reloading = true
  await page.reload({ waitUntil: 'networkidle0' })
  reloading = false
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }).catch(() => {})
  await addToDashboard(page, resumed)
  shown = await row(page, resumed.name, ['verified', 'rejected'], 300_000)
  assert.equal(shown.status, 'verified', `${resumed.name}: ${shown.reason}`)
  assert.equal(shown.fileId, fileId, 'the same file, resumed')
  const after = puts.slice(sentBefore).filter((p) => p.key.includes(fileId)).map((p) => p.part)
  const again = after.filter((part) => before.has(part))
  assert.deepEqual(again, [], `parts storage had, sent again after the reload: ${again}`)
  assert.equal(await downloaded(page, shown.download), sha256(resumed.bytes))
  log(`a reload after ${before.size} of 8 parts: resumed, ${after.length} parts sent after it, none again; verified`)

  assert.deepEqual(problems, [], 'no error on the page')
} catch (err) {
  if (page && ARTIFACTS) {
    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'demo-page-failed.png'), fullPage: true }).catch(() => {})
  }
  throw err
} finally {
  await browser.close()
}
