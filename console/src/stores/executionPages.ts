// Pages of GET /executions for one set of filters, newest first: what the runs list and an
// agent's history both show. A newer set of filters replaces an older one's answer, never the
// other way round.

import { computed, ref } from 'vue'

import type { Execution, ExecutionFilters } from '@/api/types'
import { useSessionStore } from './session'

export function useExecutionPages(pageSize: number) {
  const session = useSessionStore()
  const executions = ref<Execution[]>([])
  const nextToken = ref<string | null>(null)
  const filters = ref<ExecutionFilters>({})
  const loading = ref(false)
  /** A first page has arrived for the current filters (until then no empty state shows). */
  const loaded = ref(false)
  const hasMore = computed(() => nextToken.value !== null)
  let generation = 0

  async function fetchPage(token: string | null): Promise<void> {
    const mine = ++generation
    loading.value = true
    try {
      const page = await session.api.listAllExecutions(filters.value, pageSize, token)
      if (mine !== generation) return
      const known = new Set(executions.value.map((e) => e.execution_id))
      executions.value = [...executions.value, ...page.executions.filter((e) => !known.has(e.execution_id))]
      nextToken.value = page.next_token
      loaded.value = true
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

  return { executions, filters, loading, loaded, hasMore, search, loadMore }
}
