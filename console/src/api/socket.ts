// The console's one WebSocket: connects with ?token=, pings so API Gateway's idle timeout
// never closes it and a dead link is noticed, and reconnects with backoff when it drops.
// Views never touch WebSocket.

import { backoffDelay } from '@/lib/timeline'
import type { ClientFrame, ServerFrame } from './types'

/** The part of the browser's WebSocket the console uses; tests script a fake one. */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onclose: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export type SocketFactory = (url: string) => SocketLike

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting'

export interface SocketHandlers {
  onFrame(frame: ServerFrame): void
  /** The socket is open; `resumed` when this is a reconnect after a drop. */
  onOpen(resumed: boolean): void
  onState(state: ConnectionState): void
}

export interface SocketOptions {
  create?: SocketFactory
  random?: () => number
  pingEveryMs?: number
  /** How long after a ping without any frame the link counts as dead. */
  pongTimeoutMs?: number
}

const OPEN = 1
// A cut link (Wi-Fi gone, laptop asleep) closes nothing: only an unanswered ping shows it, so
// the console pings often enough to say so within ~10 s. It also keeps API Gateway's 10-minute
// idle timeout away; at $1 a million messages, 720 pings an hour cost under $0.001.
const PING_EVERY_MS = 5000
const PONG_TIMEOUT_MS = 4000

export class LiveSocket {
  private socket: SocketLike | null = null
  private attempt = 0
  private everOpened = false
  private closedOnPurpose = false
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private pongTimer: ReturnType<typeof setTimeout> | undefined
  private readonly create: SocketFactory
  private readonly random: () => number
  private readonly pingEveryMs: number
  private readonly pongTimeoutMs: number

  constructor(
    private readonly url: string,
    private readonly handlers: SocketHandlers,
    options: SocketOptions = {},
  ) {
    this.create = options.create ?? ((target) => new WebSocket(target) as unknown as SocketLike)
    this.random = options.random ?? Math.random
    this.pingEveryMs = options.pingEveryMs ?? PING_EVERY_MS
    this.pongTimeoutMs = options.pongTimeoutMs ?? PONG_TIMEOUT_MS
  }

  get isOpen(): boolean {
    return this.socket?.readyState === OPEN
  }

  open(): void {
    this.closedOnPurpose = false
    this.handlers.onState(this.everOpened ? 'reconnecting' : 'connecting')
    const socket = this.create(this.url)
    this.socket = socket
    socket.onopen = () => {
      const resumed = this.everOpened
      this.everOpened = true
      this.attempt = 0
      this.pingTimer = setInterval(() => this.ping(socket), this.pingEveryMs)
      this.handlers.onState('open')
      this.handlers.onOpen(resumed)
    }
    socket.onmessage = (event) => {
      this.alive()
      if (typeof event.data !== 'string') return
      let frame: unknown
      try {
        frame = JSON.parse(event.data)
      } catch {
        return
      }
      if (frame && typeof frame === 'object' && 'type' in frame) this.handlers.onFrame(frame as ServerFrame)
    }
    socket.onclose = () => this.dropped(socket)
    socket.onerror = () => socket.close()
  }

  /** Sends a frame if the socket is open; false otherwise (resubscription happens on reopen). */
  send(frame: ClientFrame): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false
    this.socket.send(JSON.stringify(frame))
    return true
  }

  close(): void {
    this.closedOnPurpose = true
    clearTimeout(this.retryTimer)
    clearInterval(this.pingTimer)
    this.alive()
    this.socket?.close(1000, 'signed out')
    this.socket = null
    this.handlers.onState('idle')
  }

  /** Any frame shows the link is alive. */
  private alive(): void {
    clearTimeout(this.pongTimer)
    this.pongTimer = undefined
  }

  private ping(socket: SocketLike): void {
    if (!this.send({ action: 'ping' }) || this.pongTimer !== undefined) return
    this.pongTimer = setTimeout(() => {
      // A dead link may take minutes to report its close: drop it now and reconnect.
      socket.close(4000, 'no answer to ping')
      this.dropped(socket)
    }, this.pongTimeoutMs)
  }

  private dropped(socket: SocketLike): void {
    if (socket !== this.socket) return
    clearInterval(this.pingTimer)
    this.alive()
    this.socket = null
    if (this.closedOnPurpose) return
    this.attempt += 1
    this.handlers.onState('reconnecting')
    this.retryTimer = setTimeout(() => this.open(), backoffDelay(this.attempt, this.random()))
  }
}
