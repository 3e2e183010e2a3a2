// The caller's agents over REST: loaded whole (page by page), then filtered by name and shown
// a page at a time.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import type { Agent, AgentDraft } from '@/api/types'
import { everyPage } from '@/api/pages'
import { useSessionStore } from './session'

export const AGENTS_PER_PAGE = 10

export const useAgentsStore = defineStore('agents', () => {
  const session = useSessionStore()
  const all = ref<Agent[]>([])
  const loaded = ref(false)
  const loading = ref(false)
  const filter = ref('')
  const page = ref(0)

  const matching = computed(() => {
    const needle = filter.value.trim().toLowerCase()
    const list = needle ? all.value.filter((agent) => agent.name.toLowerCase().includes(needle)) : all.value
    return [...list].sort((a, b) => b.updated_at.localeCompare(a.updated_at))
  })
  const pageCount = computed(() => Math.max(1, Math.ceil(matching.value.length / AGENTS_PER_PAGE)))
  const visible = computed(() => matching.value.slice(page.value * AGENTS_PER_PAGE, (page.value + 1) * AGENTS_PER_PAGE))

  async function load(): Promise<void> {
    loading.value = true
    try {
      all.value = await everyPage(async (token) => {
        const page = await session.api.listAgents(100, token)
        return { items: page.agents, next_token: page.next_token }
      })
      loaded.value = true
      page.value = Math.min(page.value, pageCount.value - 1)
    } finally {
      loading.value = false
    }
  }

  function setFilter(text: string): void {
    filter.value = text
    page.value = 0
  }

  function goToPage(index: number): void {
    page.value = Math.max(0, Math.min(index, pageCount.value - 1))
  }

  function byId(agentId: string): Agent | undefined {
    return all.value.find((agent) => agent.agent_id === agentId)
  }

  async function fetchOne(agentId: string): Promise<Agent> {
    const agent = await session.api.getAgent(agentId)
    remember(agent)
    return agent
  }

  function remember(agent: Agent): void {
    all.value = [agent, ...all.value.filter((a) => a.agent_id !== agent.agent_id)]
  }

  async function create(draft: AgentDraft): Promise<Agent> {
    const agent = await session.api.createAgent(draft)
    remember(agent)
    return agent
  }

  async function update(agentId: string, draft: AgentDraft): Promise<Agent> {
    const agent = await session.api.updateAgent(agentId, draft)
    remember(agent)
    return agent
  }

  async function remove(agentId: string): Promise<void> {
    await session.api.deleteAgent(agentId)
    forget(agentId)
  }

  /** Drops an agent the API no longer knows (deleted here or elsewhere). */
  function forget(agentId: string): void {
    all.value = all.value.filter((agent) => agent.agent_id !== agentId)
  }

  function reset(): void {
    all.value = []
    loaded.value = false
    filter.value = ''
    page.value = 0
  }

  return {
    loaded, loading, filter, page, pageCount, matching, visible,
    load, setFilter, goToPage, byId, fetchOne, create, update, remove, forget, reset,
  }
})
