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
      { path: '/runs', name: 'runs', component: () => import('@/views/RunsView.vue'), meta: { title: 'Runs' } },
      { path: '/collections', name: 'collections', component: () => import('@/views/CollectionsView.vue'), meta: { title: 'Collections' } },
      { path: '/collections/:collectionId', name: 'collection', component: () => import('@/views/CollectionView.vue'), props: true, meta: { title: 'Collection' } },
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
  router.afterEach((to, from) => {
    document.title = `${to.meta.title ?? 'Console'} · Dynavera`
    // Focus follows navigation to the new page's heading (a screen reader reads where it is);
    // a page that loads first shows its heading a little later.
    if (from.matched.length) focusHeading()
  })
  return router
}

const HEADING_WAIT_MS = 3000

/** Moves focus to the page's h1 once it is there, unless the user has moved focus meanwhile. */
function focusHeading(): void {
  const started = document.activeElement
  const deadline = Date.now() + HEADING_WAIT_MS
  const attempt = () => {
    if (document.activeElement !== started && document.activeElement !== document.body) return
    const heading = document.querySelector<HTMLElement>('main h1')
    if (heading) {
      if (!heading.hasAttribute('tabindex')) heading.setAttribute('tabindex', '-1')
      heading.focus()
    } else if (Date.now() < deadline) setTimeout(attempt, 50)
  }
  requestAnimationFrame(attempt)
}
