// The caller's runs across agents: filtered and searched on the server, newest first.

import { defineStore } from 'pinia'
import { ref } from 'vue'

import type { ExecutionFilters } from '@/api/types'
import { useExecutionPages } from './executionPages'

export const RUNS_PAGE = 25

export const useRunsStore = defineStore('runs', () => {
  const pages = useExecutionPages(RUNS_PAGE)
  const error = ref('')

  async function guarded(action: () => Promise<void>): Promise<void> {
    error.value = ''
    try {
      await action()
    } catch (err) {
      error.value = err instanceof Error ? err.message : String(err)
    }
  }

  return {
    ...pages,
    error,
    search: (next: ExecutionFilters) => guarded(() => pages.search(next)),
    loadMore: () => guarded(pages.loadMore),
  }
})
