// The API's shapes: REST generated from GET /openapi.json (DESIGN.md §3), WebSocket frames written
// to DESIGN.md §4. Components import these; none declares a shape of its own.

import type { components, paths } from './schema'

type Schemas = components['schemas']

// REST shapes: generated into schema.d.ts from the API's OpenAPI document (`make console-types`).
export type AgentConfig = Schemas['AgentConfig']
export type Agent = Schemas['Agent']
export type Execution = Schemas['Execution']
export type ExecutionStatus = Execution['status']
export type InputData = Execution['input_data']
export type OutputData = Schemas['Output']
export type Usage = NonNullable<OutputData['usage']>
export type Source = Schemas['Source']
export type RunOverrides = Schemas['RunOverrides']
export type ExecutionEvent = Schemas['Event']
export type EventType = ExecutionEvent['event_type']
export type ErrorBody = Schemas['Error']

export const TERMINAL_STATUSES: readonly ExecutionStatus[] = ['completed', 'failed', 'stopped']

export interface AgentDraft {
  name: string
  description?: string
  config?: Partial<AgentConfig>
}

type PageOf<Path extends keyof paths> = paths[Path] extends { get: { responses: { 200: { content: { 'application/json': infer T } } } } }
  ? T
  : never
export type AgentPage = PageOf<'/agents'>
export type ExecutionPage = PageOf<'/executions'>
export type EventPage = PageOf<'/executions/{execution_id}/events'>
// API keys: listed by name and prefix; the secret only in the answer that made it.
export type ApiKeyInfo = Schemas['Key']
export type CreatedKey = Schemas['CreatedKey']
export type KeyList = PageOf<'/keys'>
/** The filters `GET /executions` takes, checked on the server. */
export type ExecutionFilters = Omit<NonNullable<paths['/executions']['get']['parameters']['query']>, 'limit' | 'next_token'>

// Collections and documents.
export type Collection = Schemas['Collection']
export type CollectionStatus = Collection['status']
export type CollectionDocument = Schemas['Document']
export type DocumentStatus = CollectionDocument['status']
export type NewDocument = Schemas['DocumentUpload']
/** An S3 presigned POST: the file goes to `url` as multipart form data, after `fields`. */
export type PresignedPost = NonNullable<NewDocument['upload']>
export type CollectionPage = PageOf<'/collections'>
export type DocumentPage = PageOf<'/collections/{collection_id}/documents'>

// WebSocket, client → server.
export type ClientFrame =
  | { action: 'start_agent'; agent_id: string; input_data: InputData; config?: RunOverrides; request_id?: string }
  | { action: 'subscribe'; execution_id: string; after?: number }
  | { action: 'unsubscribe'; execution_id: string }
  | { action: 'stop_agent'; execution_id: string }
  | { action: 'ping' }

// WebSocket, server → client.
export interface ExecutionStartedFrame {
  type: 'execution_started'
  execution_id: string
  agent_id: string
  status: ExecutionStatus
  request_id?: string
}

export interface AgentEventFrame {
  type: 'agent_event'
  execution_id: string
  seq: number
  event_type: Exclude<EventType, 'completed' | 'error' | 'stopped'>
  content: Record<string, unknown>
  timestamp: string
}

export interface ExecutionCompletedFrame {
  type: 'execution_completed'
  execution_id: string
  seq: number
  output_data: OutputData
}

export interface ExecutionErrorFrame {
  type: 'execution_error'
  execution_id: string
  seq: number
  error: string
}

export interface ExecutionStoppedFrame {
  type: 'execution_stopped'
  execution_id: string
  seq: number
}

export interface ErrorFrame {
  type: 'error'
  code: string
  message: string
  request_id?: string
}

export interface PongFrame {
  type: 'pong'
}

/** A frame that carries one event of an execution's log. */
export type EventFrame = AgentEventFrame | ExecutionCompletedFrame | ExecutionErrorFrame | ExecutionStoppedFrame

export type ServerFrame = ExecutionStartedFrame | EventFrame | ErrorFrame | PongFrame

/** Where the console finds the API: `config.json` beside index.html, written at deploy time. */
export interface ConsoleConfig {
  apiUrl: string
  wsUrl: string
}
