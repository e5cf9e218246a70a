// The demo page in a real browser: Debian's Chromium, headless, driven by puppeteer-core (which
// downloads no browser), against scripts/dev. The page, the API and storage are three origins, so
// CORS is exercised as deployed. Through the page it uploads one small file with Uppy, two files
// in one form (the direct upload), a 120 MiB file in parts with Uppy, and a spoofed image; each
// must end as it should (verified and downloaded identical, or rejected and shown so), in the
// project's list (sizes in binary units) and in Uppy's Dashboard (complete once verified, failed
// with the reason once rejected; retried, the rejected file fails again and is not sent twice).
// Then an upload in parts is interrupted by a reload and finished without sending again a part
// storage has; one is paused and resumed from the Dashboard, likewise; one is removed from the
// Dashboard mid-upload and aborted at the service; and with the Uppy plugin uninstalled nothing
// is sent, until it is installed again. A screenshot of the page, the rejected file shown
// failed, is kept.
//
// Run by scripts/browser-test, which starts scripts/dev and passes DEMO_URL, API, KEY,
// AWS_ENDPOINT_URL_S3, DEMO_NPM and ARTIFACTS.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, writeFile, mkdir, rm } from 'node:fs/promises'
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

/**
 * The API as the application's backend sees it (with the key), for what the page cannot show.
 * Its reads are safe to repeat: a 503 (the service's "try again", with its Retry-After) or a
 * gateway's 502/504 is logged and sent again, as a backend would; any other answer but a success
 * fails the test with what was said.
 */
