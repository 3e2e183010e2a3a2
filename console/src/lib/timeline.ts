// An execution's log as the console holds it: pure functions over events and frames.
// The server already delivers each seq once and in order (DESIGN §4); these are the
// second line of defence, and what resuming after a dropped socket relies on.

import type { EventFrame, ExecutionEvent, ExecutionStatus, Source } from '@/api/types'

/** Where a log stands: every seq up to `lastSeq` is held; later ones wait in `pending`. */
export interface Cursor {
  readonly lastSeq: number
  readonly pending: ReadonlyMap<number, ExecutionEvent>
}

export interface Admission {
  cursor: Cursor
  /** Events now in order after the old `lastSeq`, ready to apply. */
  accepted: ExecutionEvent[]
  /** Events whose seq was already held (or already waiting). */
  dropped: number
}

export const EMPTY_CURSOR: Cursor = { lastSeq: 0, pending: new Map() }

/** Admit events in any order: seqs held are dropped, gaps wait, the contiguous run is accepted. */
export function admit(cursor: Cursor, incoming: readonly ExecutionEvent[]): Admission {
  const pending = new Map(cursor.pending)
  let dropped = 0
  for (const event of incoming) {
    if (event.seq <= cursor.lastSeq || pending.has(event.seq)) dropped += 1
    else pending.set(event.seq, event)
  }
  const accepted: ExecutionEvent[] = []
  let lastSeq = cursor.lastSeq
  for (let next = pending.get(lastSeq + 1); next; next = pending.get(lastSeq + 1)) {
    accepted.push(next)
    pending.delete(next.seq)
    lastSeq = next.seq
  }
  return { cursor: { lastSeq, pending }, accepted, dropped }
}

/** True when a later seq arrived before an earlier one: the missing ones must be fetched. */
export function hasGap(cursor: Cursor): boolean {
  return cursor.pending.size > 0
}

/** The event a frame carries. Terminal frames have no timestamp; they get the time received. */
export function eventOfFrame(frame: EventFrame, receivedAt: string): ExecutionEvent {
  switch (frame.type) {
    case 'agent_event':
      return { seq: frame.seq, event_type: frame.event_type, content: frame.content, timestamp: frame.timestamp }
    case 'execution_completed':
      return { seq: frame.seq, event_type: 'completed', content: { ...frame.output_data }, timestamp: receivedAt }
    case 'execution_error':
      return { seq: frame.seq, event_type: 'error', content: { message: frame.error }, timestamp: receivedAt }
    case 'execution_stopped':
      return { seq: frame.seq, event_type: 'stopped', content: {}, timestamp: receivedAt }
  }
}

export function isTerminal(status: ExecutionStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'stopped'
}

/** The last event of every run: completed, error or stopped. */
export function isTerminalEvent(event: ExecutionEvent | undefined): boolean {
  return event?.event_type === 'completed' || event?.event_type === 'error' || event?.event_type === 'stopped'
}

/** The status an execution has once `event` is in its log. */
export function statusAfter(status: ExecutionStatus, event: ExecutionEvent): ExecutionStatus {
  switch (event.event_type) {
    case 'completed':
      return 'completed'
    case 'error':
      return 'failed'
    case 'stopped':
      return 'stopped'
    default:
      return isTerminal(status) ? status : 'running'
  }
}

/** The answer text the token events in `events` add up to. */
export function tokenText(events: readonly ExecutionEvent[]): string {
  let text = ''
  for (const event of events) if (event.event_type === 'token') text += String(event.content.text ?? '')
  return text
}

export function sourcesOf(content: Record<string, unknown>): Source[] {
  return Array.isArray(content.sources) ? (content.sources as Source[]) : []
}

export interface LogLine {
  tag: string
  text: string
  tone: 'info' | 'success' | 'danger' | 'muted'
}

function textOf(content: Record<string, unknown>, ...keys: string[]): string {
  for (const key of keys) if (typeof content[key] === 'string') return content[key] as string
  return JSON.stringify(content)
}

