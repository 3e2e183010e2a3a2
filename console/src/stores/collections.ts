// The caller's collections and, for the one open, its documents: uploads go straight to S3 with
// the presigned POST the API hands out, and the page polls while a document is still moving.

import { defineStore } from 'pinia'
import { computed, ref } from 'vue'

import { everyPage } from '@/api/pages'
import type { Collection, CollectionDocument } from '@/api/types'
import { isMoving, sha256Hex } from '@/lib/documents'
import { useSessionStore } from './session'

export const POLL_MS = 1000

export type UploadState = 'hashing' | 'registering' | 'uploading' | 'uploaded' | 'unchanged' | 'failed'

export interface Upload {
  id: number
  filename: string
  state: UploadState
  message: string
}

export const useCollectionsStore = defineStore('collections', () => {
  const session = useSessionStore()
  const all = ref<Collection[]>([])
  const loaded = ref(false)
  const loading = ref(false)

  const current = ref<Collection | null>(null)
  const documents = ref<CollectionDocument[]>([])
  const documentsLoaded = ref(false)
  const uploads = ref<Upload[]>([])
  let pollTimer: ReturnType<typeof setTimeout> | undefined
  let uploadIds = 0

  const names = computed(() => all.value.filter((c) => c.status === 'active').map((c) => c.name).sort())

  async function load(): Promise<void> {
    loading.value = true
    try {
      const found = await everyPage(async (token) => {
        const page = await session.api.listCollections(100, token)
        return { items: page.collections, next_token: page.next_token }
      })
      all.value = found.sort((a, b) => a.name.localeCompare(b.name))
      loaded.value = true
    } finally {
      loading.value = false
    }
  }

  async function create(name: string, description: string): Promise<Collection> {
    const made = await session.api.createCollection(name.trim(), description.trim())
    all.value = [...all.value.filter((c) => c.collection_id !== made.collection_id), made].sort((a, b) =>
      a.name.localeCompare(b.name),
    )
    return made
  }

  /** Deletes a collection; one an agent still names is refused by the API (409 `in_use`),
   * whose message names those agents. */
  async function remove(collection: Collection): Promise<void> {
    const gone = await session.api.deleteCollection(collection.collection_id)
    all.value = all.value.map((c) => (c.collection_id === gone.collection_id ? gone : c))
  }

  /** Opens one collection's page: its record and every document, then polls while any moves. */
  async function open(collectionId: string): Promise<void> {
    close()
    current.value = all.value.find((c) => c.collection_id === collectionId) ?? null
    await refresh(collectionId)
  }

  async function refresh(collectionId: string): Promise<void> {
    const [collection, found] = await Promise.all([session.api.getCollection(collectionId), allDocuments(collectionId)])
    if (current.value && current.value.collection_id !== collectionId) return
    current.value = collection
    documents.value = found
    documentsLoaded.value = true
    schedulePoll()
  }

  async function allDocuments(collectionId: string): Promise<CollectionDocument[]> {
    const found = await everyPage(async (token) => {
      const page = await session.api.listDocuments(collectionId, 100, token)
      return { items: page.documents, next_token: page.next_token }
    })
    return found.sort((a, b) => b.created_at.localeCompare(a.created_at))
  }

  function schedulePoll(): void {
    clearTimeout(pollTimer)
    const collectionId = current.value?.collection_id
    if (!collectionId || !documents.value.some(isMoving)) return
    pollTimer = setTimeout(() => {
      // A failed poll is tried again on the next tick; the rows keep what they last showed.
      refresh(collectionId).catch(() => schedulePoll())
    }, POLL_MS)
  }

  function close(): void {
    clearTimeout(pollTimer)
    pollTimer = undefined
    current.value = null
    documents.value = []
    documentsLoaded.value = false
    uploads.value = []
  }

  function track(filename: string): Upload {
    uploads.value = [...uploads.value, { id: ++uploadIds, filename, state: 'hashing', message: '' }]
    return uploads.value.at(-1)!
  }

  function set(upload: Upload, state: UploadState, message = ''): void {
    uploads.value = uploads.value.map((u) => (u.id === upload.id ? { ...u, state, message } : u))
  }

  /** Uploads files one after another: registered with the API, then POSTed to S3. */
  async function upload(files: readonly File[]): Promise<void> {
    const collectionId = current.value?.collection_id
    if (!collectionId) return
    for (const file of files) {
      const entry = track(file.name)
      try {
        const sha256 = await sha256Hex(file)
        set(entry, 'registering')
        const made = await session.api.createDocument(collectionId, { filename: file.name, size: file.size, sha256 })
        remember(made.document)
        if (!made.upload) {
          set(entry, 'unchanged', 'The same bytes are already in this collection.')
          continue
        }
        set(entry, 'uploading')
        await session.api.upload(made.upload, file, file.name)
        set(entry, 'uploaded')
      } catch (err) {
        set(entry, 'failed', err instanceof Error ? err.message : String(err))
      }
    }
    if (current.value?.collection_id === collectionId) await refresh(collectionId).catch(() => schedulePoll())
  }

  function remember(document: CollectionDocument): void {
    documents.value = [document, ...documents.value.filter((d) => d.document_id !== document.document_id)]
    schedulePoll()
  }

  async function removeDocument(document: CollectionDocument): Promise<void> {
    remember(await session.api.deleteDocument(document.collection_id, document.document_id))
  }

  function reset(): void {
    close()
    all.value = []
    loaded.value = false
  }

  return {
    all, names, loaded, loading, current, documents, documentsLoaded, uploads,
    load, create, remove, open, close, upload, removeDocument, reset,
  }
})
