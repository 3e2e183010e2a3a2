// The socket and the executions followed live. Frames are queued as they arrive and applied
// once per animation frame, so a fast token stream costs one render a frame, not one a token.

import { defineStore } from 'pinia'
import { markRaw, reactive, ref } from 'vue'

import { ApiError, type Api } from '@/api/rest'
import { LiveSocket, type ConnectionState, type SocketFactory } from '@/api/socket'
import type {
  AgentConfig,
  EventFrame,
  Execution,
  ExecutionEvent,
  ExecutionStatus,
  InputData,
  RunOverrides,
  ServerFrame,
  Source,
} from '@/api/types'
import {
  EMPTY_CURSOR,
  admit,
  eventOfFrame,
  hasGap,
  isTerminal,
  isTerminalEvent,
  sourcesOf,
  statusAfter,
  type Cursor,
} from '@/lib/timeline'

export interface LiveRun {
  executionId: string
  agentId: string
  status: ExecutionStatus
  loaded: boolean
  input: InputData | null
  answer: string
  sources: Source[]
  error: string | null
  /** Stop was asked for and `execution_stopped` (or another end) has not arrived yet. */
  stopping: boolean
  /** The stop request could not reach the API; it is sent again when the connection is back. */
  stopPending: boolean
  /** The settings it ran with (the agent's at start, with the run's overrides). */
  config: AgentConfig | null
  /** What the answer reports: tokens, retrieval and generation times. */
  usage: Record<string, unknown> | null
  /** The seq it held when the socket last came back (what "resumed from event N" says). */
  resumedFrom: number | null
  /** Every event held, in seq order; replaced (never mutated) on each change. */
  events: readonly ExecutionEvent[]
  lastSeq: number
  createdAt: string | null
  completedAt: string | null
}

export type LiveApi = Pick<Api, 'getExecution' | 'listEvents' | 'stopExecution' | 'startExecution'>

export interface LiveOptions {
  url: string
  api: LiveApi
  createSocket?: SocketFactory
  scheduleFrame?: (flush: () => void) => void
  random?: () => number
  /** How long a gap in seqs may last before the missing events are fetched over REST. */
  gapWaitMs?: number
}

/** The next animation frame, or 100 ms when the tab is hidden and frames do not come. */
export function nextAnimationFrame(flush: () => void): void {
  let done = false
  const once = () => {
    if (done) return
    done = true
    flush()
  }
  requestAnimationFrame(once)
  setTimeout(once, 100)
}

const RECONNECTED_NOTICE_MS = 6000

