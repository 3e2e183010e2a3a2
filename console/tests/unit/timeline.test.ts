import { describe, expect, it } from 'vitest'

import type { ExecutionEvent } from '@/api/types'
import { EMPTY_CURSOR, admit, backoffDelay, citeParts, describe as describeEvent, figuresOf, isWaitingForModel, toNdjson } from '@/lib/timeline'

const event = (seq: number, event_type: ExecutionEvent['event_type'] = 'token', content = {}): ExecutionEvent => ({
  seq,
  event_type,
  content,
  timestamp: '2026-11-26T10:00:00Z',
})

describe('admit', () => {
  it('accepts a contiguous run and keeps the rest pending', () => {
    const first = admit(EMPTY_CURSOR, [event(2), event(4), event(1)])
    expect(first.accepted.map((e) => e.seq)).toEqual([1, 2])
    expect(first.cursor.lastSeq).toBe(2)
    expect([...first.cursor.pending.keys()]).toEqual([4])
    const second = admit(first.cursor, [event(3), event(4), event(2)])
    expect(second.accepted.map((e) => e.seq)).toEqual([3, 4])
    expect(second.dropped).toBe(2)
  })

  it('leaves its input cursor untouched', () => {
    const cursor = admit(EMPTY_CURSOR, [event(3)]).cursor
    admit(cursor, [event(1), event(2)])
    expect(cursor.lastSeq).toBe(0)
    expect(cursor.pending.size).toBe(1)
  })
})

describe('labels', () => {
  it('uses the seed console labels', () => {
    expect(describeEvent(event(1, 'progress', { stage: 'retrieving', message: 'Searching fnirs' }))).toMatchObject({
      tag: '[PROGRESS]',
      text: 'retrieving: Searching fnirs',
    })
    expect(describeEvent(event(1, 'message', { text: 'hi' })).tag).toBe('[MESSAGE]')
    expect(describeEvent(event(1, 'step', { name: 'search' })).tag).toBe('[STEP]')
    expect(describeEvent(event(1, 'started')).tag).toBe('Started')
    expect(describeEvent(event(1, 'error', { message: 'boom' }))).toMatchObject({ tag: 'Error', text: 'boom' })
  })
})

describe('citations', () => {
  it('links [n] markers to existing sources only', () => {
    expect(citeParts('A [1] and [3].', 2)).toEqual([
      { kind: 'text', text: 'A ' },
      { kind: 'cite', n: 1, text: '[1]' },
      { kind: 'text', text: ' and [3].' },
    ])
  })
})

describe('export and backoff', () => {
  it('writes one JSON object per line', () => {
    const text = toNdjson([event(1), event(2)])
    expect(text.trim().split('\n').map((line) => JSON.parse(line).seq)).toEqual([1, 2])
  })

  it('doubles up to a cap', () => {
    expect(backoffDelay(1, 1)).toBe(500)
    expect(backoffDelay(3, 1)).toBe(2000)
    expect(backoffDelay(20, 1)).toBe(15000)
    expect(backoffDelay(20, 0)).toBe(7500)
  })
})

describe('a run’s figures', () => {
  const at = (seconds: number) => new Date(Date.UTC(2026, 10, 30, 6, 0, 0) + seconds * 1000).toISOString()
  const event = (seq: number, event_type: ExecutionEvent['event_type'], seconds: number, content: Record<string, unknown> = {}) =>
    ({ seq, event_type, content, timestamp: at(seconds) }) as ExecutionEvent

  it('separates the wait for the model from the answer', () => {
    const events = [
      event(1, 'started', 1),
      event(2, 'progress', 1.2, { stage: 'queued' }),
      event(3, 'progress', 9, { stage: 'retrieving' }),
      event(4, 'token', 9.5, { text: 'a' }),
      event(5, 'completed', 12),
    ]
    const usage = { completion_tokens: 50, generation_ms: 2500, retrieval_ms: 12.5 }
    expect(figuresOf(events, at(0), usage, Date.parse(at(99)))).toEqual({
      queuedMs: 9000,
      firstTokenMs: 9500,
      tokensPerSecond: 20,
      retrievalMs: 12.5,
      generationMs: 2500,
      elapsedMs: 12000,
    })
  })

  it('counts elapsed time up to now while the run goes on', () => {
    const figures = figuresOf([event(1, 'started', 1)], at(0), null, Date.parse(at(7)))
    expect(figures.elapsedMs).toBe(7000)
    expect(figures.queuedMs).toBeNull()
    expect(figures.tokensPerSecond).toBeNull()
  })

  it('knows a run waiting for the model until something else happens', () => {
    expect(isWaitingForModel([event(1, 'started', 1), event(2, 'progress', 2, { stage: 'queued' })])).toBe(true)
    expect(isWaitingForModel([event(1, 'started', 1), event(2, 'progress', 2, { stage: 'queued' }), event(3, 'progress', 3, { stage: 'retrieving' })])).toBe(false)
    expect(isWaitingForModel([event(1, 'started', 1)])).toBe(false)
  })
})
