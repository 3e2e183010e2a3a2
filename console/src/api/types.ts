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
/** The filters `GET /executions` takes, checked on the server. */
export type ExecutionFilters = Omit<NonNullable<paths['/executions']['get']['parameters']['query']>, 'limit' | 'next_token'>

// Collections and documents, written to DESIGN §3 until their routes are in the OpenAPI document.
export type CollectionStatus = 'active' | 'deleting'

export interface Collection {
  collection_id: string
  name: string
  description: string
  status: CollectionStatus
  document_count: number
  chunk_count: number
  created_at: string
  updated_at: string
}

export type DocumentStatus = 'awaiting_upload' | 'queued' | 'extracting' | 'embedding' | 'indexed' | 'failed' | 'deleting'

export type DocumentFailure =
  | 'too_large'
  | 'unsupported_type'
  | 'encrypted_pdf'
  | 'not_text'
  | 'no_text'
  | 'too_many_chunks'
  | 'extract_timeout'
  | 'upload_expired'

export interface CollectionDocument {
  document_id: string
  collection_id: string
  filename: string
  size: number
  sha256: string | null
  status: DocumentStatus
  chunks_total: number | null
  chunks_done: number | null
  error: { code: DocumentFailure | string; message: string } | null
  created_at: string
  indexed_at: string | null
}

export interface CollectionPage {
  collections: Collection[]
  next_token: string | null
}

export interface DocumentPage {
  documents: CollectionDocument[]
  next_token: string | null
}

/** An S3 presigned POST: the file goes to `url` as multipart form data, after `fields`. */
export interface PresignedPost {
  url: string
  fields: Record<string, string>
}

export interface NewDocument {
  document: CollectionDocument
  /** null when the same bytes are already in the collection. */
  upload: PresignedPost | null
}

// WebSocket, client → server.
export type ClientFrame =
  | { action: 'start_agent'; agent_id: string; input_data: InputData; request_id?: string }
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
