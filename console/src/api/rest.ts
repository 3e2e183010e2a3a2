// The REST API of DESIGN §3, with the API key in the Authorization header and nowhere else.

import type {
  Agent,
  AgentDraft,
  AgentPage,
  CreatedKey,
  ErrorBody,
  EventPage,
  Execution,
  ExecutionPage,
  InputData,
  KeyList,
} from './types'

/** An answer in the contract's error shape; `field` names the input the message is about. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }

  /** The field a validation message names (`'config.top_k' must be …` → `top_k`). */
  get field(): string | null {
    const named = /'([A-Za-z_.]+)'/.exec(this.message)
    return named ? (named[1]!.split('.').pop() ?? null) : null
  }
}

export type Fetch = typeof fetch

export interface Api {
  listAgents(limit: number, nextToken?: string | null): Promise<AgentPage>
  getAgent(agentId: string): Promise<Agent>
  createAgent(draft: AgentDraft): Promise<Agent>
  updateAgent(agentId: string, draft: Partial<AgentDraft>): Promise<Agent>
  deleteAgent(agentId: string): Promise<void>
  startExecution(agentId: string, input: InputData, idempotencyKey: string): Promise<Execution>
  listExecutions(agentId: string, limit: number, nextToken?: string | null): Promise<ExecutionPage>
  getExecution(executionId: string): Promise<Execution>
  listEvents(executionId: string, after: number, limit?: number): Promise<EventPage>
  stopExecution(executionId: string): Promise<Execution>
  listKeys(): Promise<KeyList>
  createKey(name: string): Promise<CreatedKey>
  revokeKey(keyId: string): Promise<void>
}

function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined) search.set(key, String(value))
  const text = search.toString()
  return text ? `?${text}` : ''
}

export function createApi(baseUrl: string, apiKey: string, fetchImpl: Fetch = fetch.bind(globalThis)): Api {
  const root = baseUrl.replace(/\/$/, '')

  async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    let response: Response
    try {
      response = await fetchImpl(`${root}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${apiKey}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch {
      throw new ApiError(0, 'network_error', `Could not reach the API at ${root}. Is it running?`)
    }
    if (response.status === 204) return undefined as T
    const payload: unknown = await response.json().catch(() => null)
    if (!response.ok) {
      const error = (payload as ErrorBody | null)?.error
      throw new ApiError(response.status, error?.code ?? 'error', error?.message ?? `The API answered ${response.status}.`)
    }
    return payload as T
  }

  return {
    listAgents: (limit, nextToken) => call('GET', `/agents${query({ limit, next_token: nextToken })}`),
    getAgent: (agentId) => call('GET', `/agents/${agentId}`),
    createAgent: (draft) => call('POST', '/agents', draft),
    updateAgent: (agentId, draft) => call('PATCH', `/agents/${agentId}`, draft),
    deleteAgent: (agentId) => call('DELETE', `/agents/${agentId}`),
    startExecution: (agentId, input, idempotencyKey) =>
      call('POST', `/agents/${agentId}/executions`, { input_data: input }, { 'Idempotency-Key': idempotencyKey }),
    listExecutions: (agentId, limit, nextToken) =>
      call('GET', `/agents/${agentId}/executions${query({ limit, next_token: nextToken })}`),
    getExecution: (executionId) => call('GET', `/executions/${executionId}`),
    listEvents: (executionId, after, limit = 100) => call('GET', `/executions/${executionId}/events${query({ after, limit })}`),
    stopExecution: (executionId) => call('POST', `/executions/${executionId}/stop`),
    listKeys: () => call('GET', '/keys'),
    createKey: (name) => call('POST', '/keys', { name }),
    revokeKey: (keyId) => call('DELETE', `/keys/${keyId}`),
  }
}
