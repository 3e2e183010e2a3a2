import { describe, expect, it } from 'vitest'

import { ApiError, createApi } from '@/api/rest'

describe('the REST client', () => {
  it('sends the key only in the Authorization header', async () => {
    const seen: { url: string; init: RequestInit }[] = []
    const api = createApi('http://api.test/', 'secret-key', async (url, init) => {
      seen.push({ url: String(url), init: init ?? {} })
      return new Response(JSON.stringify({ agents: [], next_token: null }), { status: 200 })
    })
    await api.listAgents(5, 'abc')
    expect(seen[0]!.url).toBe('http://api.test/agents?limit=5&next_token=abc')
    expect(seen[0]!.url).not.toContain('secret-key')
    expect((seen[0]!.init.headers as Record<string, string>).Authorization).toBe('Bearer secret-key')
  })

  it('creates a key by name and revokes one by its id', async () => {
    const seen: { url: string; method: string; body: unknown }[] = []
    const api = createApi('http://api.test', 'k', async (url, init) => {
      seen.push({ url: String(url), method: init?.method ?? 'GET', body: init?.body ? JSON.parse(String(init.body)) : null })
      return init?.method === 'DELETE' ? new Response(null, { status: 204 }) : new Response('{"key": "dv_x"}', { status: 201 })
    })
    expect((await api.createKey('laptop')).key).toBe('dv_x')
    await api.revokeKey('0b6f6f0e-2d55-4f7c-9a0e-0d7f0f9c1a11')
    expect(seen).toEqual([
      { url: 'http://api.test/keys', method: 'POST', body: { name: 'laptop' } },
      { url: 'http://api.test/keys/0b6f6f0e-2d55-4f7c-9a0e-0d7f0f9c1a11', method: 'DELETE', body: null },
    ])
  })

  it("turns the contract's error shape into an ApiError naming the field", async () => {
    const api = createApi('http://api.test', 'k', async () =>
      new Response(
        JSON.stringify({ error: { code: 'validation_error', message: 'Passages retrieved must be at most twenty.', field: 'config.top_k' } }),
        { status: 400 },
      ),
    )
    const error = await api.createAgent({ name: 'x' }).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(ApiError)
    // The field comes from the body, never from reading the English message.
    expect(error).toMatchObject({ status: 400, code: 'validation_error', field: 'config.top_k' })
  })

  it('says when the API cannot be reached', async () => {
    const api = createApi('http://api.test', 'k', async () => {
      throw new TypeError('Failed to fetch')
    })
    await expect(api.getAgent('a')).rejects.toMatchObject({ code: 'network_error' })
  })
})