async function api(path) {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${API}${path}`, { headers: { authorization: `Bearer ${KEY}` } })
    if (response.ok) return response.json()
    const said = `GET ${path}: ${response.status} ${await response.text()}`
    if (![502, 503, 504].includes(response.status) || attempt === 5) throw new Error(said)
    log(`${said}; again`)
    await new Promise((resolve) => setTimeout(resolve, Number(response.headers.get('retry-after') ?? 1) * 1000))
  }
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
            size: tr.querySelector('.size').textContent,
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

/** Uppy's Dashboard item of `name`, once it is finished: complete, or failed with its error. */
async function inDashboard(page, name, timeout = 120_000) {
  const handle = await page.waitForFunction(
    (name) => {
      for (const item of document.querySelectorAll('.uppy-Dashboard-Item')) {
        if (item.querySelector('.uppy-Dashboard-Item-name')?.title !== name) continue
        if (item.classList.contains('is-complete')) return { state: 'complete', error: null }
        if (item.classList.contains('is-error')) {
          return { state: 'failed', error: item.querySelector('.uppy-Dashboard-Item-errorDetails')?.getAttribute('aria-label') }
        }
      }
      return null
    },
    { timeout, polling: 100 },
    name,
  )
  return handle.jsonValue()
}

/** Clicks `selector` in the Dashboard item of `name`, as a user does. */
async function clickInDashboard(page, name, selector) {
  const item = await page.waitForFunction(
    (name) => [...document.querySelectorAll('.uppy-Dashboard-Item')].find((item) => item.querySelector('.uppy-Dashboard-Item-name')?.title === name),
    { timeout: 30_000 },
    name,
  )
  const target = await item.waitForSelector(selector, { timeout: 30_000 })
  await target.click()
}

/** The service's id of the file Uppy uploads as `name`, once the file is created. */
async function uppyFileId(page, name, timeout = 60_000) {
  const handle = await page.waitForFunction(
    (name) => window.uppy.getFiles().find((file) => file.name === name)?.meta.uploadServiceFileId,
    { timeout, polling: 50 },
    name,
  )
  return handle.jsonValue()
}

/** Until `fileId` has at least `count` parts in storage; those parts. */
async function storedParts(fileId, count, timeout = 120_000) {
  const deadline = Date.now() + timeout
  for (;;) {
    const parts = (await api(`/files/${fileId}/parts`)).parts ?? []
    if (parts.length >= count || Date.now() > deadline) return parts
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Downloads through the link the page shows, from the page's origin (the bucket's CORS allows GET). */
async function downloaded(page, url) {
  const hex = await page.evaluate(async (url) => {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer())
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
    return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('')
  }, url)
  return hex
}

/**
 * Adds files as a user's pick does: through the Dashboard's own file input (behind "Add more"
 * once it lists files), whose change event hands them to Uppy. Not by clicking "browse files"
 * and answering Chromium's file chooser: that button sits in the sliding "add more" panel, and
 * the click missed it or opened no chooser in about one run in three (the service plays no part).
 */
async function addToDashboard(page, ...files) {
  const selector = 'input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])'
  let input = await page.$(selector)
  if (!input) {
    await page.click('.uppy-DashboardContent-addMore')
    input = await page.waitForSelector(selector, { timeout: 30_000 })
  }
  await input.uploadFile(...files.map((f) => f.path))
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
  // What the reload itself cuts short (requests in flight as the page unloads) is not a problem,
  // nor Uppy's log of the failures this test makes.
  let reloading = false
  const expectedFailures = /^\[Uppy\] \[[\d:]+\] rejected: content_type_mismatch$/
  page.on('pageerror', (err) => problems.push(String(err)))
  page.on('console', (message) => {
    if (message.type() === 'error' && !reloading && !expectedFailures.test(message.text())) {
      problems.push(`${message.text()} ${message.location()?.url ?? ''}`.trim())
    }
  })
  // Every PUT to storage, by part number ('whole' for a single PUT): the resume, pause and
  // removal checks count them.
  const puts = []
  const creates = []
  page.on('request', (request) => {
    if (request.method() === 'PUT' && request.url().startsWith(STORAGE)) {
      const url = new URL(request.url())
      puts.push({ key: url.pathname, part: url.searchParams.get('partNumber') ?? 'whole' })
    }
    // Every create, by file name: the retry and uninstall checks count them.
    if (request.method() === 'POST' && request.url() === `${API}/files`) creates.push(JSON.parse(request.postData()).file_name)
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
  // Complete in the Dashboard only once the service has verified it
  assert.deepEqual(await inDashboard(page, small.name), { state: 'complete', error: null })
  const smallId = await uppyFileId(page, small.name)
  assert.equal((await api(`/files/${smallId}`)).status, 'verified', 'complete in the Dashboard once verified')
  let shown = await row(page, small.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'verified', `${small.name}: ${shown.reason}`)
  assert.equal(shown.fileId, smallId)
  assert.equal(shown.size, `${small.bytes.length} B`)
  assert.equal(await downloaded(page, shown.download), sha256(small.bytes))
  log('a small file through Uppy: verified, complete in the Dashboard, downloaded identical')

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

  // 120 MiB in parts through Uppy
  const large = await file('large.bin', randomBytes(120 * MIB))
  const started = Date.now()
  await addToDashboard(page, large)
  shown = await row(page, large.name, ['verified', 'rejected'], 300_000)
  const seconds = (Date.now() - started) / 1000
  assert.equal(shown.status, 'verified', `${large.name}: ${shown.reason}`)
  assert.equal(shown.size, '120 MiB')
  assert.deepEqual(await inDashboard(page, large.name), { state: 'complete', error: null })
  const largeParts = puts.filter((p) => p.part !== 'whole' && p.key.includes(shown.fileId))
  assert.ok(largeParts.length >= 8, `sent in parts: ${JSON.stringify(largeParts)}`)
  assert.equal(await downloaded(page, shown.download), sha256(large.bytes))
  log(`120 MiB in ${largeParts.length} parts through Uppy: verified in ${seconds.toFixed(1)} s, downloaded identical`)
  await mkdir(ARTIFACTS, { recursive: true })
  await writeFile(join(ARTIFACTS, 'browser-rates.json'), JSON.stringify({ large_seconds: seconds, bytes: large.bytes.length }))

  // A spoofed image: text named .png, declared image/png by the browser
  const spoofed = await file('spoofed.png', Buffer.from('this is not a PNG at all\n'.repeat(20)))
  await addToDashboard(page, spoofed)
  shown = await row(page, spoofed.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'rejected')
  assert.equal(shown.reason, 'content_type_mismatch')
  assert.equal(shown.download, null)
  assert.equal(shown.size, '500 B')
  assert.deepEqual(await inDashboard(page, spoofed.name), { state: 'failed', error: 'rejected: content_type_mismatch' })
  log('a spoofed image: rejected, and shown so in the list and as failed in the Dashboard')

  // A screenshot of the finished page, the rejected file shown failed
  const screenshot = join(ARTIFACTS, 'demo-page.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  log(`screenshot of the finished page: ${screenshot}`)

  // Retried, the rejected file fails again with its reason: its verdict is read again, its bytes
  // are not sent twice
  const retried = await page.evaluate(async (name) => {
    const { failed } = await window.uppy.retryUpload(window.uppy.getFiles().find((file) => file.name === name).id)
    return failed.map((file) => file.error)
  }, spoofed.name)
  assert.deepEqual(retried, ['rejected: content_type_mismatch'])
  assert.deepEqual(await inDashboard(page, spoofed.name), { state: 'failed', error: 'rejected: content_type_mismatch' })
  assert.deepEqual(creates.filter((name) => name === spoofed.name), [spoofed.name], 'the rejected file was created once')
  log('the rejected file retried: failed again with its reason, not sent again')

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

  // Paused from the Dashboard in the middle of an upload in parts, and resumed: nothing is sent
  // while it is paused, and storage's parts are not sent again
  const paused = await file('paused.bin', randomBytes(120 * MIB))
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 24 * MIB })
  await addToDashboard(page, paused)
  fileId = await uppyFileId(page, paused.name)
  stored = await storedParts(fileId, 2)
  await clickInDashboard(page, paused.name, '.uppy-Dashboard-Item-progressIndicator[title="Pause upload"]')
  await page.waitForFunction((name) => window.uppy.getFiles().find((f) => f.name === name).isPaused, {}, paused.name)
  await sleep(500) // what was in flight stops
  const sentWhilePaused = puts.length
  await sleep(2000)
  assert.deepEqual(puts.slice(sentWhilePaused), [], 'nothing sent while paused')
  const storedWhilePaused = new Set((await storedParts(fileId, 0)).map((p) => String(p.part_number)))
  assert.ok(storedWhilePaused.size >= 2 && storedWhilePaused.size < 8, `parts stored when paused: ${storedWhilePaused.size}`)
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
  await clickInDashboard(page, paused.name, '.uppy-Dashboard-Item-progressIndicator[title="Resume upload"]')
  assert.deepEqual(await inDashboard(page, paused.name, 300_000), { state: 'complete', error: null })
  shown = await row(page, paused.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'verified', `${paused.name}: ${shown.reason}`)
  assert.equal(shown.fileId, fileId, 'the same file, resumed')
  const afterResume = puts.slice(sentWhilePaused).filter((p) => p.key.includes(fileId)).map((p) => p.part)
  const resent = afterResume.filter((part) => storedWhilePaused.has(part))
  assert.deepEqual(resent, [], `parts storage had, sent again after resuming: ${resent}`)
  assert.equal(await downloaded(page, shown.download), sha256(paused.bytes))
  log(`paused after ${storedWhilePaused.size} of 8 parts, nothing sent meanwhile; resumed without sending one again; verified`)

  // Removed from the Dashboard mid-upload: its upload stops and is aborted at the service
  const removed = await file('removed.bin', randomBytes(40 * MIB))
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * MIB })
  await addToDashboard(page, removed)
  fileId = await uppyFileId(page, removed.name)
  await page.waitForFunction((name) => window.uppy.getFiles().find((f) => f.name === name).progress.bytesUploaded > 0, { polling: 50 }, removed.name)
  await clickInDashboard(page, removed.name, '.uppy-Dashboard-Item-action--remove')
  await page.waitForFunction((name) => !window.uppy.getFiles().some((f) => f.name === name), {}, removed.name)
  await sleep(500)
  const sentAfterRemoval = puts.length
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
  shown = await row(page, removed.name, ['rejected', 'verified'], 30_000)
  assert.deepEqual([shown.status, shown.reason], ['rejected', 'upload_aborted'])
  await sleep(1000)
  assert.deepEqual(puts.slice(sentAfterRemoval).filter((p) => p.key.includes(fileId)), [], 'nothing sent after the removal')
  log('removed from the Dashboard mid-upload: stopped, and aborted at the service (rejected, upload_aborted)')

  // The Uppy plugin uninstalled: a file added is not sent; installed again, it is, once
  await page.evaluate(() => {
    const plugin = window.uppy.getPlugin('UploadService')
    window.uppy.removePlugin(plugin)
    window.reinstall = () => window.uppy.use(plugin.constructor, plugin.opts).upload()
  })
  const unsent = await file('unsent.txt', Buffer.from('sent once its uploader is back\n'))
  await addToDashboard(page, unsent)
  await sleep(2000)
  assert.deepEqual(creates.filter((name) => name === unsent.name), [], 'nothing sent without the plugin')
  await page.evaluate(() => window.reinstall())
  assert.deepEqual(await inDashboard(page, unsent.name), { state: 'complete', error: null })
  shown = await row(page, unsent.name, ['verified', 'rejected'])
  assert.equal(shown.status, 'verified', `${unsent.name}: ${shown.reason}`)
  assert.deepEqual(creates.filter((name) => name === unsent.name), [unsent.name], 'sent once by the plugin installed again')
  log('uninstalled, the plugin sends nothing; installed again, it sends the file once: verified')

  assert.deepEqual(problems, [], 'no error on the page')
} catch (err) {
  if (page && ARTIFACTS) {
    await mkdir(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'demo-page-failed.png'), fullPage: true }).catch(() => {})
  }
  throw err
} finally {
  await browser.close()
  // The test's files come to some 640 MB: every run left them in the temporary directory.
  await rm(dir, { recursive: true, force: true })
}
