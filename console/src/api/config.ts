// Where the API lives: `config.json` beside index.html (written at deploy time, served by the
// local gateway), or the page's own origin when there is none.

import type { ConsoleConfig } from './types'

export function sameOriginConfig(location: Pick<Location, 'origin' | 'protocol' | 'host'>): ConsoleConfig {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return { apiUrl: location.origin, wsUrl: `${scheme}//${location.host}/ws` }
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const fallback = sameOriginConfig(window.location)
  try {
    const response = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: 'no-store' })
    if (!response.ok) return fallback
    const found = (await response.json()) as Partial<ConsoleConfig>
    return { apiUrl: found.apiUrl || fallback.apiUrl, wsUrl: found.wsUrl || fallback.wsUrl }
  } catch {
    return fallback
  }
}
