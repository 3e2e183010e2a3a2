import type { Pinia } from 'pinia'
import { createRouter, createWebHistory } from 'vue-router'

import { useSessionStore } from '@/stores/session'
import AgentsView from '@/views/AgentsView.vue'

declare module 'vue-router' {
  interface RouteMeta {
    public?: boolean
    title?: string
  }
}

export function createConsoleRouter(pinia: Pinia) {
  const router = createRouter({
    history: createWebHistory(import.meta.env.BASE_URL),
    routes: [
      { path: '/', redirect: { name: 'agents' } },
      { path: '/sign-in', name: 'sign-in', component: () => import('@/views/SignInView.vue'), meta: { public: true, title: 'Sign in' } },
      { path: '/agents', name: 'agents', component: AgentsView, meta: { title: 'Agents' } },
      { path: '/agents/new', name: 'agent-new', component: () => import('@/views/AgentFormView.vue'), meta: { title: 'New agent' } },
      { path: '/agents/:agentId', name: 'agent', component: () => import('@/views/AgentView.vue'), props: true, meta: { title: 'Agent' } },
      { path: '/agents/:agentId/edit', name: 'agent-edit', component: () => import('@/views/AgentFormView.vue'), props: true, meta: { title: 'Edit agent' } },
      { path: '/keys', name: 'keys', component: () => import('@/views/KeysView.vue'), meta: { title: 'API keys' } },
      { path: '/executions/:executionId', name: 'execution', component: () => import('@/views/ExecutionView.vue'), props: true, meta: { title: 'Execution' } },
      { path: '/:missing(.*)*', name: 'not-found', component: () => import('@/views/NotFoundView.vue'), meta: { public: true, title: 'Not found' } },
    ],
  })

  router.beforeEach((to) => {
    const session = useSessionStore(pinia)
    if (!to.meta.public && !session.signedIn) return { name: 'sign-in', query: { next: to.fullPath } }
    if (to.name === 'sign-in' && session.signedIn) return { name: 'agents' }
    return true
  })
  router.afterEach((to) => {
    document.title = `${to.meta.title ?? 'Console'} · Dynavera`
  })
  return router
}
