// What the polite live region says: status changes, reconnects, results of actions.

import { defineStore } from 'pinia'
import { ref } from 'vue'

export const useAnnouncerStore = defineStore('announcer', () => {
  const message = ref('')

  function announce(text: string): void {
    // A repeated message must still be read out: clear, then set on the next tick.
    message.value = ''
    queueMicrotask(() => (message.value = text))
  }

  return { message, announce }
})
