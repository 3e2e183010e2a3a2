import { onBeforeUnmount, ref, watch, type Ref } from 'vue'

/** The current time, ticking every `everyMs` while `active` is true (an elapsed clock). */
export function useNow(active: Ref<boolean>, everyMs = 250): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | undefined
  watch(
    active,
    (on) => {
      clearInterval(timer)
      now.value = Date.now()
      if (on) timer = setInterval(() => (now.value = Date.now()), everyMs)
    },
    { immediate: true },
  )
  onBeforeUnmount(() => clearInterval(timer))
  return now
}
