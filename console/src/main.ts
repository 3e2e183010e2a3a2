import { createPinia } from 'pinia'
import { createApp } from 'vue'

import App from './App.vue'
import { loadConfig } from './api/config'
import './assets/main.css'
import { createConsoleRouter } from './router'
import { useSessionStore } from './stores/session'

async function boot(): Promise<void> {
  const app = createApp(App)
  const pinia = createPinia()
  app.use(pinia)
  useSessionStore(pinia).configure(await loadConfig())
  app.use(createConsoleRouter(pinia))
  app.mount('#app')
}

void boot()
