// The caller's runs across agents: filtered and searched on the server, newest first, a page
// at a time. A newer search replaces an older one's answer, never the other way round.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import type { Execution, ExecutionFilters } from '@/api/types'
import { useSessionStore } from './session'

export const RUNS_PAGE = 25

export const useRunsStore = defineStore('runs', () => {
  const session = useSessionStore()
  const executions = ref<Execution[]>([])
  const nextToken = ref<string | null>(null)
  const filters = ref<ExecutionFilters>({})
  const loading = ref(false)
  /** A first page has arrived for the current filters (until then, no "no runs" is shown). */
  const loaded = ref(false)
  const error = ref('')
  let generation = 0

  const hasMore = computed(() => nextToken.value !== null)

  async function fetchPage(token: string | null): Promise<void> {
    const mine = ++generation
    loading.value = true
    error.value = ''
    try {
      const page = await session.api.listAllExecutions(filters.value, RUNS_PAGE, token)
      if (mine !== generation) return
      const known = new Set(executions.value.map((e) => e.execution_id))
      executions.value = [...executions.value, ...page.executions.filter((e) => !known.has(e.execution_id))]
      nextToken.value = page.next_token
      loaded.value = true
    } catch (err) {
      if (mine === generation) error.value = err instanceof Error ? err.message : String(err)
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  /** The first page for these filters; blank ones are left out. */
  async function search(next: ExecutionFilters): Promise<void> {
    filters.value = Object.fromEntries(
      Object.entries(next).filter(([, value]) => typeof value === 'string' && value.trim() !== ''),
    ) as ExecutionFilters
    executions.value = []
    nextToken.value = null
    loaded.value = false
    await fetchPage(null)
  }

  async function loadMore(): Promise<void> {
    if (nextToken.value && !loading.value) await fetchPage(nextToken.value)
  }

  return { executions, filters, loading, loaded, error, hasMore, search, loadMore }
})
