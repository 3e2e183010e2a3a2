import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { ApiError } from '@/api/rest'
import { useLiveStore } from '@/stores/live'
import { EXECUTION_ID, FakeApi, FakeSocket, ManualFrames, eventOf, progress, token } from './fakes'

let sockets: FakeSocket[]
let api: FakeApi
let frames: ManualFrames

function connect() {
  const live = useLiveStore()
  live.connect({
    url: 'ws://test/ws?token=k',
    api,
    createSocket: (url) => {
      const socket = new FakeSocket(url)
      sockets.push(socket)
      return socket
    },
    scheduleFrame: frames.schedule,
    random: () => 0,
    gapWaitMs: 500,
  })
  sockets[0]!.accept()
  return live
}

const socket = () => sockets.at(-1)!
const seqs = (live: ReturnType<typeof useLiveStore>) => live.runs.get(EXECUTION_ID)!.events.map((e) => e.seq)

beforeEach(() => {
  setActivePinia(createPinia())
  sockets = []
  api = new FakeApi()
  frames = new ManualFrames()
})

afterEach(() => {
  vi.useRealTimers()
})

describe('the live store', () => {
  it('joins a running execution from the last seq its REST history holds', async () => {
    api.log = [eventOf(progress(1, 'retrieving', 'Searching')), eventOf(token(2, 'fNIRS'))]
    const live = connect()
    await live.follow(EXECUTION_ID)
    expect(seqs(live)).toEqual([1, 2])
    expect(socket().sent).toContainEqual({ action: 'subscribe', execution_id: EXECUTION_ID, after: 2 })
    expect(live.runs.get(EXECUTION_ID)!.answer).toBe('fNIRS')
  })

  it('orders frames by seq whatever order they arrive in', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(3, 'c'), token(1, 'a'), token(2, 'b'))
    frames.tick()
    expect(seqs(live)).toEqual([1, 2, 3])
    expect(live.runs.get(EXECUTION_ID)!.answer).toBe('abc')
  })

  it('holds a later seq until the missing one arrives', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'a'), token(3, 'c'))
    frames.tick()
    expect(seqs(live)).toEqual([1])
    socket().deliver(token(2, 'b'))
    frames.tick()
    expect(seqs(live)).toEqual([1, 2, 3])
  })

  it('drops a frame whose seq it already holds', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'a'), token(1, 'a'), token(2, 'b'))
    frames.tick()
    socket().deliver(token(2, 'b'), token(1, 'a'))
    frames.tick()
    expect(seqs(live)).toEqual([1, 2])
    expect(live.runs.get(EXECUTION_ID)!.answer).toBe('ab')
  })

  it('fetches the missing events over REST when a gap lasts', async () => {
    vi.useFakeTimers()
    const live = connect()
    await live.follow(EXECUTION_ID)
    api.log = [token(1, 'a'), token(2, 'b'), token(3, 'c')].map(eventOf)
    socket().deliver(token(1, 'a'), token(3, 'c'))
    frames.tick()
    expect(seqs(live)).toEqual([1])
    await vi.advanceTimersByTimeAsync(600)
    expect(seqs(live)).toEqual([1, 2, 3])
  })

  it('resumes after a dropped socket from the last seq held, losing and doubling nothing', async () => {
    vi.useFakeTimers()
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'a'), token(2, 'b'))
    frames.tick()
    socket().drop()
    expect(live.connection).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(1000)
    expect(sockets).toHaveLength(2)
    socket().accept()
    expect(live.connection).toBe('open')
    expect(live.reconnected).toBe(true)
    expect(socket().sent).toEqual([{ action: 'subscribe', execution_id: EXECUTION_ID, after: 2 }])
    // The server replays from seq 3; a duplicate of seq 2 in the replay changes nothing.
    socket().deliver(token(2, 'b'), token(3, 'c'), token(4, 'd'))
    frames.tick()
    expect(seqs(live)).toEqual([1, 2, 3, 4])
    expect(live.runs.get(EXECUTION_ID)!.answer).toBe('abcd')
    await vi.advanceTimersByTimeAsync(7000)
    expect(live.reconnected).toBe(false)
  })

  it('backs off longer after each failed reconnect', async () => {
    vi.useFakeTimers()
    connect()
    socket().drop()
    await vi.advanceTimersByTimeAsync(250)
    expect(sockets).toHaveLength(2)
    socket().drop()
    await vi.advanceTimersByTimeAsync(400)
    expect(sockets).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(200)
    expect(sockets).toHaveLength(3)
  })

  it('shows stopping until execution_stopped arrives, then stopped', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'a'))
    frames.tick()
    await live.stop(EXECUTION_ID)
    const run = live.runs.get(EXECUTION_ID)!
    expect(api.stops).toEqual([EXECUTION_ID])
    expect(run.stopping).toBe(true)
    expect(run.status).toBe('running')
    socket().deliver(token(2, 'b'))
    frames.tick()
    expect(run.stopping).toBe(true)
    socket().deliver({ type: 'execution_stopped', execution_id: EXECUTION_ID, seq: 3 })
    frames.tick()
    expect(run.stopping).toBe(false)
    expect(run.status).toBe('stopped')
    expect(socket().sent.at(-1)).toEqual({ action: 'unsubscribe', execution_id: EXECUTION_ID })
  })

  it('clears stopping when the stop request itself fails', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    api.stopExecution = async () => {
      throw new Error('conflict')
    }
    await expect(live.stop(EXECUTION_ID)).rejects.toThrow('conflict')
    expect(live.runs.get(EXECUTION_ID)!.stopping).toBe(false)
  })

  it('sends a stop that could not reach the API again once the socket is back, and clears it at the end', async () => {
    vi.useFakeTimers()
    const live = connect()
    await live.follow(EXECUTION_ID)
    const reachable = api.stopExecution
    api.stopExecution = async () => {
      throw new ApiError(0, 'network_error', 'Could not reach the API.')
    }
    await expect(live.stop(EXECUTION_ID)).rejects.toThrow('sent again when the connection is back')
    const run = live.runs.get(EXECUTION_ID)!
    expect(run.stopPending).toBe(true)
    api.stopExecution = reachable
    socket().drop()
    await vi.advanceTimersByTimeAsync(1000)
    socket().accept()
    await vi.advanceTimersByTimeAsync(0)
    expect(api.stops).toEqual([EXECUTION_ID])
    expect(run.stopPending).toBe(false)
    expect(run.resumedFrom).toBe(0)
    socket().deliver({ type: 'execution_stopped', execution_id: EXECUTION_ID, seq: 1 })
    frames.tick()
    expect(run.status).toBe('stopped')
  })

  it('says "resumed from" the seq held when the socket came back, not one that keeps counting', async () => {
    vi.useFakeTimers()
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'a'), token(2, 'b'))
    frames.tick()
    socket().drop()
    await vi.advanceTimersByTimeAsync(1000)
    socket().accept()
    socket().deliver(token(3, 'c'))
    frames.tick()
    const run = live.runs.get(EXECUTION_ID)!
    expect(run.lastSeq).toBe(3)
    expect(run.resumedFrom).toBe(2)
  })

  it('batches token text per animation frame', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    const run = live.runs.get(EXECUTION_ID)!
    for (let seq = 1; seq <= 500; seq += 1) socket().deliver(token(seq, 'x'))
    expect(run.answer).toBe('')
    expect(frames.requested).toBe(1)
    frames.tick()
    expect(run.answer).toBe('x'.repeat(500))
    expect(run.events).toHaveLength(500)
    socket().deliver(token(501, 'y'))
    expect(frames.requested).toBe(2)
  })

  it('takes the completed answer and its sources, and stops following', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    socket().deliver(token(1, 'partial'), {
      type: 'execution_completed',
      execution_id: EXECUTION_ID,
      seq: 2,
      output_data: { answer: 'The whole answer [1].', sources: [{ source: 'a.md', chunk_id: 'a:0', score: 0.9, text: 'x' }] },
    })
    frames.tick()
    const run = live.runs.get(EXECUTION_ID)!
    expect(run.status).toBe('completed')
    expect(run.answer).toBe('The whole answer [1].')
    expect(run.sources).toHaveLength(1)
  })

  it('keeps the terminal event as stored, full excerpts and time, not as the bounded frame', async () => {
    const live = connect()
    await live.follow(EXECUTION_ID)
    const full = { answer: 'A [1].', sources: [{ source: 'a.md', chunk_id: 'a:0', score: 0.9, text: 'long '.repeat(200) }] }
    api.log = [eventOf(token(1, 'A [1].')), { seq: 2, event_type: 'completed', content: full, timestamp: '2026-11-26T10:00:02Z' }]
    socket().deliver(token(1, 'A [1].'), {
      type: 'execution_completed',
      execution_id: EXECUTION_ID,
      seq: 2,
      output_data: { ...full, sources: [{ ...full.sources[0]!, text: 'long long' }] },
    })
    frames.tick()
    await vi.waitFor(() => expect(live.runs.get(EXECUTION_ID)!.events.at(-1)!.timestamp).toBe('2026-11-26T10:00:02Z'))
    expect(live.runs.get(EXECUTION_ID)!.sources[0]!.text).toBe(full.sources[0]!.text)
    expect(seqs(live)).toEqual([1, 2])
  })

  it('joins live when the record is finished but its log does not hold the terminal event yet', async () => {
    api.record = { ...api.record, status: 'completed' }
    api.log = [eventOf(token(1, 'a'))]
    const live = connect()
    await live.follow(EXECUTION_ID)
    expect(socket().sent).toContainEqual({ action: 'subscribe', execution_id: EXECUTION_ID, after: 1 })
    socket().deliver({ type: 'execution_completed', execution_id: EXECUTION_ID, seq: 2, output_data: { answer: 'a', sources: [] } })
    frames.tick()
    expect(seqs(live)).toEqual([1, 2])
    expect(socket().sent.at(-1)).toEqual({ action: 'unsubscribe', execution_id: EXECUTION_ID })
  })

  it('does not subscribe to a run whose log is complete', async () => {
    api.record = { ...api.record, status: 'stopped' }
    api.log = [eventOf(token(1, 'a')), { seq: 2, event_type: 'stopped', content: {}, timestamp: '2026-11-26T10:00:02Z' }]
    const live = connect()
    const run = await live.follow(EXECUTION_ID)
    expect(run.status).toBe('stopped')
    expect(socket().sent).toEqual([])
  })

  it('ignores frames of executions it does not follow', async () => {
    const live = connect()
    socket().deliver(token(1, 'a'))
    frames.tick()
    expect(live.runs.size).toBe(0)
  })
})
