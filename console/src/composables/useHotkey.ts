import { onBeforeUnmount, onMounted } from 'vue'

/** Calls `handler` on `key` anywhere on the page while the component is mounted. */
export function useHotkey(key: string, handler: (event: KeyboardEvent) => void): void {
  function onKeydown(event: KeyboardEvent): void {
    if (event.key === key && !event.defaultPrevented) handler(event)
  }
  onMounted(() => window.addEventListener('keydown', onKeydown))
  onBeforeUnmount(() => window.removeEventListener('keydown', onKeydown))
}