export const useLiveStore = defineStore('live', () => {
  const connection = ref<ConnectionState>('idle')
  const reconnected = ref(false)
  const runs = reactive(new Map<string, LiveRun>())

  let options: LiveOptions | null = null
  let socket: LiveSocket | null = null
  const cursors = new Map<string, Cursor>()
  /** Executions subscribed live (again after every reconnect) until their terminal event. */
  const following = new Set<string>()
  const inFlight = new Map<string, Promise<LiveRun>>()
  const gapTimers = new Map<string, ReturnType<typeof setTimeout>>()
  let inbox: { frame: EventFrame; receivedAt: string }[] = []
  let flushPending = false
  let noticeTimer: ReturnType<typeof setTimeout> | undefined

  function connect(opts: LiveOptions): void {
    disconnect()
    options = opts
    socket = new LiveSocket(
      opts.url,
      { onFrame, onOpen, onState: (state) => (connection.value = state) },
      { create: opts.createSocket, random: opts.random },
    )
    socket.open()
  }

  function disconnect(): void {
    socket?.close()
    socket = null
    options = null
    runs.clear()
    cursors.clear()
    following.clear()
    gapTimers.forEach((timer) => clearTimeout(timer))
    gapTimers.clear()
    inbox = []
    reconnected.value = false
  }

  function runOf(executionId: string): LiveRun {
    let run = runs.get(executionId)
    if (!run) {
      runs.set(executionId, {
        executionId,
        agentId: '',
        status: 'pending',
        loaded: false,
        input: null,
        answer: '',
        sources: [],
        error: null,
        stopping: false,
        stopPending: false,
        config: null,
        usage: null,
        resumedFrom: null,
        events: markRaw([]),
        lastSeq: 0,
        createdAt: null,
        completedAt: null,
      })
      run = runs.get(executionId)!
    }
    return run
  }

  function seed(run: LiveRun, execution: Execution): void {
    run.agentId = execution.agent_id
    run.input = execution.input_data
    run.config = execution.config ?? null
    if (execution.output_data?.usage) run.usage = execution.output_data.usage
    run.createdAt = execution.created_at
    run.completedAt = execution.completed_at
    // The log decides the status once it holds events; before that, the record does.
    if (run.lastSeq === 0) run.status = execution.status
    if (execution.error_message) run.error = execution.error_message
    run.loaded = true
  }

  function apply(executionId: string, events: readonly ExecutionEvent[]): void {
    const run = runs.get(executionId)
    if (!run) return
    const { cursor, accepted } = admit(cursors.get(executionId) ?? EMPTY_CURSOR, events)
    cursors.set(executionId, cursor)
    if (accepted.length) {
      let text = ''
      for (const event of accepted) {
        run.status = statusAfter(run.status, event)
        if (event.event_type === 'token') text += String(event.content.text ?? '')
        else if (event.event_type === 'completed') {
          // The completed answer is the whole text: it replaces what the tokens built.
          const answer = event.content.answer
          if (typeof answer === 'string' && answer) {
            run.answer = answer
            text = ''
          }
          run.sources = sourcesOf(event.content)
          if (event.content.usage && typeof event.content.usage === 'object') run.usage = event.content.usage as Record<string, unknown>
        } else if (event.event_type === 'error') run.error = String(event.content.message ?? 'The execution failed.')
      }
      if (text) run.answer += text
      run.events = markRaw(run.events.concat(accepted))
      run.lastSeq = cursor.lastSeq
      if (isTerminalEvent(accepted.at(-1))) finished(run)
    }
    if (hasGap(cursor)) watchGap(executionId)
  }

  function finished(run: LiveRun): void {
    run.stopping = false
    run.stopPending = false
    if (following.delete(run.executionId)) {
      socket?.send({ action: 'unsubscribe', execution_id: run.executionId })
      void recordTerminal(run)
    }
  }

  /** A terminal frame carries bounded excerpts and no time; the log keeps the event as stored. */
  async function recordTerminal(run: LiveRun): Promise<void> {
    const last = run.events.at(-1)
    if (!options || !last) return
    try {
      const stored = (await options.api.listEvents(run.executionId, last.seq - 1, 1)).events[0]
      if (stored?.seq !== last.seq || run.events.at(-1) !== last) return
      run.events = markRaw([...run.events.slice(0, -1), stored])
      if (stored.event_type === 'completed') run.sources = sourcesOf(stored.content)
    } catch {
      // The frame's version stays: the same event, with shorter excerpts.
    }
  }

  function watchGap(executionId: string): void {
    if (gapTimers.has(executionId)) return
    const timer = setTimeout(() => {
      gapTimers.delete(executionId)
      const cursor = cursors.get(executionId)
      if (cursor && hasGap(cursor)) void backfill(executionId)
    }, options?.gapWaitMs ?? 1000)
    gapTimers.set(executionId, timer)
  }

  async function backfill(executionId: string): Promise<void> {
    if (!options) return
    let after: number | null = cursors.get(executionId)?.lastSeq ?? 0
    while (after !== null) {
      const page = await options.api.listEvents(executionId, after, 100)
      apply(executionId, page.events)
      after = page.next_after
    }
  }

  function onFrame(frame: ServerFrame): void {
    if (!('seq' in frame) || !runs.has(frame.execution_id)) return
    inbox.push({ frame, receivedAt: new Date().toISOString() })
    if (flushPending) return
    flushPending = true
    ;(options?.scheduleFrame ?? nextAnimationFrame)(flush)
  }

  function flush(): void {
    flushPending = false
    const batch = inbox
    inbox = []
    const byExecution = new Map<string, ExecutionEvent[]>()
    for (const { frame, receivedAt } of batch) {
      const list = byExecution.get(frame.execution_id) ?? []
      list.push(eventOfFrame(frame, receivedAt))
      byExecution.set(frame.execution_id, list)
    }
    byExecution.forEach((events, executionId) => apply(executionId, events))
  }

  function subscribe(executionId: string): void {
    socket?.send({ action: 'subscribe', execution_id: executionId, after: runs.get(executionId)?.lastSeq ?? 0 })
  }

  function onOpen(resumed: boolean): void {
    // Every run still followed resumes from the last seq it holds: nothing lost, nothing twice.
    if (flushPending) flush()
    following.forEach(subscribe)
    if (!resumed) return
    following.forEach((executionId) => {
      const run = runs.get(executionId)
      if (!run) return
      run.resumedFrom = run.lastSeq
      if (run.stopPending) void stop(executionId).catch(() => undefined)
    })
    reconnected.value = true
    clearTimeout(noticeTimer)
    noticeTimer = setTimeout(() => (reconnected.value = false), RECONNECTED_NOTICE_MS)
  }

  /** Loads an execution's record and log over REST, then joins it live from its last seq. */
  function follow(executionId: string): Promise<LiveRun> {
    const run = runOf(executionId)
    if (!options || following.has(executionId) || isTerminalEvent(run.events.at(-1))) return Promise.resolve(run)
    let loading = inFlight.get(executionId)
    if (!loading) {
      loading = load(options.api, run).finally(() => inFlight.delete(executionId))
      inFlight.set(executionId, loading)
    }
    return loading
  }

  async function load(api: LiveApi, run: LiveRun): Promise<LiveRun> {
    seed(run, await api.getExecution(run.executionId))
    await backfill(run.executionId)
    // Joined live until the log holds its terminal event, which can trail the record's status.
    if (!isTerminalEvent(run.events.at(-1))) {
      following.add(run.executionId)
      subscribe(run.executionId)
    }
    return run
  }

  async function start(agentId: string, input: InputData, overrides?: RunOverrides): Promise<string> {
    if (!options) throw new Error('Not signed in.')
    const execution = await options.api.startExecution(agentId, input, crypto.randomUUID(), overrides)
    seed(runOf(execution.execution_id), execution)
    await follow(execution.execution_id)
    return execution.execution_id
  }

  async function stop(executionId: string): Promise<void> {
    const run = runs.get(executionId)
    if (!options || !run || isTerminal(run.status)) return
    run.stopping = true
    try {
      await options.api.stopExecution(executionId)
      run.stopPending = false
    } catch (err) {
      run.stopping = false
      // Unreachable (the link is down): asked again when the socket reconnects, unless the run
      // ends first. Any other refusal is final and said as it is.
      run.stopPending = err instanceof ApiError && err.status === 0
      if (run.stopPending) throw new Error('Could not reach the API to stop the run; the stop is sent again when the connection is back.')
      throw err
    }
  }

  return { connection, reconnected, runs, connect, disconnect, follow, start, stop }
})
