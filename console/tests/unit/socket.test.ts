import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { LiveSocket, type ConnectionState } from '@/api/socket'
import { FakeSocket } from './fakes'

let sockets: FakeSocket[]
let states: ConnectionState[]

function open(): LiveSocket {
  const live = new LiveSocket(
    'ws://test/ws?token=k',
    { onFrame: () => undefined, onOpen: () => undefined, onState: (state) => states.push(state) },
    {
      create: (url) => {
        const socket = new FakeSocket(url)
        sockets.push(socket)
        return socket
      },
      random: () => 0,
      pingEveryMs: 5000,
      pongTimeoutMs: 4000,
    },
  )
  live.open()
  sockets[0]!.accept()
  return live
}

beforeEach(() => {
  vi.useFakeTimers()
  sockets = []
  states = []
})

afterEach(() => vi.useRealTimers())

describe('the live socket', () => {
  it('says a dead link is down within ten seconds and reconnects', async () => {
    open()
    // The link dies silently: pings go out, nothing comes back, no close arrives.
    await vi.advanceTimersByTimeAsync(5000)
    expect(sockets[0]!.sent).toEqual([{ action: 'ping' }])
    expect(states.at(-1)).toBe('open')
    await vi.advanceTimersByTimeAsync(4000)
    expect(states.at(-1)).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(1000)
    expect(sockets).toHaveLength(2)
  })

  it('keeps a link that answers', async () => {
    open()
    for (let i = 0; i < 5; i += 1) {
      await vi.advanceTimersByTimeAsync(5000)
      sockets[0]!.deliver({ type: 'pong' })
    }
    await vi.advanceTimersByTimeAsync(3000)
    expect(states.at(-1)).toBe('open')
    expect(sockets).toHaveLength(1)
    expect(sockets[0]!.sent.filter((frame) => frame.action === 'ping')).toHaveLength(5)
  })

  it('stops pinging once closed on purpose', async () => {
    const live = open()
    live.close()
    await vi.advanceTimersByTimeAsync(20000)
    expect(sockets[0]!.sent).toEqual([])
    expect(sockets).toHaveLength(1)
  })
})
