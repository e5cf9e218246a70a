// The local API Gateway's CORS, in front of cargo lambda watch (which has none): what
// template.yaml's HttpApi CorsConfiguration makes API Gateway do, so that a page on another
// origin (the demo's) meets the same rules locally as deployed. API Gateway answers preflight
// requests itself and adds the CORS headers to the functions' answers; a request from an origin
// not allowed gets none, and the browser refuses it. Node's standard library only.
//
//   node scripts/gateway.mjs --port 9000 --upstream 127.0.0.1:9100 --allow-origin http://127.0.0.1:9001
import { createServer, request as forward } from 'node:http'
import { parseArgs } from 'node:util'

// As template.yaml's HttpApi CorsConfiguration (the tests hold the two in step).
export const ALLOW_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']
export const ALLOW_HEADERS = ['authorization', 'content-type', 'idempotency-key']
export const EXPOSE_HEADERS = ['x-request-id', 'retry-after', 'idempotent-replayed']
export const MAX_AGE = 3600

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    upstream: { type: 'string' },
    'allow-origin': { type: 'string', multiple: true, default: [] },
  },
})
const [upstreamHost, upstreamPort] = args.upstream.split(':')
const allowed = new Set(args['allow-origin'])

createServer((request, response) => {
  const origin = request.headers.origin
  const cors = origin && (allowed.has(origin) || allowed.has('*'))
  const preflight = request.method === 'OPTIONS' && request.headers['access-control-request-method']
  if (preflight) {
    const headers = { vary: 'origin' }
    const wanted = (request.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean)
    if (cors && ALLOW_METHODS.includes(request.headers['access-control-request-method']) && wanted.every((h) => ALLOW_HEADERS.includes(h))) {
      Object.assign(headers, {
        'access-control-allow-origin': origin,
        'access-control-allow-methods': ALLOW_METHODS.join(','),
        'access-control-allow-headers': ALLOW_HEADERS.join(','),
        'access-control-max-age': String(MAX_AGE),
      })
    }
    response.writeHead(204, headers)
    return response.end()
  }
  const upstream = forward(
    { host: upstreamHost, port: upstreamPort, method: request.method, path: request.url, headers: request.headers },
    (answer) => {
      const headers = { ...answer.headers }
      if (cors) {
        headers['access-control-allow-origin'] = origin
        headers['access-control-expose-headers'] = EXPOSE_HEADERS.join(',')
        headers.vary = 'origin'
      }
      response.writeHead(answer.statusCode, headers)
      answer.pipe(response)
    },
  )
  upstream.on('error', (err) => {
    response.writeHead(502, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ message: `the functions did not answer: ${err.message}` }))
  })
  request.pipe(upstream)
}).listen(Number(args.port), '127.0.0.1')
