import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { Collection, CollectionDocument } from '@/api/types'
import { POLL_MS, useCollectionsStore } from '@/stores/collections'
import { useContractStore } from '@/stores/contract'
import { useRunsStore } from '@/stores/runs'
import { useSessionStore } from '@/stores/session'
import { execution } from './fakes'

/** A scripted API behind `fetch`: each test answers the routes it needs; every call is kept. */
type Route = (url: URL, init: RequestInit) => Response | Promise<Response>
let routes: Record<string, Route>
let calls: { method: string; url: URL; init: RequestInit }[]

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status })

function memoryStorage(): Storage {
  const items = new Map<string, string>()
  return {
    get length() {
      return items.size
    },
    clear: () => items.clear(),
    getItem: (key) => items.get(key) ?? null,
    key: (index) => [...items.keys()][index] ?? null,
    removeItem: (key) => void items.delete(key),
    setItem: (key, value) => void items.set(key, value),
  }
}

beforeEach(() => {
  routes = {}
  calls = []
  vi.stubGlobal('localStorage', memoryStorage())
  localStorage.setItem('dynavera.apiKey', 'dv_key')
  vi.stubGlobal('fetch', async (input: string, init: RequestInit = {}) => {
    const url = new URL(input)
    const method = init.method ?? 'GET'
    calls.push({ method, url, init })
    const route = routes[`${method} ${url.pathname}`] ?? routes[`${method} ${url.origin}${url.pathname}`]
    if (!route) return json({ error: { code: 'not_found', message: `no route ${method} ${url.pathname}` } }, 404)
    return route(url, init)
  })
  setActivePinia(createPinia())
  useSessionStore().configure({ apiUrl: 'http://api.test', wsUrl: 'ws://api.test/ws' })
})

afterEach(() => {
  vi.useRealTimers()
  vi.unstubAllGlobals()
})

function collection(name: string, extra: Partial<Collection> = {}): Collection {
  return {
    collection_id: `c-${name}`,
    name,
    description: '',
    status: 'active',
    document_count: 0,
    chunk_count: 0,
    created_at: '2026-11-30T06:00:00Z',
    updated_at: '2026-11-30T06:00:00Z',
    ...extra,
  }
}

function document(status: CollectionDocument['status'], extra: Partial<CollectionDocument> = {}): CollectionDocument {
  return {
    document_id: 'd-1',
    collection_id: 'c-papers',
    filename: 'notes.md',
    size: 12,
    sha256: null,
    status,
    chunks_total: 0,
    chunks_done: 0,
    error: null,
    created_at: '2026-11-30T06:00:00Z',
    indexed_at: null,
    ...extra,
  }
}

describe('the session', () => {
  it('signs out with a reason when any call answers 401', async () => {
    routes['GET /agents'] = () => json({ error: { code: 'unauthorized', message: 'Invalid API key.' } }, 401)
    const session = useSessionStore()
    await expect(session.api.listAgents(1)).rejects.toMatchObject({ status: 401 })
    expect(session.signedIn).toBe(false)
    expect(session.notice).toContain('no longer accepts your key')
    expect(localStorage.getItem('dynavera.apiKey')).toBeNull()
  })
})

describe('the contract store', () => {
  it('reads bounds from the OpenAPI document, once', async () => {
    routes['GET /openapi.json'] = () =>
      json({ paths: { '/collections': {} }, components: { schemas: { AgentConfig: { properties: { top_k: { minimum: 1, maximum: 20 } } } } } })
    const contract = useContractStore()
    expect(contract.bounds('AgentConfig', 'top_k')).toBeNull()
    await Promise.all([contract.load(), contract.load()])
    expect(calls).toHaveLength(1)
    expect(contract.bounds('AgentConfig', 'top_k')).toEqual({ minimum: 1, maximum: 20 })
    expect(contract.bounds('AgentConfig', 'collection')).toBeNull()
    expect(contract.serves('/collections')).toBe(true)
  })

  it('leaves hints out when the document cannot be read, and tries again later', async () => {
    routes['GET /openapi.json'] = () => json({ error: { code: 'internal_error', message: 'x' } }, 500)
    const contract = useContractStore()
    await contract.load()
    expect(contract.bounds('AgentConfig', 'top_k')).toBeNull()
    await contract.load()
    expect(calls).toHaveLength(2)
  })
})

