// One agent's executions, newest first, a page at a time, filtered by status on the server,
// so a filter sees every run of the agent, not only those loaded.

import { defineStore } from 'pinia'
import { ref } from 'vue'

import type { ExecutionStatus } from '@/api/types'
import { useExecutionPages } from './executionPages'

export const HISTORY_PAGE = 20

export const useHistoryStore = defineStore('history', () => {
  const pages = useExecutionPages(HISTORY_PAGE)
  const agentId = ref<string | null>(null)
  const status = ref<ExecutionStatus | 'all'>('all')

  /** The first page of an agent's history (again, when it is the same agent). */
  async function open(forAgent: string): Promise<void> {
    agentId.value = forAgent
    await pages.search({ agent_id: forAgent, ...(status.value === 'all' ? {} : { status: status.value }) })
  }

  async function filterBy(next: ExecutionStatus | 'all'): Promise<void> {
    status.value = next
    if (agentId.value) await open(agentId.value)
  }

  return { ...pages, agentId, status, open, filterBy }
})