/** An event as one line of the log, with the labels the seed console used. */
export function describe(event: ExecutionEvent): LogLine {
  const c = event.content
  switch (event.event_type) {
    case 'started':
      return { tag: 'Started', text: 'The execution started.', tone: 'info' }
    case 'progress':
      return { tag: '[PROGRESS]', text: `${String(c.stage ?? '')}: ${String(c.message ?? '')}`, tone: 'info' }
    case 'step':
      return { tag: '[STEP]', text: textOf(c, 'name', 'message', 'text'), tone: 'info' }
    case 'message':
      return { tag: '[MESSAGE]', text: textOf(c, 'text', 'message'), tone: 'info' }
    case 'token':
      return { tag: '[TOKEN]', text: String(c.text ?? ''), tone: 'muted' }
    case 'completed':
      return { tag: 'Completed', text: `Answer of ${String(c.answer ?? '').length} characters, ${sourcesOf(c).length} sources.`, tone: 'success' }
    case 'error':
      return { tag: 'Error', text: String(c.message ?? 'The execution failed.'), tone: 'danger' }
    case 'stopped':
      return { tag: 'Stopped', text: 'The execution was stopped.', tone: 'muted' }
  }
}

export type AnswerPart = { kind: 'text'; text: string } | { kind: 'cite'; n: number; text: string }

/** Split an answer at its `[n]` markers; a marker becomes a citation when source n exists. */
export function citeParts(answer: string, sourceCount: number): AnswerPart[] {
  const parts: AnswerPart[] = []
  const marker = /\[(\d{1,3})\]/g
  let from = 0
  for (let m = marker.exec(answer); m; m = marker.exec(answer)) {
    const n = Number(m[1])
    if (n < 1 || n > sourceCount) continue
    if (m.index > from) parts.push({ kind: 'text', text: answer.slice(from, m.index) })
    parts.push({ kind: 'cite', n, text: m[0] })
    from = m.index + m[0].length
  }
  if (from < answer.length) parts.push({ kind: 'text', text: answer.slice(from) })
  return parts
}

/** The events as NDJSON: one JSON object a line, in seq order. */
export function toNdjson(events: readonly ExecutionEvent[]): string {
  return events.map((event) => JSON.stringify(event)).join('\n') + (events.length ? '\n' : '')
}

/** How long to wait before reconnect attempt `attempt` (1, 2, …): doubling, capped, jittered. */
export function backoffDelay(attempt: number, random: number, baseMs = 500, capMs = 15000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + (ceiling / 2) * random)
}

/** Whether the runtime said the run waits for the model and nothing has moved since. */
export function isWaitingForModel(events: readonly ExecutionEvent[]): boolean {
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i]!
    if (event.event_type === 'progress') return event.content.stage === 'queued'
    if (event.event_type !== 'started') return false
  }
  return false
}

export interface RunFigures {
  /** From the start request to the runtime starting work (the runs queue and the model's queue). */
  queuedMs: number | null
  /** From the start request to the first piece of the answer. */
  firstTokenMs: number | null
  tokensPerSecond: number | null
  retrievalMs: number | null
  generationMs: number | null
  /** From the start request to the end, or to `now` while it runs. */
  elapsedMs: number | null
}

const at = (iso: string | null | undefined): number | null => {
  const ms = iso ? Date.parse(iso) : NaN
  return Number.isFinite(ms) ? ms : null
}
const since = (from: number | null, to: number | null): number | null => (from === null || to === null ? null : Math.max(0, to - from))
const numberOr = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null)

/** The figures of a run from its record's times, its log and the usage its answer reports. */
export function figuresOf(
  events: readonly ExecutionEvent[],
  createdAt: string | null,
  usage: Record<string, unknown> | null,
  now: number,
): RunFigures {
  const created = at(createdAt)
  const working = events.find(
    (e) => (e.event_type === 'progress' && e.content.stage !== 'queued') || e.event_type === 'token' || isTerminalEvent(e),
  )
  const firstToken = events.find((e) => e.event_type === 'token')
  const last = events.at(-1)
  const end = isTerminalEvent(last) ? at(last!.timestamp) : now
  const completion = numberOr(usage?.completion_tokens)
  const generationMs = numberOr(usage?.generation_ms)
  return {
    queuedMs: since(created, at(working?.timestamp)),
    firstTokenMs: since(created, at(firstToken?.timestamp)),
    tokensPerSecond: completion !== null && generationMs ? (completion * 1000) / generationMs : null,
    retrievalMs: numberOr(usage?.retrieval_ms),
    generationMs,
    elapsedMs: since(created, end),
  }
}
