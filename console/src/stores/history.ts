// One agent's executions over REST, newest first, a page at a time, filtered by status.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import type { Execution, ExecutionStatus } from '@/api/types'
import { useSessionStore } from './session'

export const HISTORY_PAGE = 20

export const useHistoryStore = defineStore('history', () => {
  const session = useSessionStore()
  const agentId = ref<string | null>(null)
  const executions = ref<Execution[]>([])
  const nextToken = ref<string | null>(null)
  const loading = ref(false)
  const status = ref<ExecutionStatus | 'all'>('all')

  const shown = computed(() =>
    status.value === 'all' ? executions.value : executions.value.filter((e) => e.status === status.value),
  )
  const hasMore = computed(() => nextToken.value !== null)

  async function loadPage(token: string | null): Promise<void> {
    if (!agentId.value) return
    loading.value = true
    try {
      const page = await session.api.listExecutions(agentId.value, HISTORY_PAGE, token)
      const known = new Set(executions.value.map((e) => e.execution_id))
      executions.value = [...executions.value, ...page.executions.filter((e) => !known.has(e.execution_id))]
      nextToken.value = page.next_token
    } finally {
      loading.value = false
    }
  }

  /** The first page of an agent's history (again, when it is the same agent). */
  async function open(forAgent: string): Promise<void> {
    agentId.value = forAgent
    executions.value = []
    nextToken.value = null
    await loadPage(null)
  }

  async function loadMore(): Promise<void> {
    if (nextToken.value) await loadPage(nextToken.value)
  }

  return { agentId, executions, shown, hasMore, loading, status, open, loadMore }
})
