// The API's shapes, written to DESIGN.md §3 (REST) and §4 (WebSocket). Components import
// these; none declares a shape of its own.

export type ExecutionStatus = 'pending' | 'running' | 'completed' | 'failed' | 'stopped'

export const TERMINAL_STATUSES: readonly ExecutionStatus[] = ['completed', 'failed', 'stopped']

export interface AgentConfig {
  system_prompt: string
  collection: string
  top_k: number
  max_tokens: number
  temperature: number
}

export interface Agent {
  agent_id: string
  name: string
  description: string
  status: string
  config: AgentConfig
  created_at: string
  updated_at: string
}

export interface AgentDraft {
  name: string
  description?: string
  config?: Partial<AgentConfig>
}

export interface Source {
  source: string
  chunk_id: string
  score: number
  text: string
}

export interface OutputData {
  answer: string
  sources: Source[]
  usage?: Record<string, unknown>
}

export interface InputData {
  query: string
  [key: string]: unknown
}

export interface Execution {
  execution_id: string
  agent_id: string
  status: ExecutionStatus
  input_data: InputData
  output_data: OutputData | null
  error_message: string | null
  created_at: string
  started_at: string | null
  completed_at: string | null
}

export type EventType = 'started' | 'progress' | 'step' | 'message' | 'token' | 'completed' | 'error' | 'stopped'

/** One persisted event: `seq` runs 1, 2, 3 … per execution, without gaps. */
export interface ExecutionEvent {
  seq: number
  event_type: EventType
  content: Record<string, unknown>
  timestamp: string
}

/** An API key as its owner sees it (DESIGN §3): by name and prefix, never the secret. */
export interface ApiKeyInfo {
  key_id: string
  name: string
  prefix: string | null
  created_at: string
  last_used_at: string | null
}

/** The answer of POST /keys: the only time the secret is shown. */
export interface CreatedKey extends ApiKeyInfo {
  key: string
}

export interface KeyList {
  keys: ApiKeyInfo[]
}

export interface AgentPage {
  agents: Agent[]
  next_token: string | null
}

export interface ExecutionPage {
  executions: Execution[]
  next_token: string | null
}

export interface EventPage {
  events: ExecutionEvent[]
  next_after: number | null
}

export interface ErrorBody {
  error: { code: string; message: string }
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
