// What the API accepts, read from its OpenAPI document (GET /openapi.json) once per session, so
// the console never restates a bound the API enforces.

import { defineStore } from 'pinia'
import { ref } from 'vue'

import type { OpenApiDocument } from '@/api/rest'
import { useSessionStore } from './session'

export interface Bounds {
  minimum: number
  maximum: number
}

export const useContractStore = defineStore('contract', () => {
  const session = useSessionStore()
  const document = ref<OpenApiDocument | null>(null)
  let loading: Promise<void> | null = null

  /** Loads the document; a failure leaves the hints out, and the API still says what it refuses. */
  function load(): Promise<void> {
    loading ??= session.api
      .openApi()
      .then((found) => {
        document.value = found
      })
      .catch(() => {
        loading = null
      })
    return loading
  }

  /** The range of a property of a schema (`AgentConfig`, `top_k`), when the document gives one. */
  function bounds(schema: string, property: string): Bounds | null {
    const found = document.value?.components.schemas[schema]?.properties?.[property]
    if (found?.minimum === undefined || found.maximum === undefined) return null
    return { minimum: found.minimum, maximum: found.maximum }
  }

  /** Whether the API serves a route (the collections API arrives on a deployment after this console may). */
  function serves(path: string): boolean {
    return Boolean(document.value && path in document.value.paths)
  }

  return { document, load, bounds, serves }
})
