import { computed, onBeforeUnmount, onMounted, ref, watch, type Ref } from 'vue'

/**
 * Which rows of a fixed-height list are on screen, so only those are rendered: a log of
 * thousands of events costs what its visible rows cost. Sticks to the bottom while the
 * reader is there, as a log should.
 */
export function useVirtualRows(viewport: Ref<HTMLElement | null>, count: Ref<number>, rowHeight: number, overscan = 8) {
  const scrollTop = ref(0)
  const height = ref(0)
  const following = ref(true)
  let observer: ResizeObserver | null = null

  const first = computed(() => Math.max(0, Math.floor(scrollTop.value / rowHeight) - overscan))
  const last = computed(() => Math.min(count.value, Math.ceil((scrollTop.value + height.value) / rowHeight) + overscan))
  const padTop = computed(() => first.value * rowHeight)
  const padBottom = computed(() => Math.max(0, (count.value - last.value) * rowHeight))

  function onScroll(): void {
    const el = viewport.value
    if (!el) return
    scrollTop.value = el.scrollTop
    following.value = el.scrollTop + el.clientHeight >= el.scrollHeight - rowHeight
  }

  function toBottom(): void {
    const el = viewport.value
    if (!el) return
    el.scrollTop = el.scrollHeight
    scrollTop.value = el.scrollTop
  }

  watch(count, () => {
    if (following.value) requestAnimationFrame(toBottom)
  })

  onMounted(() => {
    const el = viewport.value
    if (!el) return
    height.value = el.clientHeight
    observer = new ResizeObserver(() => (height.value = el.clientHeight))
    observer.observe(el)
    toBottom()
  })
  onBeforeUnmount(() => observer?.disconnect())

  return { first, last, padTop, padBottom, following, onScroll, toBottom }
}
