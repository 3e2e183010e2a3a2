// A scripted WebSocket and REST API for the live store's tests.

import type { SocketLike } from '@/api/socket'
import type { ClientFrame, EventFrame, Execution, ExecutionEvent, ServerFrame } from '@/api/types'
import type { LiveApi } from '@/stores/live'

export class FakeSocket implements SocketLike {
  readyState = 0
  sent: ClientFrame[] = []
  onopen: ((event: unknown) => void) | null = null
  onclose: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  constructor(readonly url: string) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame)
  }

  close(): void {
    this.readyState = 3
    this.onclose?.({})
  }

  /** The server accepts the upgrade. */
  accept(): void {
    this.readyState = 1
    this.onopen?.({})
  }

  deliver(...frames: ServerFrame[]): void {
    for (const frame of frames) this.onmessage?.({ data: JSON.stringify(frame) })
  }

  /** The connection drops without a close from the client. */
  drop(): void {
    this.close()
  }
}

export const EXECUTION_ID = '11111111-1111-4111-8111-111111111111'
export const AGENT_ID = '22222222-2222-4222-8222-222222222222'

export function execution(status: Execution['status'] = 'running'): Execution {
  return {
    execution_id: EXECUTION_ID,
    agent_id: AGENT_ID,
    status,
    input_data: { query: 'What is fNIRS?' },
    config: { system_prompt: 'Answer.', collection: 'fnirs', top_k: 4, max_tokens: 256, temperature: 0.2 },
    output_data: null,
    error_message: null,
    created_at: '2026-11-26T10:00:00Z',
    started_at: null,
    completed_at: null,
  }
}

export function token(seq: number, text: string): EventFrame {
  return {
    type: 'agent_event',
    execution_id: EXECUTION_ID,
    seq,
    event_type: 'token',
    content: { text },
    timestamp: '2026-11-26T10:00:01Z',
  }
}

export function progress(seq: number, stage: string, message: string): EventFrame {
  return {
    type: 'agent_event',
    execution_id: EXECUTION_ID,
    seq,
    event_type: 'progress',
    content: { stage, message },
    timestamp: '2026-11-26T10:00:01Z',
  }
}

export function eventOf(frame: EventFrame): ExecutionEvent {
  if (frame.type !== 'agent_event') throw new Error('only agent_event frames persist as-is here')
  return { seq: frame.seq, event_type: frame.event_type, content: frame.content, timestamp: frame.timestamp }
}

/** The REST side: a record and a persisted log the test writes into. */
export class FakeApi implements LiveApi {
  record: Execution = execution()
  log: ExecutionEvent[] = []
  stops: string[] = []

  getExecution = async () => structuredClone(this.record)
  listEvents = async (_id: string, after: number, limit = 100) => {
    const events = this.log.filter((e) => e.seq > after).slice(0, limit)
    const more = this.log.some((e) => e.seq > (events.at(-1)?.seq ?? after))
    return { events, next_after: more ? events.at(-1)!.seq : null }
  }
  stopExecution = async (id: string) => {
    this.stops.push(id)
    return { ...this.record, status: this.record.status }
  }
  startExecution = async () => structuredClone(this.record)
}

/** Animation frames the test releases by hand. */
export class ManualFrames {
  queue: (() => void)[] = []
  requested = 0
  schedule = (flush: () => void) => {
    this.requested += 1
    this.queue.push(flush)
  }
  tick(): void {
    const due = this.queue
    this.queue = []
    due.forEach((flush) => flush())
  }
}
