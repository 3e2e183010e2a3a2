// The REST API of DESIGN §3, with the API key in the Authorization header and nowhere else.

import type {
  Agent,
  AgentDraft,
  AgentPage,
  Collection,
  CollectionDocument,
  CollectionPage,
  DocumentPage,
  CreatedKey,
  ErrorBody,
  EventPage,
  Execution,
  ExecutionFilters,
  ExecutionPage,
  InputData,
  NewDocument,
  PresignedPost,
  RunOverrides,
  KeyList,
} from './types'
import type { paths } from './schema'

/** The OpenAPI document as far as the console reads it: the bounds of the agent's settings. */
export interface OpenApiDocument {
  components: { schemas: Record<string, { properties?: Record<string, { minimum?: number; maximum?: number }> }> }
  paths: Partial<Record<keyof paths, unknown>>
}

/** An answer in the contract's error shape; `field` names the input the message is about
 * (`config.top_k`), as the API says it, when the error is about one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export type Fetch = typeof fetch

export interface Api {
  listAgents(limit: number, nextToken?: string | null): Promise<AgentPage>
  getAgent(agentId: string): Promise<Agent>
  createAgent(draft: AgentDraft): Promise<Agent>
  updateAgent(agentId: string, draft: Partial<AgentDraft>): Promise<Agent>
  deleteAgent(agentId: string): Promise<void>
  startExecution(agentId: string, input: InputData, idempotencyKey: string, overrides?: RunOverrides): Promise<Execution>
  listExecutions(agentId: string, limit: number, nextToken?: string | null): Promise<ExecutionPage>
  /** The caller's runs across agents, newest first, filtered on the server. */
  listAllExecutions(filters: ExecutionFilters, limit: number, nextToken?: string | null): Promise<ExecutionPage>
  getExecution(executionId: string): Promise<Execution>
  listEvents(executionId: string, after: number, limit?: number): Promise<EventPage>
  stopExecution(executionId: string): Promise<Execution>
  openApi(): Promise<OpenApiDocument>
  listCollections(limit: number, nextToken?: string | null): Promise<CollectionPage>
  getCollection(collectionId: string): Promise<Collection>
  createCollection(name: string, description: string): Promise<Collection>
  deleteCollection(collectionId: string): Promise<Collection>
  listDocuments(collectionId: string, limit: number, nextToken?: string | null): Promise<DocumentPage>
  createDocument(collectionId: string, file: { filename: string; size: number; sha256?: string }): Promise<NewDocument>
  deleteDocument(collectionId: string, documentId: string): Promise<CollectionDocument>
  /** The file itself, straight to S3 with the presigned POST: no API key goes with it. */
  upload(target: PresignedPost, file: Blob, filename: string): Promise<void>
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

export function createApi(
  baseUrl: string,
  apiKey: string,
  fetchImpl: Fetch = (...args) => fetch(...args),
  onUnauthorized: () => void = () => undefined,
): Api {
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
    if (response.status === 401) onUnauthorized()
    if (!response.ok) {
      const error = (payload as ErrorBody | null)?.error
      throw new ApiError(
        response.status,
        error?.code ?? 'error',
        error?.message ?? `The API answered ${response.status}.`,
        error?.field ?? null,
      )
    }
    return payload as T
  }

  return {
    listAgents: (limit, nextToken) => call('GET', `/agents${query({ limit, next_token: nextToken })}`),
    getAgent: (agentId) => call('GET', `/agents/${agentId}`),
    createAgent: (draft) => call('POST', '/agents', draft),
    updateAgent: (agentId, draft) => call('PATCH', `/agents/${agentId}`, draft),
    deleteAgent: (agentId) => call('DELETE', `/agents/${agentId}`),
    startExecution: (agentId, input, idempotencyKey, overrides) =>
      call(
        'POST',
        `/agents/${agentId}/executions`,
        overrides && Object.keys(overrides).length ? { input_data: input, config: overrides } : { input_data: input },
        { 'Idempotency-Key': idempotencyKey },
      ),
    listExecutions: (agentId, limit, nextToken) =>
      call('GET', `/agents/${agentId}/executions${query({ limit, next_token: nextToken })}`),
    getExecution: (executionId) => call('GET', `/executions/${executionId}`),
    listEvents: (executionId, after, limit = 100) => call('GET', `/executions/${executionId}/events${query({ after, limit })}`),
    listAllExecutions: (filters, limit, nextToken) =>
      call('GET', `/executions${query({ ...filters, limit, next_token: nextToken })}`),
    stopExecution: (executionId) => call('POST', `/executions/${executionId}/stop`),
    openApi: () => call('GET', '/openapi.json'),
    listCollections: (limit, nextToken) => call('GET', `/collections${query({ limit, next_token: nextToken })}`),
    getCollection: (collectionId) => call('GET', `/collections/${collectionId}`),
    createCollection: (name, description) => call('POST', '/collections', description ? { name, description } : { name }),
    deleteCollection: (collectionId) => call('DELETE', `/collections/${collectionId}`),
    listDocuments: (collectionId, limit, nextToken) =>
      call('GET', `/collections/${collectionId}/documents${query({ limit, next_token: nextToken })}`),
    createDocument: (collectionId, file) => call('POST', `/collections/${collectionId}/documents`, file),
    deleteDocument: (collectionId, documentId) => call('DELETE', `/collections/${collectionId}/documents/${documentId}`),
    upload: async (target, file, filename) => {
      const form = new FormData()
      for (const [name, value] of Object.entries(target.fields)) form.append(name, value)
      form.append('file', file, filename) // S3 reads every field after `file` as content, so it goes last.
      let response: Response
      try {
        response = await fetchImpl(target.url, { method: 'POST', body: form })
      } catch {
        throw new ApiError(0, 'network_error', `Could not reach the upload bucket for ${filename}.`)
      }
      if (!response.ok) {
        const text = await response.text().catch(() => '')
        const reason = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `it answered ${response.status}`
        throw new ApiError(response.status, 'upload_failed', `The upload of ${filename} was refused: ${reason}.`)
      }
    },
    listKeys: () => call('GET', '/keys'),
    createKey: (name) => call('POST', '/keys', { name }),
    revokeKey: (keyId) => call('DELETE', `/keys/${keyId}`),
  }
}