describe('the runs store', () => {
  it('sends only the filters given, pages on, and starts over on a new search', async () => {
    const first = { ...execution('completed'), execution_id: 'e-1' }
    const second = { ...execution('failed'), execution_id: 'e-2' }
    routes['GET /executions'] = (url) =>
      url.searchParams.get('next_token')
        ? json({ executions: [second, first], next_token: null })
        : json({ executions: [first], next_token: 'tok' })
    const runs = useRunsStore()
    await runs.search({ q: '  ', status: 'completed', agent_id: '' })
    expect(calls[0]!.url.search).toBe('?status=completed&limit=25')
    expect(runs.loaded && runs.hasMore).toBe(true)
    await runs.loadMore()
    expect(calls[1]!.url.searchParams.get('next_token')).toBe('tok')
    expect(runs.executions.map((e) => e.execution_id)).toEqual(['e-1', 'e-2'])
    expect(runs.hasMore).toBe(false)
    await runs.search({ q: 'fNIRS' })
    expect(calls[2]!.url.searchParams.get('q')).toBe('fNIRS')
    expect(runs.executions.map((e) => e.execution_id)).toEqual(['e-1'])
  })

  it('keeps the newest search when an older answer arrives last', async () => {
    let release: (response: Response) => void = () => undefined
    const slow = { ...execution('completed'), execution_id: 'old' }
    const fresh = { ...execution('completed'), execution_id: 'new' }
    routes['GET /executions'] = (url) =>
      url.searchParams.get('q') === 'old'
        ? new Promise<Response>((resolve) => (release = resolve))
        : json({ executions: [fresh], next_token: null })
    const runs = useRunsStore()
    const older = runs.search({ q: 'old' })
    await runs.search({ q: 'new' })
    release(json({ executions: [slow], next_token: null }))
    await older
    expect(runs.executions.map((e) => e.execution_id)).toEqual(['new'])
    expect(runs.loading).toBe(false)
  })

  it('shows an error and no empty state when the list cannot be read', async () => {
    routes['GET /executions'] = () => json({ error: { code: 'validation_error', message: "'q' is too long.", field: 'q' } }, 400)
    const runs = useRunsStore()
    await runs.search({ q: 'x' })
    expect(runs.error).toBe("'q' is too long.")
    expect(runs.loaded).toBe(false)
  })
})

describe('the collections store', () => {
  it('says why a collection an agent names cannot be deleted, and keeps it', async () => {
    routes['GET /collections'] = () => json({ collections: [collection('papers')], next_token: null })
    routes['DELETE /collections/c-papers'] = () =>
      json({ error: { code: 'in_use', message: "Collection 'papers' is used by 1 agent(s) (Reader)." } }, 409)
    const collections = useCollectionsStore()
    await collections.load()
    await expect(collections.remove(collections.all[0]!)).rejects.toMatchObject({ code: 'in_use', message: expect.stringContaining('Reader') })
    expect(collections.all[0]!.status).toBe('active')
  })

  it('uploads a new file with the presigned POST, skips bytes already held, and reports a refusal', async () => {
    const posted: FormData[] = []
    routes['GET /collections/c-papers'] = () => json(collection('papers'))
    routes['GET /collections/c-papers/documents'] = () => json({ documents: [], next_token: null })
    routes['POST /collections/c-papers/documents'] = (_url, init) => {
      const body = JSON.parse(String(init.body)) as { filename: string; size: number; sha256: string }
      if (body.filename === 'same.md') return json({ document: document('indexed', { filename: 'same.md' }), upload: null })
      if (body.filename === 'big.pdf') return json({ error: { code: 'too_large', message: "'size' is over the limit.", field: 'size' } }, 400)
      expect(body.sha256).toMatch(/^[0-9a-f]{64}$/)
      return json({ document: document('awaiting_upload'), upload: { url: 'http://s3.test/bucket', fields: { key: 'uploads/k', policy: 'p' } } }, 201)
    }
    routes['POST http://s3.test/bucket'] = (_url, init) => {
      posted.push(init.body as FormData)
      return new Response(null, { status: 204 })
    }
    const collections = useCollectionsStore()
    await collections.open('c-papers')
    await collections.upload([
      new File(['# fact'], 'notes.md'),
      new File(['same'], 'same.md'),
      new File(['x'], 'big.pdf'),
    ])
    expect(collections.uploads.map((u) => [u.filename, u.state])).toEqual([
      ['notes.md', 'uploaded'],
      ['same.md', 'unchanged'],
      ['big.pdf', 'failed'],
    ])
    expect(collections.uploads[2]!.message).toBe("'size' is over the limit.")
    expect([...posted[0]!.keys()]).toEqual(['key', 'policy', 'file'])
    expect(calls.find((c) => c.url.host === 's3.test')!.init.headers).toBeUndefined()
    collections.close()
  })

  it('polls while a document moves and stops once every one is settled or the page closes', async () => {
    vi.useFakeTimers()
    const states: CollectionDocument[] = [
      document('embedding', { chunks_total: 4, chunks_done: 1 }),
      document('embedding', { chunks_total: 4, chunks_done: 3 }),
      document('indexed', { chunks_total: 4, chunks_done: 4 }),
    ]
    let reads = 0
    routes['GET /collections/c-papers'] = () => json(collection('papers'))
    routes['GET /collections/c-papers/documents'] = () => json({ documents: [states[Math.min(reads++, 2)]], next_token: null })
    const collections = useCollectionsStore()
    await collections.open('c-papers')
    expect(collections.documents[0]!.chunks_done).toBe(1)
    await vi.advanceTimersByTimeAsync(POLL_MS)
    expect(collections.documents[0]!.chunks_done).toBe(3)
    await vi.advanceTimersByTimeAsync(POLL_MS)
    expect(collections.documents[0]!.status).toBe('indexed')
    await vi.advanceTimersByTimeAsync(POLL_MS * 5)
    expect(reads).toBe(3)
    collections.close()
  })
})
