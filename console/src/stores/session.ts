// Who is signed in: the API key (kept in localStorage until sign out, so reloads and other
// tabs need no new sign-in), where the API lives, and the REST client built from both.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { ApiError, createApi, type Api } from '@/api/rest'
import type { ConsoleConfig } from '@/api/types'

const KEY_STORAGE = 'dynavera.apiKey'

export const useSessionStore = defineStore('session', () => {
  const config = ref<ConsoleConfig>({ apiUrl: '', wsUrl: '' })
  const apiKey = ref<string | null>(localStorage.getItem(KEY_STORAGE))

  /** Why the console went back to sign-in on its own (a key the API stopped accepting). */
  const notice = ref('')

  const signedIn = computed(() => apiKey.value !== null)
  const api = computed<Api>(() => createApi(config.value.apiUrl, apiKey.value ?? '', undefined, refused))

  /** Any 401 from the API, on any page: the stored key is no good any more. */
  function refused(): void {
    if (!apiKey.value) return
    signOut()
    notice.value = 'The API no longer accepts your key (it may have been revoked). Sign in again.'
  }
  /** The WebSocket URL with the key: handed to the socket, never shown or logged. */
  const socketUrl = computed(() => `${config.value.wsUrl}?token=${encodeURIComponent(apiKey.value ?? '')}`)

  function configure(found: ConsoleConfig): void {
    config.value = found
  }

  /** Checks the key against the API before keeping it; a wrong key says so. */
  async function signIn(key: string): Promise<void> {
    const trimmed = key.trim()
    if (!trimmed) throw new Error('Paste an API key first.')
    try {
      await createApi(config.value.apiUrl, trimmed).listAgents(1)
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        throw new Error('That API key was not accepted. Check it, or create one with ./dynavera keys create USER.')
      }
      throw err
    }
    localStorage.setItem(KEY_STORAGE, trimmed)
    apiKey.value = trimmed
    notice.value = ''
  }

  function signOut(): void {
    localStorage.removeItem(KEY_STORAGE)
    apiKey.value = null
  }

  /** Another tab signed in or out. */
  function syncFromStorage(): void {
    apiKey.value = localStorage.getItem(KEY_STORAGE)
  }

  return { config, notice, signedIn, api, socketUrl, configure, signIn, signOut, refused, syncFromStorage }
})
