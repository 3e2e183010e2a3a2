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
